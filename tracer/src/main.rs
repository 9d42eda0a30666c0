// Events are a few small strings each, allocated and freed at the kernel's pace: mimalloc
// does that in a fraction of glibc malloc's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tracer::cli::main()
}
