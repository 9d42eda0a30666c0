//! Shared harness of the kernel tests: run the real `tracer` program and the workload
//! generator, and read back what was recorded.
//!
//! Determinism without sleeps: a workload reaps everything it starts before it exits, and the
//! probes write each record from inside the traced process before it can be reaped. So once
//! the test has reaped the workload, all of its records are in the ring buffer, and the final
//! drain that follows SIGINT puts them in the trace.
#![allow(dead_code)]

pub mod agent;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tracer::files::{create_trace, load_rules, open_trace};
use tracer::sinks::RecordSink;
use tracer_core::analysis::Analyzer;
use tracer_core::event::{
    Event, Exec, Exit, Finding, LostCounts, ProcessStart, Rename, Reparent, Signal, Snapshot,
};
use tracer_core::ingest::Pipeline;
use tracer_core::ingest::Sink;
use tracer_core::model::Model;
use tracer_core::replay::ReplaySummary;
use tracer_core::roles::Rules;
use tracer_core::trace::TraceHeader;
use tracer_live::host;
use tracer_live::live::{self, LiveOptions};

pub const TRACER: &str = env!("CARGO_BIN_EXE_tracer-e2e");
pub const WORKLOAD: &str = env!("CARGO_BIN_EXE_tracer-workload");
/// The benchmark's workload generator.
pub const LOAD: &str = env!("CARGO_BIN_EXE_tracer-load");

const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(300);

static KERNEL: Mutex<()> = Mutex::new(());

/// Kernel tests share the host's process table and its lost-record counters: one at a time.
/// Also refuses to run (failing, never skipping) without the privileges the probes need.
pub fn kernel_test() -> MutexGuard<'static, ()> {
    assert!(
        nix::unistd::geteuid().is_root(),
        "kernel tests load the eBPF probes and need root: run `cargo xtask test` as root"
    );
    KERNEL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `/proc/PID/stat` parsed the way the tracer parses it (a comm may hold spaces).
pub fn proc_stat(pid: u32) -> Option<tracer_live::procfs::Stat> {
    tracer_live::procfs::parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Peak resident memory of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Waits for a child with a deadline; kills it and panics past the deadline.
pub fn wait_bounded(child: &mut Child, timeout: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Collects a child's stderr in the background; lines also go to a channel.
fn capture_stderr(child: &mut Child) -> (Arc<Mutex<String>>, mpsc::Receiver<String>) {
    let stderr = child.stderr.take().expect("piped stderr");
    let text = Arc::new(Mutex::new(String::new()));
    let (sender, receiver) = mpsc::channel();
    let sink = Arc::clone(&text);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
            let _ = sender.send(line);
        }
    });
    (text, receiver)
}

fn wait_for_line(receiver: &mpsc::Receiver<String>, needle: &str, log: &Mutex<String>) {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return,
            Ok(_) => {}
            Err(_) => panic!(
                "no {needle:?} line within {READY_TIMEOUT:?}; stderr:\n{}",
                log.lock().unwrap()
            ),
        }
    }
}

/// Takes a child's piped stderr and waits (bounded) for a line containing `needle`, as a
/// tracer says it is attached and bootstrapped; the rest of stderr keeps being collected.
pub fn wait_for_stderr_line(child: &mut Child, needle: &str) -> Arc<Mutex<String>> {
    let (log, lines) = capture_stderr(child);
    wait_for_line(&lines, needle, &log);
    log
}

/// A running `tracer record`.
pub struct Recording {
    child: Child,
    path: PathBuf,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

impl Recording {
    /// Starts recording and returns once the tracer says it is attached and bootstrapped.
    pub fn start(extra: &[&str]) -> Recording {
        Recording::start_with_env(extra, &[])
    }

    /// [`Recording::start`] with environment variables set for the tracer.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Recording {
        Recording::start_with_env_while(extra, env, |_| {})
    }

    /// [`Recording::start_with_env`], calling `while_starting` with the tracer's pid as soon
    /// as it runs, before it is ready.
    pub fn start_with_env_while(
        extra: &[&str],
        env: &[(&str, &str)],
        while_starting: impl FnOnce(u32),
    ) -> Recording {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("trace.jsonl");
        let mut child = Command::new(TRACER)
            .arg("record")
            .arg("--output")
            .arg(&path)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tracer record");
        let (stderr, lines) = capture_stderr(&mut child);
        while_starting(child.id());
        wait_for_line(&lines, "tracer: recording to", &stderr);
        Recording {
            child,
            path,
            stderr,
            _dir: dir,
        }
    }

