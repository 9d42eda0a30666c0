//! The probes live in `main.rs` and build for the BPF target only; this host library is empty
//! and exists so that `tracer` can depend on the crate for rebuild tracking.
#![no_std]
