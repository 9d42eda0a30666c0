//! Boots a kernel in qemu with the test initramfs, bounded in time, and collects what the
//! guest reported on its second serial port (the first is the kernel's console).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::initramfs::{EXIT_MARK, RELEASE_MARK};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn describe(self) -> &'static str {
        match self {
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG (software emulation)",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            // arch-capabilities: some hosts' KVM refuses the MSR qemu would pass through.
            Accel::Kvm => &["-accel", "kvm", "-cpu", "host,-arch-capabilities"],
            Accel::Tcg => &["-accel", "tcg", "-cpu", "max"],
        }
    }
}

pub struct Boot<'a> {
    pub image: &'a Path,
    pub initramfs: &'a Path,
    pub memory_mib: u64,
    pub accel: Accel,
    pub timeout: Duration,
    /// Where the console and the results go.
    pub dir: &'a Path,
    /// Extra kernel command line words.
    pub cmdline: &'a str,
}

/// What a boot left behind.
pub struct Outcome {
    /// The guest's `uname -r`, once it got that far.
    pub release: Option<String>,
    /// The suite's exit status, once it finished.
    pub exit: Option<i32>,
    /// Everything the suite printed.
    pub output: String,
    pub timed_out: bool,
    pub elapsed: Duration,
    pub console: PathBuf,
    pub results: PathBuf,
}

pub fn boot(boot: &Boot) -> Result<Outcome> {
    std::fs::create_dir_all(boot.dir)?;
    let console = boot.dir.join("console.log");
    let results = boot.dir.join("results.log");
    let _ = std::fs::remove_file(&results);
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(boot.accel.args())
        .args(["-m", &boot.memory_mib.to_string(), "-smp", "2"])
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-kernel")
        .arg(boot.image)
        .arg("-initrd")
        .arg(boot.initramfs)
        .args([
            "-append",
            &format!(
                "console=ttyS0 panic=-1 quiet mitigations=off {}",
                boot.cmdline
            ),
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", results.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start qemu-system-x86_64")?;
    let deadline = started + boot.timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let elapsed = started.elapsed();
    let raw = std::fs::read(&results).unwrap_or_default();
    // The guest's tty turns each newline into CR LF.
    let text = String::from_utf8_lossy(&raw).replace('\r', "");
    let mut release = None;
    let mut exit = None;
    let mut output = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(RELEASE_MARK) {
            release = Some(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix(EXIT_MARK) {
            exit = rest.trim().parse().ok();
        } else {
            output.push_str(line);
            output.push('\n');
        }
    }
    if let Some(status) = status
        && !status.success()
        && exit.is_none()
    {
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        output.push_str(&format!("qemu exited with {status}: {}\n", stderr.trim()));
    }
    Ok(Outcome {
        release,
        exit,
        output,
        timed_out,
        elapsed,
        console,
        results,
    })
}
