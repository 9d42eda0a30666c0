//! The kernel boundary: the eBPF probes, their loader, and the decoding of what they report.
//! The only part of the tracer that needs a kernel (and root).

pub mod btf;
pub mod decode;
pub mod layout;
mod mapped;
pub mod preflight;
pub mod privileges;
mod probes;

pub use layout::ExitProbe;
pub use probes::{ProbeOptions, Probes};
