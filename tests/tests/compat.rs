//! Hosts the tracer cannot run on get one clear line, not a verifier dump: each missing piece
//! is simulated by pointing the tracer at a kernel root (`TRACER_KERNEL_ROOT`) whose release
//! file or BTF lacks it. The BTF variants are this kernel's own, with one name changed, so
//! they are exactly what a kernel with a different layout looks like.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::{TRACER, kernel_test};

const BTF: &str = "/sys/kernel/btf/vmlinux";

/// A fake kernel root: `release` as the kernel release, `btf` (if any) as its BTF.
fn kernel_root(dir: &Path, release: &str, btf: Option<&[u8]>) {
    std::fs::create_dir_all(dir.join("proc/sys/kernel")).unwrap();
    std::fs::write(
        dir.join("proc/sys/kernel/osrelease"),
        format!("{release}\n"),
    )
    .unwrap();
    if let Some(btf) = btf {
        std::fs::create_dir_all(dir.join("sys/kernel/btf")).unwrap();
        std::fs::write(dir.join("sys/kernel/btf/vmlinux"), btf).unwrap();
    }
}

/// This kernel's BTF with the name `from` (in its string table) changed to `to`.
fn renamed_btf(from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut btf = std::fs::read(BTF).unwrap();
    let needle = format!("\0{from}\0").into_bytes();
    let at = btf
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{from} is in this kernel's BTF"));
    btf[at + 1..at + 1 + to.len()].copy_from_slice(to.as_bytes());
    btf
}

fn run(root: &Path, args: &[&str]) -> Output {
    Command::new(TRACER)
        .args(args)
        .env("TRACER_KERNEL_ROOT", root)
        .output()
        .unwrap()
}

/// `record` refuses in one line containing `needle`, and leaves no trace file behind; `doctor`
/// marks the piece missing and fails.
fn assert_refused(root: &Path, needle: &str, doctor_check: &str) {
    let trace = root.join("trace.jsonl");
    let output = run(
        root,
        &["record", "--duration", "1", "-o", trace.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("tracer: error: "), "{stderr}");
    assert!(stderr.contains(needle), "{needle:?} in {stderr}");
    assert!(!stderr.to_lowercase().contains("verifier"), "{stderr}");
    assert!(!trace.exists(), "no trace of a run that never started");

    let output = run(root, &["doctor"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains(doctor_check))
        .unwrap_or_else(|| panic!("no {doctor_check} check in {stdout}"));
    assert!(line.contains("missing"), "{line}");
}

#[test]
fn each_missing_kernel_piece_is_a_one_line_refusal() {
    let _kernel = kernel_test();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let release = release.trim();
    let real = std::fs::read(BTF).unwrap();
    // (what, kernel release, BTF, the refusal says, the doctor check that fails)
    type Case<'a> = (&'a str, String, Option<Vec<u8>>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "an old kernel",
            "5.4.0-150-generic".into(),
            Some(real.clone()),
            "kernel 5.4 is too old",
            "kernel",
        ),
        (
            "no BTF",
            release.into(),
            None,
            "CONFIG_DEBUG_INFO_BTF=y",
            "btf",
        ),
        (
            "a truncated BTF",
            release.into(),
            Some(real[..4096].to_vec()),
            "cannot read kernel BTF",
            "btf",
        ),
        (
            "garbage for BTF",
            release.into(),
            Some(b"\x7fELF not BTF at all".to_vec()),
            "cannot read kernel BTF",
            "btf",
        ),
        (
            "a task_struct without real_parent",
            release.into(),
            Some(renamed_btf("real_parent", "real_parenX")),
            "real_parent",
            "btf",
        ),
        (
            "no signal_generate tracepoint",
            release.into(),
            Some(renamed_btf(
                "btf_trace_signal_generate",
                "btf_trace_signal_generatX",
            )),
            "signal_generate",
            "btf",
        ),
    ];
    for (what, release, btf, needle, check) in cases {
        eprintln!("simulating {what}");
        let dir = tempfile::tempdir().unwrap();
        kernel_root(dir.path(), &release, btf.as_deref());
        assert_refused(dir.path(), needle, check);
    }
}
