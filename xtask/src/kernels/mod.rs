//! `cargo xtask kernels`: the kernel test suite on the kernels worker fleets run. Each cell of
//! the matrix is a Debian kernel booted in qemu with an initramfs that holds the test programs,
//! or the host's own kernel; each prints `kernel <release>: N passed, M failed`.
//!
//! `--smoke` runs the suite's `smoke::` tests only: `tracer doctor`, and a recording of a
//! fork/exec/exit/rename/signal/orphan workload checked for exact counts and zero loss.

mod fetch;
pub use fetch::ARCHIVE;
mod initramfs;
mod vm;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};

use initramfs::{EXIT_MARK, Initramfs, RELEASE_MARK};
use vm::{Accel, Boot};

/// What qemu and the initramfs need, from Debian.
const PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "busybox-static",
    "debian-archive-keyring",
];
const BUSYBOX: &str = "/bin/busybox";

/// The cells: the kernels the fleets run, by the Debian suite that ships them.
struct Cell {
    name: &'static str,
    /// None: the host's own kernel, no VM.
    suite: Option<&'static str>,
    /// The distributions whose kernels this one stands for.
    stands_for: &'static str,
}

const MATRIX: &[Cell] = &[
    Cell {
        name: "5.10",
        suite: Some("bullseye"),
        stands_for: "Debian 11, Amazon Linux 2",
    },
    Cell {
        name: "6.1",
        suite: Some("bookworm"),
        stands_for: "Debian 12, Amazon Linux 2023",
    },
    Cell {
        name: "6.12",
        suite: Some("trixie"),
        stands_for: "Debian 13",
    },
    Cell {
        name: "host",
        suite: None,
        stands_for: "this machine",
    },
];

/// The libtest filter of the smoke subset.
const SMOKE_FILTER: &str = "smoke::";
const SMOKE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
const FULL_TIMEOUT: Duration = Duration::from_secs(120 * 60);
/// How long a KVM guest may take to say it booted before KVM counts as not working here.
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AccelChoice {
    /// KVM if a guest boots under it here, else TCG.
    Auto,
    Kvm,
    Tcg,
}

#[derive(Args, Clone, Debug)]
pub struct KernelsArgs {
    /// Only the fast subset: `tracer doctor` and an exact recording of a small workload.
    #[arg(long)]
    smoke: bool,
    /// Cells to run (`5.10`, `6.1`, `6.12`, `host`; repeatable; default: all).
    #[arg(long = "kernel", value_name = "KERNEL")]
    kernels: Vec<String>,
    /// How qemu runs the guests.
    #[arg(long, value_enum, default_value_t = AccelChoice::Auto)]
    accel: AccelChoice,
    /// Only the kernel tests whose names contain this (libtest's filter; overrides --smoke).
    #[arg(long, value_name = "NAME")]
    filter: Option<String>,
}

impl KernelsArgs {
    /// `--smoke` on every kernel but the host's, whose full suite `cargo xtask test` has run.
    pub fn smoke_in_guests() -> KernelsArgs {
        KernelsArgs {
            smoke: true,
            kernels: MATRIX
                .iter()
                .filter(|cell| cell.suite.is_some())
                .map(|cell| cell.name.to_owned())
                .collect(),
            accel: AccelChoice::Auto,
            filter: None,
        }
    }
}

/// One cell's result.
struct Tally {
    release: String,
    passed: usize,
    failed: Vec<String>,
    elapsed: Duration,
    /// Where the whole output is, when something failed.
    log: Option<PathBuf>,
}

impl Tally {
    fn line(&self) -> String {
        format!(
            "kernel {}: {} passed, {} failed",
            self.release,
            self.passed,
            self.failed.len()
        )
    }
}

