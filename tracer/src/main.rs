#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    tracer::cli::main()
}
