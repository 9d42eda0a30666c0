//! `cargo xtask`: installs what the tracer needs to build (each step checks first, so a warm
//! machine pays a few milliseconds), then builds, runs or tests it.
//!
//! Prerequisites, as verified on this fleet's machines: a pinned nightly toolchain with
//! `rust-src` (the probes build `core` for the BPF target), Debian's LLVM 22 development
//! packages, and `bpf-linker` 0.13.0 linked against that LLVM. The nightly is pinned because
//! its LLVM must match bpf-linker's: a newer nightly writes bitcode LLVM 22 cannot read.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

mod bench;
mod kernels;

const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const LLVM_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libxml2-dev",
];
const BPF_LINKER_VERSION: &str = "0.13.0";

/// The Python stacks the real-world tests run, each in a venv of its own. Pinned: the tests
/// assert on process titles and kill paths these versions have.
const VENVS: &[(&str, &[&str])] = &[
    (
        "celery",
        &[
            "celery[redis]==5.7.0",
            "kombu==5.7.0",
            "billiard==4.3.2",
            "redis==8.1.0",
            "setproctitle==1.3.8",
        ],
    ),
    (
        "airflow2",
        &[
            "apache-airflow==2.10.5",
            "apache-airflow-providers-celery==3.10.0",
            "celery==5.4.0",
            "kombu==5.4.2",
            "billiard==4.2.1",
            "redis==5.2.1",
            "click==8.1.8",
            "setproctitle==1.3.8",
        ],
    ),
];

/// Debian packages the tests need: Redis for the real-world tests, tmux and Graphviz for the
/// TUI and export tests, Prometheus to scrape the agent, systemd to verify its unit.
const TEST_PACKAGES: &[&str] = &[
    "redis-server",
    "tmux",
    "graphviz",
    "prometheus",
    "systemd",
    "debootstrap",
];

/// The CPython versions the interpreter reader is tested on besides the host's: Debian's
/// root filesystems with their `python3` and billiard, each `debootstrap`ped once.
const PYTHON_ROOTS: &[(&str, &str)] = &[
    ("bullseye", "3.9"),
    ("bookworm", "3.11"),
    ("trixie", "3.13"),
    ("sid", "3.14"),
];
const PYTHON_ROOT_PACKAGES: &str = "python3,python3-billiard";
/// The probes' toolchain (LLVM 22.1), shared with `tracer-live/build.rs`.
const BPF_TOOLCHAIN: &str = include_str!("../../tracer-ebpf/TOOLCHAIN");

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install missing prerequisites (the probes' nightly, LLVM 22, bpf-linker).
    Setup,
    /// Set up, build in release mode and run the tracer (default: `watch`).
    Run {
        /// Arguments for `tracer` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Set up and run every test: unit tests and the kernel tests (root), then the kernel
    /// matrix's smoke tests on Debian's 5.10, 6.1 and 6.12 kernels.
    Test {
        /// Extra arguments for `cargo test` (after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Set up, then check formatting and run clippy with warnings as errors.
    Lint,
    /// Set up, install the anchors (perf, bpftrace, libbpf-tools, forkstat), then benchmark
    /// the tracer side by side with them, and its userspace alone (root).
    Bench(bench::BenchArgs),
    /// Set up, then run the kernel test suite on each kernel of the matrix (Debian's 5.10,
    /// 6.1 and 6.12 in qemu, and the host's own) (root).
    Kernels(kernels::KernelsArgs),
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_owned()
}

/// Where `cargo install` puts programs; None when neither CARGO_HOME nor HOME says.
fn cargo_home_bin() -> Option<PathBuf> {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .map(|home| home.join("bin"))
}

/// PATH with cargo's bin directory first: rustc finds `bpf-linker` there.
fn tool_path() -> OsString {
    let first = cargo_home_bin();
    let mut paths: Vec<PathBuf> = first.iter().cloned().collect();
    if let Some(path) = env::var_os("PATH") {
        paths.extend(env::split_paths(&path).filter(|p| Some(p) != first.as_ref()));
    }
    env::join_paths(paths).expect("PATH entries are joinable")
}

fn command(program: &str) -> Command {
    let mut command = Command::new(program);
    command
        .env("PATH", tool_path())
        .current_dir(workspace_root());
    command
}

fn run(command: &mut Command) -> Result<()> {
    let shown = format!("{command:?}");
    let status = command
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed: {status}");
    }
    Ok(())
}

/// Says what is being installed and why, does it, and says how long it took: a fresh
/// machine's set-up time is worth knowing.
fn install(what: &str, action: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("xtask: {what}");
    let started = std::time::Instant::now();
    action()?;
    eprintln!("xtask: done in {:.0?}", started.elapsed());
    Ok(())
}

fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0")
}

