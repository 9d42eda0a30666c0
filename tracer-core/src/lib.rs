//! The process lineage tracer's model and analysis, as a library: typed events in, the live
//! process tree, roles, daemonic verdicts and findings out; trace files read and written over
//! any reader or writer; replay, history, reports and exports.
//!
//! Data flow: events ([`event`]) → one ordering and ingest step ([`ingest`]) → the
//! process-tree model ([`model`]) → classification ([`roles`]) and findings ([`analysis`]) →
//! sinks ([`ingest::Sink`]). [`replay`] drives it from a trace ([`trace`]); the live tracer
//! drives the very same pipeline from the kernel.
//!
//! Pure by design: no kernel, no `/proc`, no files, clocks or threads of its own, no `unsafe`.
//! Callers hand it readers, writers and times.
//!
//! ```
//! use tracer_core::{report, trace::TraceReader};
//!
//! let text = r#"{"event":"header","format":"process-lineage-trace","version":1,"tracer_version":"0.1.0","host":"w1","kernel":"6.1.0","boot_id":"b","ts":0,"wall_clock_ns":0,"clock_tick_ns":10000000}
//! {"event":"snapshot","ts":0,"pid":1,"start_time":0,"ppid":0,"comm":"init","cmdline":["/sbin/init"],"uid":0,"pgid":1,"sid":1}
//! "#;
//! let reader = TraceReader::new(text.as_bytes(), "incident.jsonl".into())?;
//! let report = report::build(reader, None)?;
//! assert_eq!(report.totals.orphans, 0);
//! print!("{}", report::text(&report));
//! # Ok::<(), tracer_core::Error>(())
//! ```
#![forbid(unsafe_code)]

pub mod analysis;
pub mod error;
pub mod event;
pub mod export;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod history;
pub mod ingest;
pub mod model;
pub mod privacy;
pub mod python;
pub mod replay;
pub mod report;
pub mod roles;
pub mod sanitize;
pub mod text;
pub mod trace;
pub mod words;

pub use error::{Error, Result};
