//! Compiles the kernel probes (`tracer-ebpf`) for the BPF target and leaves the object in
//! `OUT_DIR`, where `probes` embeds it. Where the BPF toolchain is missing (the pinned
//! nightly with `rust-src`, `bpf-linker`), or `AYA_BUILD_SKIP=1`, it leaves an empty object
//! instead, so that `cargo check`, `clippy` and the tests of everything else work anywhere; a
//! tracer built so refuses to start, saying why.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The nightly the probes build with, pinned: its LLVM (22) must match bpf-linker's, and a
/// newer nightly's bitcode is unreadable to it. `cargo xtask` installs this toolchain.
const TOOLCHAIN: &str = include_str!("../tracer-ebpf/TOOLCHAIN");

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let object = out_dir.join("tracer-ebpf");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    println!("cargo:rerun-if-env-changed=PATH");
    let skip = std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v == "true");
    if let Some(missing) = skip
        .then(|| "AYA_BUILD_SKIP is set".to_owned())
        .or_else(missing_toolchain)
    {
        println!(
            "cargo:warning=the kernel probes are not built ({missing}): this tracer cannot capture; `cargo xtask setup` installs the BPF toolchain"
        );
        write_stub(&object)?;
        return Ok(());
    }
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

/// What of the BPF toolchain is missing, if anything.
fn missing_toolchain() -> Option<String> {
    let toolchain = TOOLCHAIN.trim();
    let components = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", toolchain])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned());
    if !components.is_some_and(|c| c.contains("rust-src")) {
        return Some(format!("no {toolchain} toolchain with rust-src"));
    }
    let linker = Command::new("bpf-linker").arg("--version").output();
    if !linker.is_ok_and(|out| out.status.success()) {
        return Some("no bpf-linker on PATH".into());
    }
    None
}

fn write_stub(object: &Path) -> std::io::Result<()> {
    // Rewritten only when it is not already empty: cargo then keeps the crate built.
    if std::fs::metadata(object).is_ok_and(|m| m.len() == 0) {
        return Ok(());
    }
    std::fs::write(object, [])
}
