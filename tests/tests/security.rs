//! The tracer runs as root on shared hosts: against the real kernel, what it keeps of other
//! people's processes (redacted command lines, no environment unless allowlisted), what it
//! keeps of its own privileges after attaching, and what hostile processes can do to its
//! output.

mod support;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};

use support::{
    Held, Recording, TRACER, Trace, kernel_test, peak_rss_kib, pid, wait_bounded,
    wait_for_stderr_line,
};
use tracer_core::event::Event;

const SECRET_ARG: &str = "hunter2-5531";
const SECRET_ENV: &str = "env-secret-5531";

fn secret_env() -> [(&'static str, &'static str); 2] {
    [
        ("TRACER_CTX_DAG_ID", "etl_daily"),
        ("TRACER_SECRET_TOKEN", SECRET_ENV),
    ]
}

fn title() -> String {
    format!("worker --password={SECRET_ARG} --user admin")
}

fn held_with_secrets() -> Held {
    Held::start_with_env(&["rename", "--title", &title()], &secret_env())
}

/// Records while one process started before and one after the tracer; both hold a password
/// in their title and a secret in their environment.
fn record_with_secrets(args: &[&str]) -> (Trace, u32, u32) {
    let before = held_with_secrets();
    let recording = Recording::start(args);
    let after = held_with_secrets();
    let (before_pid, after_pid) = (before.pid(), after.pid());
    // The environment is read from /proc after the exec: the process must still be there.
    recording.wait_for(
        "the rename",
        |e| matches!(e, Event::Rename(r) if r.pid == after_pid),
    );
    after.release();
    before.release();
    (recording.stop(), before_pid, after_pid)
}

fn file_text(trace: &Trace) -> String {
    std::fs::read_to_string(trace.path()).unwrap()
}

#[test]
fn redacted_secrets_and_unlisted_variables_never_reach_the_trace() {
    let _kernel = kernel_test();
    let (trace, before, after) = record_with_secrets(&[
        "--redact",
        r"--password[= ](\S+)",
        "--capture-env",
        "TRACER_CTX_*",
    ]);
    let text = file_text(&trace);
    assert!(!text.contains(SECRET_ARG), "the password was redacted");
    assert!(
        !text.contains(SECRET_ENV),
        "the secret variable was not read"
    );
    let wanted: BTreeMap<String, String> =
        [("TRACER_CTX_DAG_ID".into(), "etl_daily".into())].into();
    let redacted_title = "worker --password=[REDACTED] --user admin";

    let snapshot = trace.only("snapshot", trace.snapshots().filter(|s| s.pid == before));
    assert!(
        snapshot.cmdline.iter().any(|a| a == redacted_title),
        "{:?}",
        snapshot.cmdline
    );
    assert_eq!(snapshot.env, wanted);

    let exec = trace.only("exec", trace.execs().filter(|x| x.pid == after));
    assert_eq!(
        exec.cmdline.last().map(String::as_str),
        Some(redacted_title),
        "the title as an argument"
    );
    assert_eq!(exec.env, wanted);
    let rename = trace.only("rename", trace.renames().filter(|r| r.pid == after));
    assert_eq!(
        rename.cmdline.as_deref(),
        Some(&[redacted_title.to_owned()][..])
    );

    // The model (and so every finding and the terminal) only ever saw the redacted text.
    let (pipeline, _, _) =
        support::replay(trace.path(), None, None, tracer_core::ingest::NullSink).unwrap();
    let view = serde_json::to_string(&pipeline.model.view()).unwrap();
    assert!(!view.contains(SECRET_ARG));
}

#[test]
fn without_an_allowlist_no_environment_is_read() {
    let _kernel = kernel_test();
    let (trace, before, after) = record_with_secrets(&[]);
    let text = file_text(&trace);
    assert!(
        !text.contains("etl_daily"),
        "no variable captured by default"
    );
    assert!(!text.contains(SECRET_ENV));
    assert!(trace.snapshots().all(|s| s.env.is_empty()));
    assert!(trace.execs().all(|x| x.env.is_empty()));
    // Nothing redacted without a pattern: the title is there as the process set it.
    let rename = trace.only("rename", trace.renames().filter(|r| r.pid == after));
    assert_eq!(rename.cmdline.as_deref(), Some(&[title()][..]));
    assert!(trace.snapshots().any(|s| s.pid == before));
}

