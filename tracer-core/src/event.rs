//! Typed events: what the kernel probes and the `/proc` bootstrap report, what the model
//! derives, and, one per line, what a trace file holds (see `docs/trace-format.md`).

use serde::{Deserialize, Serialize};

use crate::roles::{Evidence, Identity};

/// A process identity that survives pid reuse: pid plus start time (ns since boot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProcessKey {
    pub pid: u32,
    pub start_time: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    Snapshot(Snapshot),
    ProcessStart(ProcessStart),
    Exec(Exec),
    Exit(Exit),
    Rename(Rename),
    Signal(Signal),
    Reparent(Reparent),
    Lost(Lost),
    /// What the live tracer read from a Python process's interpreter.
    Interpreter(InterpreterRead),
    /// Boxed: findings are rare and large, events are many.
    Finding(Box<Finding>),
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// Environment variables of a process, only those the operator allowlisted (none by default).
pub type Environment = std::collections::BTreeMap<String, String>;

/// A process found in `/proc` when the tracer started. Its start time has clock-tick
/// precision (`/proc/PID/stat`), the kernel events' has nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Snapshot {
    pub ts: u64,
    pub pid: u32,
    pub start_time: u64,
    pub ppid: u32,
    pub comm: String,
    pub cmdline: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub cmdline_truncated: bool,
    pub uid: u32,
    pub pgid: u32,
    pub sid: u32,
    #[serde(default, skip_serializing_if = "is_false")]
    pub kernel_thread: bool,
    /// Allowlisted environment variables (`--capture-env`).
    #[serde(default, skip_serializing_if = "Environment::is_empty")]
    pub env: Environment,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessStart {
    pub ts: u64,
    pub pid: u32,
    pub start_time: u64,
    pub ppid: u32,
    pub parent_start_time: u64,
    /// The thread that called fork/clone.
    pub tid: u32,
    /// The process that called fork/clone, of which the child is a copy: the parent, except
    /// with `CLONE_PARENT`.
    pub caller_pid: u32,
    pub comm: String,
    pub uid: u32,
    pub pgid: u32,
    pub sid: u32,
    pub cgroup_id: u64,
    /// The calling thread's parent-death signal (`PR_SET_PDEATHSIG`) as it forked; 0 for none.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub caller_pdeath_signal: i32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Exec {
    pub ts: u64,
    pub pid: u32,
    pub start_time: u64,
    pub ppid: u32,
    /// The thread that called execve: differs from `pid` when a non-leader thread exec'd.
    pub old_pid: u32,
    pub filename: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub filename_truncated: bool,
    pub cmdline: Vec<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub cmdline_truncated: bool,
    pub comm: String,
    pub uid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// Allowlisted environment variables (`--capture-env`), read from `/proc` after the exec.
    #[serde(default, skip_serializing_if = "Environment::is_empty")]
    pub env: Environment,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Exit {
    pub ts: u64,
    pub pid: u32,
    pub start_time: u64,
    pub ppid: u32,
    /// Set when the process exited by itself.
    pub exit_code: Option<i32>,
    /// Set when a signal killed it.
    pub signal: Option<i32>,
    pub core_dumped: bool,
    /// Who adopts its live children (nearest subreaper, or the pid namespace's init).
    pub reaper_pid: u32,
    pub pgid: u32,
    pub sid: u32,
    pub comm: String,
    /// The kernel's OOM killer chose it (`signal_struct::oom_mm` was set when it exited).
    #[serde(default, skip_serializing_if = "is_false")]
    pub oom_killed: bool,
    /// With `oom_killed`: the memory cgroup it ran in, as far as known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_cgroup: Option<MemoryCgroup>,
    /// Not the kernel's record: the live tracer found the process gone from `/proc` without
    /// an exit (its record was lost, or raced the start), at `ts`. Code and signal unknown.
    #[serde(default, skip_serializing_if = "is_false")]
    pub inferred: bool,
}

impl Exit {
    /// The exit of a process found gone from `/proc` at `ts`, its parent then `ppid`.
    pub fn inferred(ts: u64, process: ProcessKey, ppid: u32, comm: &str) -> Exit {
        Exit {
            ts,
            pid: process.pid,
            start_time: process.start_time,
            ppid,
            comm: comm.to_owned(),
            inferred: true,
            ..Exit::default()
        }
    }
}

/// What the live tracer read from a Python process's interpreter (`--python-inspect`): the
/// facts multiprocessing and billiard keep about the process, daemonic flag included.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct InterpreterRead {
    pub ts: u64,
    pub pid: u32,
    pub start_time: u64,
    /// `3.11`, when the interpreter was recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<String>,
    /// How many times the process had exec'd when the read was asked for: a read of an
    /// earlier program is void.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub execs: u32,
    #[serde(flatten)]
    pub outcome: ReadOutcome,
}

