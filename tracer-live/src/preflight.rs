//! What the tracer needs from the kernel and the caller, checked before anything is loaded so
//! that a missing piece is one clear line instead of a verifier dump. `tracer doctor` shows
//! the same checks.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

use crate::btf::Btf;

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// Before Linux 5.19, any value but 0 makes every `bpf()` command need CAP_BPF or
/// CAP_SYS_ADMIN (Debian's kernels default to 2).
pub const UNPRIVILEGED_BPF_SYSCTL: &str = "/proc/sys/kernel/unprivileged_bpf_disabled";

/// Ring buffer maps and `bpf_ktime_get_boot_ns` arrived in Linux 5.8; BTF tracepoints in 5.5.
pub const MIN_KERNEL: (u32, u32) = (5, 8);

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Reads the kernel's facts (release, BTF) under this directory instead of `/`: how the tests
/// show the refusals a host without BTF, with an old kernel or with a changed kernel layout
/// gets, without such a host.
pub const KERNEL_ROOT_ENV: &str = "TRACER_KERNEL_ROOT";

fn kernel_root() -> Option<PathBuf> {
    std::env::var_os(KERNEL_ROOT_ENV).map(PathBuf::from)
}

pub fn kernel_release() -> String {
    if let Some(root) = kernel_root() {
        return std::fs::read_to_string(root.join("proc/sys/kernel/osrelease"))
            .unwrap_or_default()
            .trim()
            .to_owned();
    }
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Where the kernel's BTF is read from.
pub fn btf_path() -> PathBuf {
    match kernel_root() {
        Some(root) => root.join(BTF_PATH.trim_start_matches('/')),
        None => PathBuf::from(BTF_PATH),
    }
}

/// `6.18.44-foo` → `(6, 18)`.
pub fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

pub fn require_kernel_version(release: &str) -> Result<()> {
    match parse_kernel_version(release) {
        Some(version) if version >= MIN_KERNEL => Ok(()),
        Some((major, minor)) => bail!(
            "kernel {major}.{minor} is too old: the tracer needs Linux {}.{} or newer (BPF ring buffer)",
            MIN_KERNEL.0,
            MIN_KERNEL.1
        ),
        None => bail!("cannot read the kernel version from {release:?}"),
    }
}

/// Effective capability bits from `/proc/self/status` text.
pub fn effective_capabilities(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

pub fn can_load_probes(capabilities: u64) -> bool {
    let has = |cap: u32| capabilities & (1 << cap) != 0;
    has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))
}

pub fn require_privileges() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match effective_capabilities(&status) {
        Some(caps) if can_load_probes(caps) => Ok(()),
        _ => bail!(
            "the tracer needs root (or CAP_BPF and CAP_PERFMON) to load its kernel probes: run it with sudo"
        ),
    }
}

/// Whether the kernel creates BPF ring buffer maps, asked of the kernel itself: a version
/// number does not say, as distributions backport and configure features. Needs the
/// privileges to create a map.
pub fn require_ring_buffer() -> Result<()> {
    ring_buffer_verdict(aya::sys::is_map_supported(aya::maps::MapType::RingBuf))
}

fn ring_buffer_verdict(probed: Result<bool, impl std::fmt::Display>) -> Result<()> {
    match probed {
        Ok(true) => Ok(()),
        Ok(false) => bail!(
            "this kernel has no BPF ring buffer maps: the tracer needs them (Linux {}.{} or newer)",
            MIN_KERNEL.0,
            MIN_KERNEL.1
        ),
        Err(e) => bail!("cannot probe the kernel for BPF ring buffer maps: {e}"),
    }
}

pub fn kernel_btf() -> Result<Btf> {
    kernel_btf_at(&btf_path())
}

pub fn kernel_btf_at(path: &Path) -> Result<Btf> {
    let data = std::fs::read(path).map_err(|e| {
        anyhow!(
            "no kernel BTF at {} ({e}): the tracer needs a kernel built with CONFIG_DEBUG_INFO_BTF=y",
            path.display()
        )
    })?;
    Btf::parse(&data).map_err(|e| anyhow!("cannot read kernel BTF at {}: {e}", path.display()))
}

/// Where tracefs is mounted, if it is. The probes attach through BTF and do not need it; perf
/// (the benchmarks' ground truth) does.
pub fn tracefs() -> Option<PathBuf> {
    ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.join("events").is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(parse_kernel_version("5.8.0"), Some((5, 8)));
        assert_eq!(parse_kernel_version("garbage"), None);
        assert!(require_kernel_version("5.8.0").is_ok());
        let error = require_kernel_version("5.4.0-150-generic")
            .unwrap_err()
            .to_string();
        assert!(error.contains("5.4 is too old"), "{error}");
    }

    #[test]
    fn capabilities() {
        let root = "Name:\tx\nCapEff:\t000001ffffffffff\n";
        assert!(can_load_probes(effective_capabilities(root).unwrap()));
        let user = "CapEff:\t0000000000000000\n";
        assert!(!can_load_probes(effective_capabilities(user).unwrap()));
        let bpf_only = format!("CapEff:\t{:016x}\n", 1u64 << CAP_BPF);
        assert!(!can_load_probes(effective_capabilities(&bpf_only).unwrap()));
        let bpf_perfmon = format!(
            "CapEff:\t{:016x}\n",
            (1u64 << CAP_BPF) | (1u64 << CAP_PERFMON)
        );
        assert!(can_load_probes(
            effective_capabilities(&bpf_perfmon).unwrap()
        ));
        assert_eq!(effective_capabilities("no caps here"), None);
    }

    #[test]
    fn a_kernel_without_ring_buffers_is_one_clear_line() {
        assert!(ring_buffer_verdict(Ok::<_, String>(true)).is_ok());
        let error = ring_buffer_verdict(Ok::<_, String>(false))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "this kernel has no BPF ring buffer maps: the tracer needs them (Linux 5.8 or newer)"
        );
        let error = ring_buffer_verdict(Err("bpf_map_create failed: Operation not permitted"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "cannot probe the kernel for BPF ring buffer maps: \
             bpf_map_create failed: Operation not permitted"
        );
    }

    #[test]
    fn missing_btf_is_one_clear_line() {
        let error = kernel_btf_at(Path::new("/nonexistent/vmlinux"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("CONFIG_DEBUG_INFO_BTF"), "{error}");
        assert!(!error.contains('\n'));
    }
}