pub fn run(args: KernelsArgs) -> Result<()> {
    if !crate::is_root() {
        bail!("the kernel tests load eBPF probes: run `cargo xtask kernels` as root");
    }
    let cells: Vec<&Cell> = if args.kernels.is_empty() {
        MATRIX.iter().collect()
    } else {
        args.kernels
            .iter()
            .map(|wanted| {
                MATRIX
                    .iter()
                    .find(|cell| cell.name == wanted)
                    .with_context(|| {
                        let names: Vec<&str> = MATRIX.iter().map(|c| c.name).collect();
                        format!(
                            "no kernel {wanted} in the matrix (it has {})",
                            names.join(", ")
                        )
                    })
            })
            .collect::<Result<_>>()?
    };
    let started = Instant::now();
    let suite = build_suite()?;
    let filter: Vec<&str> = match (&args.filter, args.smoke) {
        (Some(name), _) => vec![name.as_str()],
        (None, true) => vec![SMOKE_FILTER],
        (None, false) => Vec::new(),
    };
    let filter = filter.as_slice();
    let root = crate::workspace_root().join("target/kernels");
    std::fs::create_dir_all(&root).with_context(|| format!("cannot create {}", root.display()))?;
    let vm_cells: Vec<&&Cell> = cells.iter().filter(|c| c.suite.is_some()).collect();
    let mut guest = None;
    if !vm_cells.is_empty() {
        let missing = crate::missing_packages(PACKAGES);
        if !missing.is_empty() {
            crate::apt_install(&missing, "for the kernel matrix")?;
        }
        let image = root.join("initramfs.cpio");
        let size = guest_initramfs(&suite, filter)?.write(&image)?;
        guest = Some((image, size));
    }

    let mut tallies = Vec::new();
    let mut accel = None;
    for cell in cells {
        let tally = match (cell.suite, &guest) {
            (None, _) => run_on_host(&suite, filter, &root.join("host"))?,
            (Some(suite_name), Some((image, size))) => {
                let kernel = fetch::kernel(&root, suite_name)?;
                let accel = match accel {
                    Some(accel) => accel,
                    None => {
                        let chosen = choose_accel(args.accel, &root, &kernel, image, *size)?;
                        accel = Some(chosen);
                        chosen
                    }
                };
                eprintln!(
                    "xtask kernels: {} {} ({}, standing for {}) under {}",
                    kernel.release,
                    kernel.version,
                    suite_name,
                    cell.stands_for,
                    accel.describe()
                );
                let timeout = if args.smoke {
                    SMOKE_TIMEOUT
                } else {
                    FULL_TIMEOUT
                };
                run_in_guest(&kernel, image, *size, accel, timeout, &root.join(cell.name))?
            }
            (Some(_), None) => unreachable!("the initramfs is built when a VM cell runs"),
        };
        println!("{}", tally.line());
        eprintln!(
            "xtask kernels: {} took {:.0?}",
            tally.release, tally.elapsed
        );
        for failure in &tally.failed {
            println!("  failed: {failure}");
        }
        if let Some(log) = &tally.log {
            println!("  output: {}", log.display());
        }
        tallies.push(tally);
    }
    eprintln!("xtask kernels: the matrix took {:.0?}", started.elapsed());
    if tallies.len() > 1 {
        for tally in &tallies {
            println!("{}", tally.line());
        }
    }
    let failed: usize = tallies.iter().map(|t| t.failed.len()).sum();
    if failed > 0 {
        bail!("{failed} kernel test(s) failed");
    }
    Ok(())
}

/// The kernel test suite, built (debug, as `cargo xtask test` builds it) with the programs it
/// starts.
struct Suite {
    tests: PathBuf,
    programs: Vec<PathBuf>,
    /// `CARGO_TARGET_TMPDIR`, where a failed test keeps its trace.
    tmpdir: PathBuf,
}

fn build_suite() -> Result<Suite> {
    eprintln!("xtask kernels: building the kernel test suite");
    let output = crate::command("cargo")
        .args([
            "test",
            "--package",
            "tracer-tests",
            "--test",
            "kernel",
            "--no-run",
        ])
        .args(["--message-format", "json-render-diagnostics"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    if !output.status.success() {
        bail!("building the kernel tests failed");
    }
    let mut tests = None;
    let mut programs = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(executable) = message["executable"].as_str() else {
            continue;
        };
        let kinds = &message["target"]["kind"];
        if message["target"]["name"] == "kernel"
            && kinds
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "test"))
        {
            tests = Some(PathBuf::from(executable));
        } else if kinds
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "bin"))
            && message["package_id"]
                .as_str()
                .is_some_and(|id| id.contains("tracer-tests"))
        {
            programs.push(PathBuf::from(executable));
        }
    }
    let tests = tests.context("cargo built no kernel test binary")?;
    if programs.is_empty() {
        bail!("cargo reported none of the programs the kernel tests start");
    }
    Ok(Suite {
        tests,
        programs,
        tmpdir: crate::workspace_root().join("target/tmp"),
    })
}

