//! The `tracer` command line, identical to the shipped binary (both call `tracer::cli::main`);
//! cargo only hands integration tests the paths of their own package's programs.
fn main() -> std::process::ExitCode {
    tracer::cli::main()
}