/// A command run as root: directly when we are root, else through sudo.
fn as_root(program: &str) -> Command {
    if is_root() {
        command(program)
    } else {
        let mut sudo = command("sudo");
        sudo.arg(program);
        sudo
    }
}

/// Installs the pinned nightly with `rust-src`. A dated toolchain never replaces the
/// machine's own `nightly`.
fn ensure_bpf_toolchain() -> Result<()> {
    let toolchain = BPF_TOOLCHAIN.trim();
    let installed = output(command("rustup").args([
        "component",
        "list",
        "--toolchain",
        toolchain,
        "--installed",
    ]));
    if installed.is_some_and(|components| components.contains("rust-src")) {
        return Ok(());
    }
    install(
        &format!(
            "installing the {toolchain} toolchain with rust-src (the probes build core for BPF)"
        ),
        || {
            run(command("rustup").args([
                "toolchain",
                "install",
                toolchain,
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]))
        },
    )
}

fn missing_packages(packages: &[&'static str]) -> Vec<&'static str> {
    packages
        .iter()
        .copied()
        .filter(|package| {
            let mut query = Command::new("dpkg-query");
            query.args(["-W", "-f=${Status}", package]);
            !output(&mut query).is_some_and(|status| status.contains("install ok installed"))
        })
        .collect()
}

fn apt_install(packages: &[&str], why: &str) -> Result<()> {
    install(
        &format!("installing {} ({why})", packages.join(" ")),
        || {
            run(as_root("apt-get")
                .args(["update", "-q"])
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
            run(as_root("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(packages)
                .env("DEBIAN_FRONTEND", "noninteractive"))
        },
    )
}

fn ensure_llvm() -> Result<()> {
    let missing = missing_packages(LLVM_PACKAGES);
    if missing.is_empty() && Path::new(LLVM_PREFIX).join("bin/llvm-config").exists() {
        return Ok(());
    }
    apt_install(&missing, "for bpf-linker")
}

/// Where the real-world tests' venvs live: outside the repository, kept between runs.
fn test_cache() -> PathBuf {
    env::var_os("TRACER_TEST_CACHE")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cache/tracer-tests")))
        .unwrap_or_else(|| PathBuf::from("/var/cache/tracer-tests"))
}

/// Redis from Debian, and a venv per Python stack, each built once per set of pins.
fn ensure_test_stacks() -> Result<PathBuf> {
    let missing = missing_packages(TEST_PACKAGES);
    if !missing.is_empty() {
        apt_install(&missing, "for the real-world tests")?;
    }
    let venvs = test_cache().join("venvs");
    for (name, requirements) in VENVS {
        let venv = venvs.join(name);
        let stamp = venv.join("tracer-requirements.txt");
        let wanted = requirements.join("\n");
        if std::fs::read_to_string(&stamp).is_ok_and(|have| have == wanted) {
            continue;
        }
        let what = format!(
            "building the {name} venv for the real-world tests ({})",
            requirements.join(" ")
        );
        install(&what, || {
            let _ = std::fs::remove_dir_all(&venv);
            std::fs::create_dir_all(&venvs)
                .with_context(|| format!("cannot create {}", venvs.display()))?;
            run(command("python3").arg("-m").arg("venv").arg(&venv))?;
            run(Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "--disable-pip-version-check"])
                .args(*requirements))?;
            std::fs::write(&stamp, &wanted)
                .with_context(|| format!("cannot write {}", stamp.display()))
        })?;
    }
    Ok(venvs)
}

/// CPython builds of other minor versions that a pyenv on the host has (3.8, 3.10, 3.12 are
/// in no Debian suite the archive serves): each gets a venv with billiard under
/// `pythons/venvs`, for the version matrix. None is needed; each one found is tested.
fn ensure_host_pythons(roots: &Path) -> Result<()> {
    let Some(pyenv) = env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")))
    else {
        return Ok(());
    };
    let Ok(versions) = std::fs::read_dir(pyenv.join("versions")) else {
        return Ok(());
    };
    let venvs = roots.join("venvs");
    for entry in versions.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let minor = name
            .strip_prefix("3.")
            .and_then(|rest| rest.split('.').next())
            .and_then(|m| m.parse::<u8>().ok());
        // The minor versions Debian's roots do not have.
        if !matches!(minor, Some(8 | 10 | 12)) || !entry.path().join("bin/python3").exists() {
            continue;
        }
        let venv = venvs.join(format!("python{name}"));
        let stamp = venv.join("tracer-requirements.txt");
        if std::fs::read_to_string(&stamp).is_ok_and(|have| have == HOST_PYTHON_PACKAGES) {
            continue;
        }
        install(
            &format!("a venv of the host's Python {name} with billiard (once)"),
            || {
                let _ = std::fs::remove_dir_all(&venv);
                std::fs::create_dir_all(&venvs)?;
                run(Command::new(entry.path().join("bin/python3"))
                    .args(["-m", "venv"])
                    .arg(&venv))?;
                run(Command::new(venv.join("bin/pip")).args([
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    HOST_PYTHON_PACKAGES,
                ]))?;
                std::fs::write(&stamp, HOST_PYTHON_PACKAGES)
                    .with_context(|| format!("cannot write {}", stamp.display()))
            },
        )?;
    }
    Ok(())
}

const HOST_PYTHON_PACKAGES: &str = "billiard==4.2.1";

/// A root filesystem per Debian suite in [`PYTHON_ROOTS`], made with `debootstrap` from
/// Debian's archive (the host's apt sources untouched), each once: the interpreter reader's
/// version matrix runs its scripts in them with `chroot`.
fn ensure_python_roots() -> Result<PathBuf> {
    let roots = test_cache().join("pythons");
    for (suite, python) in PYTHON_ROOTS {
        let root = roots.join(suite);
        let stamp = root.join("tracer-root.txt");
        if std::fs::read_to_string(&stamp).is_ok_and(|have| have == PYTHON_ROOT_PACKAGES) {
            continue;
        }
        let what = format!("making a Debian {suite} root with Python {python} (once)");
        install(&what, || {
            let building = roots.join(format!("{suite}.tmp"));
            let _ = std::fs::remove_dir_all(&building);
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&roots)
                .with_context(|| format!("cannot create {}", roots.display()))?;
            run(Command::new("debootstrap")
                .args(["--variant=minbase", "--include", PYTHON_ROOT_PACKAGES])
                .arg(suite)
                .arg(&building)
                .arg(kernels::ARCHIVE))?;
            let version = output(Command::new("chroot").arg(&building).args([
                "python3",
                "-c",
                "import sys; print('%d.%d' % sys.version_info[:2])",
            ]))
            .unwrap_or_default();
            if version.trim() != *python {
                bail!("Debian {suite}'s python3 is {version:?}, not {python}");
            }
            std::fs::rename(&building, &root)
                .with_context(|| format!("cannot move {} into place", root.display()))?;
            std::fs::write(&stamp, PYTHON_ROOT_PACKAGES)
                .with_context(|| format!("cannot write {}", stamp.display()))
        })?;
    }
    Ok(roots)
}