/// `Name:\tvalue` fields of every thread of `pid`, by thread.
fn thread_status(pid: u32, field: &str) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    tasks
        .map(|task| {
            let status = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap();
            status
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{field}:")))
                .unwrap_or_else(|| panic!("no {field} in status"))
                .trim()
                .to_owned()
        })
        .collect()
}

fn assert_capabilities(recording: &Recording, effective: u64) {
    let pid = recording.pid();
    let mask = format!("{effective:016x}");
    for field in ["CapEff", "CapPrm"] {
        for value in thread_status(pid, field) {
            assert_eq!(value, mask, "{field} of every thread");
        }
    }
    for field in ["CapInh", "CapAmb"] {
        assert!(
            thread_status(pid, field)
                .iter()
                .all(|v| v == "0000000000000000"),
            "{field}"
        );
    }
    for value in thread_status(pid, "CapBnd") {
        assert_eq!(value, mask, "bounding set");
    }
    assert!(thread_status(pid, "NoNewPrivs").iter().all(|v| v == "1"));
}

#[test]
fn after_attaching_the_tracer_keeps_no_capability() {
    let _kernel = kernel_test();
    let recording = Recording::start(&["--python-inspect", "off"]);
    assert!(
        recording.stderr().contains("all capabilities dropped"),
        "{}",
        recording.stderr()
    );
    assert_capabilities(&recording, 0);
    // And it still does its work: events flow, lost counters are read, the trace is closed.
    let report = support::workload(&["fork-exec-exit", "--code", "3"]);
    let child = support::pid(&report, "child");
    let trace = recording.stop();
    let exit = trace.only("exit", trace.exits().filter(|x| x.pid == child));
    assert_eq!(exit.exit_code, Some(3));
    assert!(
        trace.stderr.contains("no kernel records lost"),
        "{}",
        trace.stderr
    );
}

/// Reading Python interpreters (on by default) needs CAP_SYS_PTRACE and nothing else; the
/// ready line says why it is kept.
#[test]
fn reading_python_interpreters_keeps_only_ptrace_and_says_why() {
    let _kernel = kernel_test();
    let recording = Recording::start(&[]);
    assert!(
        recording.stderr().contains(
            "capabilities dropped except CAP_SYS_PTRACE (CAP_SYS_PTRACE to read Python \
             interpreters; --python-inspect off drops it)"
        ),
        "{}",
        recording.stderr()
    );
    assert_capabilities(&recording, 1 << 19);
    recording.stop();
}

#[test]
fn reading_allowlisted_environments_keeps_only_ptrace() {
    let _kernel = kernel_test();
    let recording =
        Recording::start(&["--capture-env", "AIRFLOW_CTX_*", "--python-inspect", "off"]);
    assert!(
        recording
            .stderr()
            .contains("capabilities dropped except CAP_SYS_PTRACE"),
        "{}",
        recording.stderr()
    );
    assert_capabilities(&recording, 1 << 19);
    recording.stop();
}

/// Output meant for a terminal holds nothing a terminal would act on.
fn assert_inert(what: &str, output: &[u8]) {
    let text = std::str::from_utf8(output).unwrap_or_else(|e| panic!("{what} is not UTF-8: {e}"));
    for (byte, name) in [(0x1b, "ESC"), (b'\r', "CR"), (0x07, "BEL")] {
        assert!(!output.contains(&byte), "{what} holds a raw {name}");
    }
    // As a character: the byte 0x9b is also part of ordinary UTF-8 (box drawing, say).
    assert!(!text.contains('\u{9b}'), "{what} holds a C1 CSI");
}

