//! End-to-end tests live in `tests/`; the workload generator in `src/bin/workload.rs`.