fn ensure_bpf_linker() -> Result<()> {
    let linker = cargo_home_bin().map_or_else(|| "bpf-linker".into(), |bin| bin.join("bpf-linker"));
    if output(Command::new(&linker).arg("--version"))
        .is_some_and(|v| v.contains(BPF_LINKER_VERSION))
    {
        return Ok(());
    }
    // Without LLVM_PREFIX its build finds Debian's default llvm-config (LLVM 14) and fails.
    let mut path = OsString::from(Path::new(LLVM_PREFIX).join("bin"));
    path.push(":");
    path.push(tool_path());
    let what = format!("building bpf-linker {BPF_LINKER_VERSION} against LLVM 22 (once)");
    install(&what, || {
        run(command("cargo")
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--force",
            ])
            .args(["--no-default-features", "--features", "llvm-22"])
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .env("PATH", path))
    })
}

/// Crates `tracer-core` must not depend on: it is the pure library (no kernel, async runtime,
/// terminal or libc of its own).
const CORE_FORBIDDEN: &[&str] = &[
    "aya",
    "tokio",
    "ratatui",
    "crossterm",
    "nix",
    "libc",
    "caps",
];

/// The crates of `names` in `package`'s normal and build dependency tree.
fn dependencies_among(package: &str, names: &[&str]) -> Result<Vec<String>> {
    let tree = output(command("cargo").args([
        "tree",
        "--package",
        package,
        "--edges",
        "normal,build",
        "--prefix",
        "none",
    ]))
    .context("cargo tree failed")?;
    Ok(tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| names.contains(name))
        .map(str::to_owned)
        .collect())
}