#[test]
fn hostile_processes_cannot_break_the_output_or_the_memory_bound() {
    let _kernel = kernel_test();
    // The terminal stream (`watch --plain`) and a recording, side by side.
    let mut watch = Command::new(TRACER)
        .args(["watch", "--plain"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut watch_out = watch.stdout.take().unwrap();
    let watched = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = watch_out.read_to_end(&mut bytes);
        bytes
    });
    // Attached, or the hostile processes would only be in its snapshot, which is not news.
    wait_for_stderr_line(&mut watch, "tracer: watching");
    let recording = Recording::start(&[]);
    let held = Held::start(&["hostile", "--rate", "10000", "--seconds", "3"]);
    let (exotic, renamer) = (pid(&held.report, "exotic"), pid(&held.report, "renamer"));
    let renames_sent = held.report["renames_at_least"].as_u64().unwrap();
    assert!(
        renames_sent >= 20_000,
        "the renamer kept its rate: {renames_sent}"
    );
    // The rest of a long command line is read from /proc: keep the process until then.
    recording.wait_for(
        "the exotic exec",
        |e| matches!(e, Event::Exec(x) if x.pid == exotic),
    );
    let peak_kib = peak_rss_kib(recording.pid());
    held.release();
    let trace = recording.stop();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watch.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert!(wait_bounded(&mut watch, std::time::Duration::from_secs(60), "watch").success());
    let watched = watched.join().unwrap();

    // Memory: the 8 MiB ring buffer is mapped twice (16 MiB); the rest stays small.
    eprintln!("recorder peak RSS {} MiB", peak_kib >> 10);
    assert!(peak_kib < 96 << 10, "peak RSS {peak_kib} KiB");

    // Every rename is in the trace, or counted as lost.
    let renames = trace.renames().filter(|r| r.pid == renamer).count() as u64;
    assert!(
        renames + trace.lost().rename >= renames_sent,
        "{renames} renames recorded, {} lost, {renames_sent} made",
        trace.lost().rename
    );

    // The 128 KiB of arguments are capped, and say so.
    let exec = trace.only("exotic exec", trace.execs().filter(|x| x.pid == exotic));
    let kept: usize = exec.cmdline.iter().map(|a| a.len() + 1).sum();
    assert!(exec.cmdline_truncated);
    // Read capped at CMDLINE_CAP bytes; the few invalid UTF-8 bytes grow into \xNN escapes.
    assert!(
        kept <= tracer_live::procfs::CMDLINE_CAP + 32,
        "{kept} bytes kept"
    );
    assert_eq!(exec.cmdline[0], "\u{1b}[2J\u{1b}]0;owned\u{7}\nevil\\xff");
    assert_eq!(exec.comm, "\u{1b}[2J\u{1b}]0;owned\u{7}\n", "15 bytes");

    // The terminal stream: every line is one event, and nothing in it is live.
    assert_inert("watch --plain", &watched);
    let watched = String::from_utf8(watched).unwrap();
    let exotic_line = watched
        .lines()
        .find(|l| l.contains(" exec ") && l.contains(&format!(" {exotic} ")))
        .expect("the exotic exec is shown");
    assert!(
        exotic_line.contains("\\x1b[2J\\x1b]0;owned\\x07\\nevil\\xff"),
        "{exotic_line}"
    );
    assert!(exotic_line.len() < 5000, "a long command line is clipped");
    for line in watched.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        assert!(
            first.parse::<f64>().is_ok() || line.starts_with("tracer watch: "),
            "a line that is neither an event nor the status: {line:?}"
        );
    }

    // And what reads the trace back.
    for args in [&["replay"][..], &["report"], &["replay", "--json"]] {
        let output = Command::new(TRACER)
            .args(args)
            .arg(trace.path())
            .output()
            .unwrap();
        assert!(output.status.success(), "{args:?}");
        assert_inert(&format!("{args:?}"), &output.stdout);
    }
}

#[test]
fn a_recording_never_follows_a_planted_symlink_and_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let _kernel = kernel_test();
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("shadow");
    std::fs::write(&victim, "root:secret\n").unwrap();
    let output = dir.path().join("trace.jsonl");
    std::os::unix::fs::symlink(&victim, &output).unwrap();
    let status = Command::new(TRACER)
        .args(["record", "--duration", "0.5", "--output"])
        .arg(&output)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root:secret\n");
    let metadata = std::fs::symlink_metadata(&output).unwrap();
    assert!(metadata.is_file(), "the link was replaced by the trace");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    assert!(Trace::read(&output).header.format == "process-lineage-trace");
}