    /// Waits until the trace file (flushed at each batch) has an event `wanted` accepts.
    pub fn wait_for(&self, what: &str, wanted: impl Fn(&Event) -> bool) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(reader) = open_trace(&self.path)
                && reader.filter_map(Result::ok).any(|event| wanted(&event))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no {what} in the trace within {READY_TIMEOUT:?}");
    }

    /// The tracer's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the tracer printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends a signal to the tracer (SIGSTOP and SIGCONT stall and resume its consumer).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal)
            .expect("signal the tracer");
    }

    /// SIGINT, a clean exit, and the whole trace.
    pub fn stop(self) -> Trace {
        self.stop_with(nix::sys::signal::Signal::SIGINT)
    }

    /// Stops the tracer with `signal` (SIGINT, SIGTERM, SIGHUP): a clean exit, and the trace.
    pub fn stop_with(mut self, signal: nix::sys::signal::Signal) -> Trace {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal)
            .expect("signal the tracer");
        let status = wait_bounded(&mut self.child, STOP_TIMEOUT, "tracer record");
        let stderr = self.stderr.lock().unwrap().clone();
        assert!(status.success(), "tracer record failed: {status}\n{stderr}");
        assert!(
            stderr.contains("tracer: recorded"),
            "no summary line:\n{stderr}"
        );
        keep_trace(&self.path);
        let mut trace = Trace::read(&self.path);
        assert_eq!(trace.trailing_bytes, 0, "a clean stop leaves no torn line");
        trace.stderr = stderr;
        trace.file = Some((self.path, self._dir));
        trace
    }

    /// SIGKILL: no flush, no goodbye. The trace holds what reached the file.
    pub fn kill(mut self) -> Trace {
        self.child.kill().expect("SIGKILL the tracer");
        self.child.wait().expect("reap the tracer");
        let mut trace = Trace::read(&self.path);
        trace.stderr = self.stderr.lock().unwrap().clone();
        trace.file = Some((self.path, self._dir));
        trace
    }
}

/// Where `TRACER_TEST_KEEP_TRACES` names a directory, every recording a test stops is copied
/// there, named after the test: how the corpus's recorded traces were made.
fn keep_trace(path: &Path) {
    let Some(dir) = std::env::var_os("TRACER_TEST_KEEP_TRACES") else {
        return;
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("test")
        .replace("::", "-");
    let dir = Path::new(&dir);
    let mut kept = dir.join(format!("{test}.jsonl"));
    let mut n = 1;
    while kept.exists() {
        n += 1;
        kept = dir.join(format!("{test}-{n}.jsonl"));
    }
    std::fs::copy(path, &kept).expect("copy the trace to TRACER_TEST_KEEP_TRACES");
}

pub struct Trace {
    pub header: TraceHeader,
    pub events: Vec<Event>,
    /// Bytes of a torn last line the reader ignored.
    pub trailing_bytes: usize,
    pub stderr: String,
    /// The trace file, kept while this lives.
    file: Option<(PathBuf, tempfile::TempDir)>,
}

impl Trace {
    pub fn read(path: &Path) -> Trace {
        let mut reader = open_trace(path).expect("open trace");
        let header = reader.header().clone();
        let events: Vec<Event> = (&mut reader)
            .map(|e| e.expect("valid trace line"))
            .collect();
        Trace {
            header,
            events,
            trailing_bytes: reader.trailing_bytes,
            stderr: String::new(),
            file: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.file.as_ref().expect("a recorded trace").0
    }

    pub fn snapshots(&self) -> impl Iterator<Item = &Snapshot> {
        self.events.iter().filter_map(|e| match e {
            Event::Snapshot(s) => Some(s),
            _ => None,
        })
    }

    pub fn starts(&self) -> impl Iterator<Item = &ProcessStart> {
        self.events.iter().filter_map(|e| match e {
            Event::ProcessStart(s) => Some(s),
            _ => None,
        })
    }

    pub fn execs(&self) -> impl Iterator<Item = &Exec> {
        self.events.iter().filter_map(|e| match e {
            Event::Exec(x) => Some(x),
            _ => None,
        })
    }

    pub fn exits(&self) -> impl Iterator<Item = &Exit> {
        self.events.iter().filter_map(|e| match e {
            Event::Exit(x) => Some(x),
            _ => None,
        })
    }

    pub fn renames(&self) -> impl Iterator<Item = &Rename> {
        self.events.iter().filter_map(|e| match e {
            Event::Rename(x) => Some(x),
            _ => None,
        })
    }

    pub fn signals(&self) -> impl Iterator<Item = &Signal> {
        self.events.iter().filter_map(|e| match e {
            Event::Signal(x) => Some(x),
            _ => None,
        })
    }

    pub fn interpreters(&self) -> impl Iterator<Item = &tracer_core::event::InterpreterRead> {
        self.events.iter().filter_map(|e| match e {
            Event::Interpreter(x) => Some(x),
            _ => None,
        })
    }

    pub fn reparents(&self) -> impl Iterator<Item = &Reparent> {
        self.events.iter().filter_map(|e| match e {
            Event::Reparent(x) => Some(x),
            _ => None,
        })
    }

    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.events.iter().filter_map(|e| match e {
            Event::Finding(x) => Some(x.as_ref()),
            _ => None,
        })
    }

    pub fn lost(&self) -> LostCounts {
        let mut total = LostCounts::default();
        for event in &self.events {
            if let Event::Lost(lost) = event {
                total.add(&lost.by_kind);
            }
        }
        total
    }

    /// The one event of a kind for a pid; panics (with what was seen) if not exactly one.
    pub fn only<'a, T: std::fmt::Debug>(
        &self,
        what: &str,
        matches: impl Iterator<Item = &'a T>,
    ) -> &'a T {
        let found: Vec<&T> = matches.collect();
        assert_eq!(
            found.len(),
            1,
            "expected exactly one {what}, found {found:#?}"
        );
        found[0]
    }
}

