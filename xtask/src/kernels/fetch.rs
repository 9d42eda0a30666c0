//! Debian's own kernels, fetched once into `target/kernels/`. Each suite is read through an apt
//! configuration of its own (sources, lists, cache, an empty dpkg status), so the host's apt
//! set-up is never touched; the kernel is what the suite's `linux-image-amd64` depends on today,
//! downloaded with `apt-get download` and unpacked with `dpkg-deb`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

pub const ARCHIVE: &str = "http://deb.debian.org/debian";
const SECURITY: &str = "http://deb.debian.org/debian-security";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A kernel ready to boot.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub image: PathBuf,
    /// Its release, from the package name (`5.10.0-46-amd64`).
    pub release: String,
    /// The package's version (`5.10.262-1`).
    pub version: String,
}

/// The suite's kernel, from the cache when it is there.
pub fn kernel(cache: &Path, suite: &str) -> Result<Kernel> {
    let dir = cache.join(suite);
    let stamp = dir.join("kernel");
    if let Ok(text) = std::fs::read_to_string(&stamp)
        && let Some(kernel) = parse_stamp(&dir, &text)
        && kernel.image.exists()
    {
        return Ok(kernel);
    }
    let started = std::time::Instant::now();
    eprintln!("xtask kernels: fetching the {suite} kernel from Debian's archive (once)");
    let apt = Apt::new(&dir, suite)?;
    apt.run("apt-get", &["update", "-qq"])?;
    let depends = apt.output("apt-cache", &["depends", "linux-image-amd64"])?;
    let package = depends
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Depends: "))
        .find(|name| name.starts_with("linux-image-") && name.ends_with("-amd64"))
        .with_context(|| format!("{suite}'s linux-image-amd64 names no kernel:\n{depends}"))?
        .to_owned();
    let version = apt
        .output("apt-cache", &["show", "--no-all-versions", "-q", &package])?
        .lines()
        .find_map(|line| line.strip_prefix("Version: "))
        .with_context(|| format!("no version of {package} in {suite}"))?
        .to_owned();
    let downloads = dir.join("downloads");
    std::fs::create_dir_all(&downloads)?;
    apt.run_in(
        &downloads,
        "apt-get",
        &["download", "-q", &format!("{package}={version}")],
    )?;
    let deb = std::fs::read_dir(&downloads)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb"))
        })
        .with_context(|| format!("apt-get download left no {package} package"))?;
    let unpacked = dir.join("unpacked");
    let _ = std::fs::remove_dir_all(&unpacked);
    crate::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked))?;
    let release = package
        .strip_prefix("linux-image-")
        .expect("checked above")
        .to_owned();
    let image = dir.join(format!("vmlinuz-{release}"));
    std::fs::copy(unpacked.join(format!("boot/vmlinuz-{release}")), &image)
        .with_context(|| format!("{package} holds no boot/vmlinuz-{release}"))?;
    // The image is all that is booted: the package's modules are not needed.
    let _ = std::fs::remove_dir_all(&unpacked);
    let _ = std::fs::remove_file(&deb);
    std::fs::write(&stamp, format!("{release}\n{version}\n"))?;
    eprintln!(
        "xtask kernels: {package} {version} in {:.0?}",
        started.elapsed()
    );
    Ok(Kernel {
        image,
        release,
        version,
    })
}

fn parse_stamp(dir: &Path, text: &str) -> Option<Kernel> {
    let mut lines = text.lines();
    let release = lines.next()?.trim().to_owned();
    let version = lines.next()?.trim().to_owned();
    Some(Kernel {
        image: dir.join(format!("vmlinuz-{release}")),
        release,
        version,
    })
}

/// apt, pointed at one suite and at state of its own.
struct Apt {
    options: Vec<String>,
}

impl Apt {
    fn new(dir: &Path, suite: &str) -> Result<Apt> {
        if !Path::new(KEYRING).exists() {
            bail!("{KEYRING} is missing: install debian-archive-keyring");
        }
        let lists = dir.join("apt/lists");
        let cache = dir.join("apt/cache");
        std::fs::create_dir_all(lists.join("partial"))?;
        std::fs::create_dir_all(cache.join("archives/partial"))?;
        let sources = dir.join("apt/sources.list");
        std::fs::write(
            &sources,
            format!(
                "deb [signed-by={KEYRING}] {ARCHIVE} {suite} main\n\
                 deb [signed-by={KEYRING}] {SECURITY} {suite}-security main\n"
            ),
        )?;
        let option = |name: &str, value: &Path| format!("-o{name}={}", value.display());
        Ok(Apt {
            options: vec![
                option("Dir::Etc::sourcelist", &sources),
                "-oDir::Etc::sourceparts=-".into(),
                option("Dir::State::Lists", &lists),
                option("Dir::Cache", &cache),
                "-oDir::State::status=/dev/null".into(),
                "-oAPT::Architecture=amd64".into(),
                // Its own lists and cache: the host's apt locks are not ours to take.
                "-oDebug::NoLocking=1".into(),
                // Downloads land in a root-owned directory; apt's sandbox user cannot write it.
                "-oAPT::Sandbox::User=root".into(),
            ],
        })
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.args(&self.options);
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        crate::run(self.command(program).args(args))
    }

    fn run_in(&self, dir: &Path, program: &str, args: &[&str]) -> Result<()> {
        crate::run(self.command(program).args(args).current_dir(dir))
    }

    fn output(&self, program: &str, args: &[&str]) -> Result<String> {
        let output = self
            .command(program)
            .args(args)
            .output()
            .with_context(|| format!("cannot run {program}"))?;
        if !output.status.success() {
            bail!(
                "{program} {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}