/// What a read of an interpreter came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReadOutcome {
    /// multiprocessing's current process (billiard writes its own there too).
    Process(CurrentProcess),
    /// `multiprocessing` is not imported: nothing made this process a multiprocessing or
    /// billiard child, so it is not daemonic.
    NoMultiprocessing,
    /// Not a CPython interpreter the reader knows (another program, or a Python outside
    /// 3.8 to 3.14).
    NotPython,
    /// The read failed or met something inconsistent; the title rules decide.
    Unknown { reason: String },
}

/// `multiprocessing.process._current_process`, as read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CurrentProcess {
    /// `_config['daemon']`; a missing entry is `False`, as `BaseProcess.daemon` reads it.
    pub daemon: bool,
    /// `_name`: `MainProcess`, `Process-1`, `ForkPoolWorker-3`.
    pub name: String,
    /// The class, with its module: `billiard.context.ForkProcess`.
    pub class: String,
    /// `_parent_pid`: the process that started it, which under the forkserver start method
    /// is not its parent in the kernel. None for the main process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_pid: Option<u32>,
}

impl CurrentProcess {
    pub fn new(
        daemon: bool,
        name: String,
        class: String,
        parent_pid: Option<u32>,
    ) -> CurrentProcess {
        CurrentProcess {
            daemon,
            name,
            class,
            parent_pid,
        }
    }
}

/// A read of a multiprocessing child still starting (its `_bootstrap` has not yet made it the
/// current process): asked again at its next fork.
pub const STILL_STARTING: &str =
    "still starting: multiprocessing has not made it the current process yet";

impl InterpreterRead {
    /// Whether this read stands for the process's program: all but one taken too early.
    pub fn is_final(&self) -> bool {
        !matches!(&self.outcome, ReadOutcome::Unknown { reason } if reason == STILL_STARTING)
    }

    /// `Python 3.11: Process-1 (billiard.context.ForkProcess), daemon=True, started by 4242`
    pub fn describe(&self) -> String {
        let python = self.python.as_deref().unwrap_or("?");
        match &self.outcome {
            ReadOutcome::Process(process) => {
                let mut text = format!(
                    "Python {python}: `{}` ({}), daemon={}",
                    process.name,
                    process.class,
                    if process.daemon { "True" } else { "False" }
                );
                if let Some(parent) = process.parent_pid {
                    text.push_str(&format!(", started by {parent}"));
                }
                text
            }
            ReadOutcome::NoMultiprocessing => {
                format!("Python {python}: multiprocessing not imported")
            }
            ReadOutcome::NotPython => "not a Python the tracer can read".to_owned(),
            ReadOutcome::Unknown { reason } => format!("Python {python}: unreadable ({reason})"),
        }
    }

    pub fn new(
        ts: u64,
        process: ProcessKey,
        python: Option<String>,
        outcome: ReadOutcome,
    ) -> InterpreterRead {
        InterpreterRead {
            ts,
            pid: process.pid,
            start_time: process.start_time,
            python,
            execs: 0,
            outcome,
        }
    }
}