/// A failed test keeps its trace for the postmortem (the temporary directory would go).
impl Drop for Trace {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Some((path, _)) = &self.file {
            let test = std::thread::current()
                .name()
                .unwrap_or("test")
                .replace("::", "-");
            let kept = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{test}.jsonl"));
            if std::fs::copy(path, &kept).is_ok() {
                eprintln!("trace kept at {}", kept.display());
            }
        }
    }
}

/// Runs a workload scenario to completion and returns its report.
pub fn workload(args: &[&str]) -> Value {
    generate(WORKLOAD, args)
}

/// Runs a workload generator (`WORKLOAD` or `LOAD`) to completion; returns its report.
pub fn generate(program: &str, args: &[&str]) -> Value {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn workload");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let status = wait_bounded(&mut child, WORKLOAD_TIMEOUT, "workload");
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    assert!(
        status.success(),
        "workload {args:?} failed: {status}\n{stderr}"
    );
    let text = reader.join().unwrap();
    let mut report: Value =
        serde_json::from_str(text.lines().last().expect("a report line")).expect("report is JSON");
    report["workload_pid"] = Value::from(child.id());
    report
}

/// A workload that stays alive until released (its standard input closes).
pub struct Held {
    child: Child,
    stdin: Option<ChildStdin>,
    pub report: Value,
}

impl Held {
    pub fn start(args: &[&str]) -> Held {
        Held::start_with_env(args, &[])
    }

    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Held {
        let mut child = Command::new(WORKLOAD)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn workload");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(READY_TIMEOUT)
            .expect("the held workload reports within the timeout");
        let report = serde_json::from_str(&line).expect("report is JSON");
        Held {
            child,
            stdin,
            report,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it finish, and waits until it (and all it started) did.
    pub fn release(mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let status = wait_bounded(&mut self.child, WORKLOAD_TIMEOUT, "held workload");
        assert!(status.success(), "held workload failed: {status}");
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.stdin.take();
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn pid(report: &Value, field: &str) -> u32 {
    report[field]
        .as_u64()
        .unwrap_or_else(|| panic!("report has no {field}: {report}")) as u32
}

/// Live capture inside the test process (probes, model, recorder) while `body` runs. Returns
/// the live model as it was at the end, what `body` returned, and the trace, whose file lives
/// as long as the returned `Trace`.
pub fn capture_in_process<T>(
    options: &LiveOptions,
    rules: Rules,
    body: impl FnOnce() -> T,
) -> (Model, T, Trace) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("trace.jsonl");
    let mut pipeline = Pipeline::new(
        Model::new(host::clock_tick_ns()),
        Analyzer::new(rules),
        RecordSink::new(create_trace(&path).expect("create trace")),
    );
    let (ready_sender, ready) = mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let result = std::thread::scope(|scope| {
        let capture = scope.spawn(|| {
            runtime.block_on(live::run(
                options,
                &mut pipeline,
                async {
                    let _ = stopped.await;
                },
                move |_| {
                    let _ = ready_sender.send(());
                },
            ))
        });
        ready.recv_timeout(READY_TIMEOUT).expect("capture ready");
        let result = body();
        stop.send(()).expect("capture still running");
        capture
            .join()
            .expect("capture thread")
            .expect("capture ran");
        result
    });
    let mut trace = Trace::read(&path);
    trace.file = Some((path, dir));
    (pipeline.model, result, trace)
}

/// Replays a trace file up to `until`, as `tracer replay --at` does.
pub fn replay<S: Sink>(
    path: &Path,
    until: Option<u64>,
    rules: Option<Rules>,
    sink: S,
) -> anyhow::Result<(Pipeline<S>, TraceHeader, ReplaySummary)> {
    Ok(tracer_core::replay::replay(
        open_trace(path)?,
        until,
        rules,
        sink,
    )?)
}

/// The rules of a rules file, after the built-in ones.
pub fn rules_file(path: Option<&Path>) -> Rules {
    load_rules(path).expect("the rules load")
}
