//! Compiles the kernel probes (`tracer-ebpf`) for the BPF target and leaves the object in
//! `OUT_DIR`, where `kernel::probes` embeds it.
fn main() -> anyhow::Result<()> {
    let root_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tracer-ebpf");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "tracer-ebpf",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::default(),
    )
}
