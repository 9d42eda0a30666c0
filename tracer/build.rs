//! Compiles the kernel probes (`tracer-ebpf`) for the BPF target and leaves the object in
//! `OUT_DIR`, where `kernel::probes` embeds it.

/// The nightly the probes build with, pinned: its LLVM (22) must match bpf-linker's, and a
/// newer nightly's bitcode is unreadable to it. `cargo xtask` installs this toolchain.
const TOOLCHAIN: &str = include_str!("../tracer-ebpf/TOOLCHAIN");

fn main() -> anyhow::Result<()> {
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tracer-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(TOOLCHAIN.trim()),
    )
}
