//! The process lineage tracer's kernel side: everything that touches the running system.
//! The eBPF probes' loader ([`probes`]), the kernel layout they are handed ([`btf`],
//! [`layout`]), the decoding of their records into [`tracer_core`] events ([`decode`]),
//! `/proc` ([`procfs`]), Python interpreters ([`python`]), privileges, `tracer doctor`'s checks, and live capture ([`live`]),
//! which drives the very pipeline replay drives.
//!
//! The only crate of the tracer with aya, `/proc`, capabilities and `unsafe`; each `unsafe`
//! block sits at the kernel boundary with a `SAFETY:` line.

pub mod btf;
pub mod decode;
pub mod doctor;
pub mod host;
pub mod latency;
pub mod layout;
pub mod live;
mod mapped;
pub mod preflight;
pub mod privileges;
mod probes;
pub mod procfs;
pub mod python;
mod window;

pub use layout::ExitProbe;
pub use probes::{ProbeOptions, Probes};
pub use tracer_common::DEFAULT_RING_BYTES;