/// The optional exporters, and what they must not depend on.
const EXPORTERS: &[&str] = &["tracer-metrics", "tracer-otlp"];
const EXPORTER_FORBIDDEN: &[&str] = &[
    "tracer-live",
    "tracer",
    "aya",
    "ratatui",
    "crossterm",
    "caps",
];

/// Checks that `tracer-core` stands alone: none of [`CORE_FORBIDDEN`] in its normal dependency
/// tree, no build script, and its whole test suite passing with the stable toolchain by
/// itself, on a `PATH` where neither rustup's proxies (so no nightly) nor bpf-linker can be
/// found: what building the probes needs.
fn core_stands_alone() -> Result<()> {
    eprintln!("xtask: tracer-core: dependency tree, build script, stable-only tests");
    let forbidden = dependencies_among("tracer-core", CORE_FORBIDDEN)?;
    if !forbidden.is_empty() {
        bail!("tracer-core depends on {}", forbidden.join(", "));
    }
    // The exporters build on tracer-core alone: never on the kernel side or the app.
    for exporter in EXPORTERS {
        let forbidden = dependencies_among(exporter, EXPORTER_FORBIDDEN)?;
        if !forbidden.is_empty() {
            bail!("{exporter} depends on {}", forbidden.join(", "));
        }
    }
    if workspace_root().join("tracer-core/build.rs").exists() {
        bail!("tracer-core has a build script");
    }
    let sysroot = output(command("rustup").args(["run", "stable", "rustc", "--print", "sysroot"]))
        .context("no stable toolchain")?;
    let bare_path = format!("{}/bin:/usr/bin:/bin", sysroot.trim());
    for tool in ["bpf-linker", "rustup"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .env("PATH", &bare_path)
            .output()
            .is_ok_and(|out| out.status.success());
        if found {
            bail!("{tool} is on the bare PATH {bare_path}: the check would prove nothing");
        }
    }
    run(Command::new(Path::new(sysroot.trim()).join("bin/cargo"))
        .args(["test", "--package", "tracer-core", "--quiet"])
        .current_dir(workspace_root())
        .env("PATH", &bare_path)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env(
            "CARGO_TARGET_DIR",
            workspace_root().join("target/core-alone"),
        ))
}

fn setup() -> Result<()> {
    ensure_bpf_toolchain()?;
    ensure_llvm()?;
    ensure_bpf_linker()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = setup().and_then(|()| match cli.command {
        Task::Setup => Ok(()),
        Task::Run { args } => {
            run(command("cargo").args(["build", "--release", "--package", "tracer"]))?;
            let mut tracer = command(
                workspace_root()
                    .join("target/release/tracer")
                    .to_str()
                    .context("non-UTF-8 workspace path")?,
            );
            if args.is_empty() {
                tracer.arg("watch");
            } else {
                tracer.args(args);
            }
            // The tracer's own exit status and one-line errors are what the user needs.
            let status = tracer.status().context("cannot start the tracer")?;
            if status.success() {
                Ok(())
            } else {
                std::process::exit(status.code().unwrap_or(1));
            }
        }
        Task::Test { args } => {
            if !is_root() {
                bail!("the kernel tests load eBPF probes: run `cargo xtask test` as root");
            }
            core_stands_alone()?;
            let venvs = ensure_test_stacks()?;
            let pythons = ensure_python_roots()?;
            ensure_host_pythons(&pythons)?;
            let mut test = command("cargo");
            test.args(["test", "--workspace", "--exclude", "tracer-ebpf"])
                .env("TRACER_TEST_VENVS", &venvs)
                .env("TRACER_TEST_PYTHONS", &pythons);
            let filtered = !args.is_empty();
            if filtered {
                test.arg("--").args(args);
            }
            run(&mut test)?;
            // The kernel matrix's fast subset on the other kernels; a filtered run is someone
            // looking at a few tests, not the whole suite.
            if filtered {
                Ok(())
            } else {
                kernels::run(kernels::KernelsArgs::smoke_in_guests())
            }
        }
        Task::Bench(args) => bench::run(args),
        Task::Kernels(args) => kernels::run(args),
        Task::Lint => {
            run(command("cargo").args(["fmt", "--all", "--check"]))?;
            run(command("cargo").args(["clippy", "--all-targets", "--", "-D", "warnings"]))
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