/// A memory cgroup as the exit of an OOM-killed process names it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemoryCgroup {
    /// The kernfs id of its directory (the directory's inode number).
    pub id: u64,
    /// Its path below the memory controller's mount, when the live tracer found it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Its memory limit (`memory.max`, v1's `memory.limit_in_bytes`); none when unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
}

impl MemoryCgroup {
    pub fn new(id: u64, path: Option<String>, limit_bytes: Option<u64>) -> MemoryCgroup {
        MemoryCgroup {
            id,
            path,
            limit_bytes,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rename {
    pub ts: u64,
    pub pid: u32,
    pub start_time: u64,
    pub comm: String,
    /// The argument area after the rename (the full setproctitle title), when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub cmdline_truncated: bool,
    pub pgid: u32,
    pub sid: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SignalResult {
    Delivered,
    Ignored,
    AlreadyPending,
    OverflowFail,
    LoseInfo,
    #[default]
    Unknown,
}

impl SignalResult {
    /// Whether the signal was queued for the target: ignored and already-pending ones never
    /// acted.
    pub fn delivered(self) -> bool {
        matches!(self, SignalResult::Delivered | SignalResult::LoseInfo)
    }

    pub fn name(self) -> &'static str {
        match self {
            SignalResult::Delivered => "delivered",
            SignalResult::Ignored => "ignored",
            SignalResult::AlreadyPending => "already pending",
            SignalResult::OverflowFail => "queue overflow",
            SignalResult::LoseInfo => "delivered without info",
            SignalResult::Unknown => "unknown result",
        }
    }
}

/// A terminating signal generated for a process. `pid`/`start_time` are the target's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Signal {
    pub ts: u64,
    pub pid: u32,
    pub start_time: u64,
    pub target_pid: u32,
    pub sender_pid: u32,
    pub sender_start_time: u64,
    pub sender_comm: String,
    pub sig: i32,
    /// `si_code`: 0 kill(2), -6 tgkill(2), 128 the kernel, ...
    pub code: i32,
    pub result: SignalResult,
    /// The thread that generated it (0 in traces from before it was recorded).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub sender_tid: u32,
    /// The sending thread was exiting, as one sending its children's parent-death signals is.
    #[serde(default, skip_serializing_if = "is_false")]
    pub sender_exiting: bool,
    /// ... and its whole process with it (its last thread).
    #[serde(default, skip_serializing_if = "is_false")]
    pub sender_group_exiting: bool,
    /// The target's parent-death signal (`PR_SET_PDEATHSIG`), 0 for none.
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub target_pdeath_signal: i32,
}

fn is_zero_u32(value: &u32) -> bool {
    *value == 0
}

fn is_zero_i32(value: &i32) -> bool {
    *value == 0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReparentSource {
    /// Derived by the model from its parent's exit; replay derives it again.
    Exit,
    /// Observed in `/proc` by the live tracer, correcting the model; replay applies it.
    Procfs,
}

/// A live process moved to a new parent because its parent exited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Reparent {
    pub ts: u64,
    pub pid: u32,
    pub start_time: u64,
    pub old_ppid: u32,
    pub new_ppid: u32,
    pub source: ReparentSource,
}

impl Reparent {
    /// A parent seen in `/proc` at `ts`, other than the one the model holds.
    pub fn observed(ts: u64, process: ProcessKey, old_ppid: u32, new_ppid: u32) -> Reparent {
        Reparent {
            ts,
            pid: process.pid,
            start_time: process.start_time,
            old_ppid,
            new_ppid,
            source: ReparentSource::Procfs,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LostCounts {
    pub process_start: u64,
    pub exec: u64,
    pub exit: u64,
    pub rename: u64,
    pub signal: u64,
    /// Records that arrived but could not be decoded (the probes and the daemon disagree on
    /// a layout): received, yet lost all the same.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub malformed: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl LostCounts {
    pub fn total(&self) -> u64 {
        self.process_start + self.exec + self.exit + self.rename + self.signal + self.malformed
    }

    pub fn add(&mut self, other: &LostCounts) {
        self.process_start += other.process_start;
        self.exec += other.exec;
        self.exit += other.exit;
        self.rename += other.rename;
        self.signal += other.signal;
        self.malformed += other.malformed;
    }

    /// What was lost since `earlier`, a previous reading of the same counters.
    pub fn since(&self, earlier: &LostCounts) -> LostCounts {
        LostCounts {
            process_start: self.process_start - earlier.process_start,
            exec: self.exec - earlier.exec,
            exit: self.exit - earlier.exit,
            rename: self.rename - earlier.rename,
            signal: self.signal - earlier.signal,
            malformed: self.malformed - earlier.malformed,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// A daemonic process created a child process.
    DaemonicSpawn,
    /// A process's parent died while it lived.
    Orphaned,
    /// A process that had been orphaned exited.
    OrphanExited,
    /// A process with a role died by a signal.
    Killed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SpawnHow {
    /// Forked and never exec'd: `os.fork`, or a multiprocessing/billiard process started
    /// with the fork method (the kernel cannot tell these apart).
    Fork,
    /// Forked, then exec'd a program (`subprocess`, `os.exec*`).
    Exec,
    /// A Python multiprocessing/billiard child started with the spawn method.
    MultiprocessingSpawn,
}

/// A process as a finding names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProcessSketch {
    pub pid: u32,
    pub start_time: u64,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_label: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub daemonic: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub exited: bool,
    /// Started at the request of this process, per its interpreter, which is not its parent
    /// (the forkserver start method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<u32>,
}

/// Who sent the signal that killed a process, and what that sender was doing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Killer {
    pub process: ProcessSketch,
    pub sig: i32,
    /// The kill in words: `SIGKILL from 4679, the Celery main process enforcing a hard time
    /// limit (SIGTERM, then SIGKILL 101ms later)`, `SIGKILL, its parent's death signal ...`.
    pub what: String,
}

/// How a process died.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Death {
    pub ts: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub core_dumped: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub killer: Option<Killer>,
    /// `exit code 3`, or `killed by ` and the killer's `what`.
    pub description: String,
}

/// Something an operator should know, derived by the analysis (replay derives it again).
/// `pid`/`start_time` are the process it is about: for `daemonic_spawn` the new child.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Finding {
    pub ts: u64,
    pub pid: u32,
    pub start_time: u64,
    pub kind: FindingKind,
    /// One sentence for a human.
    pub summary: String,
    pub process: ProcessSketch,
    /// `daemonic_spawn`: the daemonic parent; `orphaned`: the parent that died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub how: Option<SpawnHow>,
    /// `daemonic_spawn` by exec: the program.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// `orphaned`: the adopting process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_ppid: Option<u32>,
    /// `orphaned`: the parent that died, and how.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_parent: Option<ProcessSketch>,
    /// `orphaned`: the Celery worker or Airflow task the dead parent itself belonged to.
    #[serde(default, skip_serializing_if = "Identity::is_empty")]
    pub dead_parent_identity: Identity,
    /// `orphaned`: how the parent died; `killed`, `orphan_exited`: how this process died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub death: Option<Death>,
    /// `orphan_exited`: how long it lived as an orphan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphaned_for_ns: Option<u64>,
    /// Ancestors by lineage, nearest first, as far as the tracer knows them.
    pub lineage: Vec<ProcessSketch>,
    /// Why the daemonic process in question is daemonic, nearest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Evidence>,
    /// Celery worker and Airflow task the process belongs to.
    #[serde(default, skip_serializing_if = "Identity::is_empty")]
    pub identity: Identity,
    /// Why the finding may be wrong: kernel records were lost while the processes it rests on
    /// lived, or one of them was first seen after its start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertain: Option<String>,
}

impl SpawnHow {
    /// `fork without exec`, `exec of /usr/bin/sleep`, `a Python multiprocessing child ...`.
    pub fn describe(self, program: Option<&str>) -> String {
        match (self, program) {
            (SpawnHow::Exec, Some(program)) => format!("exec of {program}"),
            (SpawnHow::Exec, None) => "exec".to_owned(),
            (SpawnHow::MultiprocessingSpawn, _) => {
                "a Python multiprocessing child (spawn start method)".to_owned()
            }
            (SpawnHow::Fork, _) => "fork without exec".to_owned(),
        }
    }
}

/// Kernel records that did not fit in the ring buffer since the previous `lost` line.
/// Not about one process: `pid` and `start_time` are 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Lost {
    /// When the loss was seen: the records were lost after `since` and before `ts`.
    pub ts: u64,
    pub pid: u32,
    pub start_time: u64,
    pub count: u64,
    pub by_kind: LostCounts,
    /// The previous check of the counters (0: the start of capture).
    #[serde(default)]
    pub since: u64,
}

impl Lost {
    /// Records lost after `since` and found out at `ts`.
    pub fn new(ts: u64, by_kind: LostCounts, since: u64) -> Lost {
        Lost {
            ts,
            pid: 0,
            start_time: 0,
            count: by_kind.total(),
            by_kind,
            since,
        }
    }
}

impl Event {
    pub fn ts(&self) -> u64 {
        match self {
            Event::Snapshot(e) => e.ts,
            Event::ProcessStart(e) => e.ts,
            Event::Exec(e) => e.ts,
            Event::Exit(e) => e.ts,
            Event::Rename(e) => e.ts,
            Event::Signal(e) => e.ts,
            Event::Reparent(e) => e.ts,
            Event::Lost(e) => e.ts,
            Event::Interpreter(e) => e.ts,
            Event::Finding(e) => e.ts,
        }
    }

    pub fn key(&self) -> ProcessKey {
        let (pid, start_time) = match self {
            Event::Snapshot(e) => (e.pid, e.start_time),
            Event::ProcessStart(e) => (e.pid, e.start_time),
            Event::Exec(e) => (e.pid, e.start_time),
            Event::Exit(e) => (e.pid, e.start_time),
            Event::Rename(e) => (e.pid, e.start_time),
            Event::Signal(e) => (e.pid, e.start_time),
            Event::Reparent(e) => (e.pid, e.start_time),
            Event::Lost(e) => (e.pid, e.start_time),
            Event::Interpreter(e) => (e.pid, e.start_time),
            Event::Finding(e) => (e.pid, e.start_time),
        };
        ProcessKey { pid, start_time }
    }

    /// Whether this is an output of the tracer's own model or analysis (a reparent derived
    /// from an exit, a finding) rather than something observed. Replay derives these again
    /// and skips the recorded ones.
    pub fn is_derived(&self) -> bool {
        matches!(
            self,
            Event::Finding(_)
                | Event::Reparent(Reparent {
                    source: ReparentSource::Exit,
                    ..
                })
        )
    }

    /// The `"event"` name of a trace line.
    pub fn name(&self) -> &'static str {
        match self {
            Event::Snapshot(_) => "snapshot",
            Event::ProcessStart(_) => "process_start",
            Event::Exec(_) => "exec",
            Event::Exit(_) => "exit",
            Event::Rename(_) => "rename",
            Event::Signal(_) => "signal",
            Event::Reparent(_) => "reparent",
            Event::Lost(_) => "lost",
            Event::Interpreter(_) => "interpreter",
            Event::Finding(_) => "finding",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_lines_name_the_event_first_and_round_trip() {
        let event = Event::Exit(Exit {
            ts: 5,
            pid: 10,
            start_time: 7,
            ppid: 1,
            exit_code: None,
            signal: Some(9),
            core_dumped: false,
            reaper_pid: 1,
            pgid: 10,
            sid: 1,
            comm: "sleep".into(),
            oom_killed: false,
            memory_cgroup: None,
            inferred: false,
        });
        let line = serde_json::to_string(&event).unwrap();
        assert!(
            line.starts_with(r#"{"event":"exit","ts":5,"pid":10,"start_time":7,"#),
            "{line}"
        );
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), event);
    }
}
