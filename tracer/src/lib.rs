//! The `tracer` program: its command line ([`cli`]), the files it writes ([`files`]), its
//! sinks ([`sinks`]: the recorder, the line stream), the text views ([`render`]), the TUI
//! ([`tui`]) and the service, `tracer agent` ([`agent`]). The model and analysis are
//! [`tracer_core`]'s; capture is [`tracer_live`]'s.
#![forbid(unsafe_code)]

pub mod agent;
pub mod cli;
pub mod files;
pub mod render;
pub mod sinks;
pub mod tui;
