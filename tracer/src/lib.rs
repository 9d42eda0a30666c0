//! Process lineage tracer for Airflow and Celery worker hosts.
//!
//! Data flow: kernel probes ([`kernel`]) → typed events ([`event`]) → one ordering and ingest
//! step ([`ingest`]) → the process-tree model ([`model`]) → classification ([`roles`]) and
//! findings ([`analysis`]) → sinks ([`sink`]: trace files via [`trace`], the terminal via
//! [`render`]). [`live`] drives it from the kernel, [`replay`] from a trace file; both run the
//! same ingest step, model and analysis.

pub mod analysis;
pub mod cli;
pub mod doctor;
pub mod event;
pub mod export;
#[cfg(test)]
mod fixtures;
pub mod host;
pub mod ingest;
pub mod kernel;
pub mod latency;
pub mod live;
pub mod model;
pub mod privacy;
pub mod procfs;
pub mod render;
pub mod replay;
pub mod report;
pub mod roles;
pub mod sanitize;
pub mod sink;
pub mod trace;
pub mod tui;