/// The guest's root: busybox as every command, the suite, and an init that runs it.
fn guest_initramfs(suite: &Suite, filter: &[&str]) -> Result<Initramfs> {
    let mut image = Initramfs::default();
    for dir in ["proc", "sys", "dev", "tmp", "run", "root", "etc"] {
        image.directory(dir);
    }
    image.program(Path::new(BUSYBOX))?;
    for link in ["usr/bin", "sbin", "usr/sbin"] {
        image.symlink(link, "/bin");
    }
    image.text(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
            .into(),
        false,
    );
    image.text("etc/group", "root:x:0:\nnogroup:x:65534:\n".into(), false);
    image.directory(&suite.tmpdir);
    image.program(&suite.tests)?;
    for program in &suite.programs {
        image.program(program)?;
    }
    let command: Vec<String> = std::iter::once(shell_quote(&suite.tests.display().to_string()))
        .chain(filter.iter().map(|f| shell_quote(f)))
        .collect();
    image.text("init", init_script(&command.join(" ")), true);
    Ok(image)
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Mounts what a booted system has (not /tmp: the initramfs is writable memory already, and
/// the checkout, with the suite in it, may well live under /tmp), then runs the suite with its output on the second serial
/// port, between the marks the host looks for. `tracer.probe` on the kernel command line only
/// says the guest booted (the KVM check).
fn init_script(command: &str) -> String {
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
ip link set lo up 2>/dev/null
hostname guest
echo "{RELEASE_MARK}$(uname -r)" > /dev/ttyS1
if ! grep -q tracer.probe /proc/cmdline; then
    cd /tmp
    env -i PATH=/bin HOME=/root TMPDIR=/tmp RUST_BACKTRACE=1 {command} > /dev/ttyS1 2>&1
    echo "{EXIT_MARK}$?" > /dev/ttyS1
fi
sync
poweroff -f
"#
    )
}

fn memory_mib(initramfs_bytes: u64) -> u64 {
    // The archive is unpacked into RAM, and the tests need their own room on top.
    2048 + 2 * initramfs_bytes.div_ceil(1 << 20)
}

/// KVM when a guest boots under it here (some hosts' KVM hangs guests right after the boot
/// loader), else TCG. The verdict is kept per host kernel and qemu, as finding out may cost
/// the probe's whole timeout.
fn choose_accel(
    choice: AccelChoice,
    root: &Path,
    kernel: &fetch::Kernel,
    initramfs: &Path,
    size: u64,
) -> Result<Accel> {
    match choice {
        AccelChoice::Kvm => return Ok(Accel::Kvm),
        AccelChoice::Tcg => return Ok(Accel::Tcg),
        AccelChoice::Auto => {}
    }
    if !Path::new("/dev/kvm").exists() {
        eprintln!("xtask kernels: no /dev/kvm: guests run under TCG (software emulation)");
        return Ok(Accel::Tcg);
    }
    let host = crate::output(Command::new("uname").arg("-r")).unwrap_or_default();
    let qemu =
        crate::output(Command::new("qemu-system-x86_64").arg("--version")).unwrap_or_default();
    let key = format!(
        "{} {}",
        host.trim(),
        qemu.lines().next().unwrap_or_default().trim()
    );
    let verdict_file = root.join("kvm-verdict");
    if let Ok(text) = std::fs::read_to_string(&verdict_file)
        && let Some((works, cached_key)) = text.trim().split_once(' ')
        && cached_key == key
    {
        let accel = if works == "kvm" {
            Accel::Kvm
        } else {
            Accel::Tcg
        };
        eprintln!(
            "xtask kernels: guests run under {} (checked before on this host)",
            accel.describe()
        );
        return Ok(accel);
    }
    let outcome = vm::boot(&Boot {
        image: &kernel.image,
        initramfs,
        memory_mib: memory_mib(size),
        accel: Accel::Kvm,
        timeout: KVM_PROBE_TIMEOUT,
        dir: &root.join("kvm-probe"),
        cmdline: "tracer.probe",
    })?;
    let accel = if outcome.release.is_some() {
        eprintln!("xtask kernels: guests run under KVM");
        Accel::Kvm
    } else {
        eprintln!(
            "xtask kernels: a KVM guest did not boot within {KVM_PROBE_TIMEOUT:?} here: \
             guests run under TCG (software emulation)"
        );
        Accel::Tcg
    };
    let word = if accel == Accel::Kvm { "kvm" } else { "tcg" };
    std::fs::write(&verdict_file, format!("{word} {key}\n"))?;
    Ok(accel)
}

fn run_in_guest(
    kernel: &fetch::Kernel,
    initramfs: &Path,
    size: u64,
    accel: Accel,
    timeout: Duration,
    dir: &Path,
) -> Result<Tally> {
    let outcome = vm::boot(&Boot {
        image: &kernel.image,
        initramfs,
        memory_mib: memory_mib(size),
        accel,
        timeout,
        dir,
        cmdline: "",
    })?;
    let release = outcome
        .release
        .clone()
        .unwrap_or_else(|| kernel.release.clone());
    let mut tally = tally(&release, &outcome.output, outcome.elapsed);
    let unfinished = if outcome.timed_out {
        Some(format!("the guest did not finish within {timeout:?}"))
    } else if outcome.release.is_none() {
        Some(format!(
            "the guest never reached its init (console: {})",
            outcome.console.display()
        ))
    } else if outcome.exit.is_none() {
        Some("the suite did not finish (the guest stopped mid-run)".into())
    } else if outcome.exit != Some(0) && tally.failed.is_empty() {
        Some(format!("the suite exited with status {:?}", outcome.exit))
    } else {
        None
    };
    if let Some(reason) = unfinished {
        tally.failed.push(reason);
    }
    if !tally.failed.is_empty() {
        tally.log = Some(outcome.results);
    }
    Ok(tally)
}

fn run_on_host(suite: &Suite, filter: &[&str], dir: &Path) -> Result<Tally> {
    std::fs::create_dir_all(dir)?;
    let release = crate::output(Command::new("uname").arg("-r"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    eprintln!("xtask kernels: {release} (this machine's kernel, no VM)");
    let started = Instant::now();
    let output = Command::new(&suite.tests)
        .args(filter)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", suite.tests.display()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let log = dir.join("results.log");
    std::fs::write(&log, &text)?;
    let mut tally = tally(&release, &text, started.elapsed());
    if !output.status.success() && tally.failed.is_empty() {
        tally
            .failed
            .push(format!("the suite exited with {}", output.status));
    }
    if !tally.failed.is_empty() {
        tally.log = Some(log);
    }
    Ok(tally)
}

/// Counts libtest's `test NAME ... ok` and `... FAILED` lines.
fn tally(release: &str, output: &str, elapsed: Duration) -> Tally {
    let mut passed = 0;
    let mut failed = Vec::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix("test ") else {
            continue;
        };
        if rest.ends_with(" ... ok") {
            passed += 1;
        } else if let Some(name) = rest.strip_suffix(" ... FAILED") {
            failed.push(name.to_owned());
        }
    }
    Tally {
        release: release.to_owned(),
        passed,
        failed,
        elapsed,
        log: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libtest_lines_are_counted() {
        let output = "running 3 tests\n\
                      test smoke::doctor ... ok\n\
                      test smoke::workload ... FAILED\n\
                      test other ... ignored\n\
                      test result: FAILED. 1 passed; 1 failed; 1 ignored\n";
        let tally = tally("5.10.0-46-amd64", output, Duration::ZERO);
        assert_eq!(tally.passed, 1);
        assert_eq!(tally.failed, ["smoke::workload"]);
        assert_eq!(tally.line(), "kernel 5.10.0-46-amd64: 1 passed, 1 failed");
    }
}
