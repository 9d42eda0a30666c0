//! Classification and findings, on top of the model: each process's role, identity and
//! daemonic verdict (with the evidence for it), and the findings an operator needs: daemonic
//! processes that start children, the orphans they leave, and who killed whom. Pure, like
//! the model: live capture and replay derive the same findings from the same events.

use std::collections::HashSet;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::event::{
    Death, Event, Exit, Finding, FindingKind, InterpreterRead, Killer, ProcessKey, ProcessSketch,
    ReadOutcome, Reparent, ReparentSource, SpawnHow,
};
use crate::model::{Model, Origin, Process, ProcessIndex, SignalInfo, TitleSource};
use crate::roles::{Classification, Evidence, Identity, Rules, Subject, expand_celery_node};
use crate::words::{duration, exit_description, signal_name};

/// A daemonic spawn is reported once the child shows how it was started: when it execs or
/// exits, or once it has gone this long (by event time) without exec.
pub const SPAWN_SETTLE_NS: u64 = 1_000_000_000;

/// Longest evidence chain kept: deep fork chains repeat the same step.
const MAX_EVIDENCE: usize = 16;

/// Signals from one sender, each this soon after the one before, read as one escalation:
/// Airflow 3's supervisor waits 5 s between SIGINT, SIGTERM and SIGKILL, billiard 0.1 s
/// between SIGTERM and SIGKILL.
const ESCALATION_STEP_NS: u64 = 6_000_000_000;

/// A SIGKILL from the Celery main process this soon after its previous signal is billiard
/// enforcing a hard time limit; a slower one is some other stop.
const HARD_TIME_LIMIT_KILL_NS: u64 = 2_000_000_000;

const SIGKILL: i32 = 9;
const SIGXCPU: i32 = 24;
/// `si_code` of signals the kernel generates itself.
const SI_KERNEL: i32 = 0x80;

/// Reads asked for and not yet taken by the live tracer, at most.
const MAX_WANTED: usize = 4096;

/// How long a Python parent's spawn waits for the read of its interpreter (event time):
/// a read takes well under a millisecond, queued behind others a few.
pub const READ_WAIT_NS: u64 = 500_000_000;

#[derive(Clone)]
struct PendingSpawn {
    child: ProcessKey,
    parent: ProcessKey,
    ts: u64,
    /// The child showed how it started (exec, exit) while its parent's read was awaited.
    shown: Option<(SpawnHow, Option<String>, u64)>,
    /// What a finding would say of the child, taken as it exited while the read was awaited.
    draft: Option<Box<Finding>>,
}

/// Whether a process may be running CPython, from what the kernel showed of it: the reader
/// checks for itself, this only keeps it from being asked about every `sh`.
pub fn may_be_python(process: &Process) -> bool {
    let named_python = |path: &str| {
        path.rsplit('/')
            .next()
            .is_some_and(|name| name.starts_with("python"))
    };
    process.filename.as_deref().is_some_and(named_python)
        || process.cmdline.first().is_some_and(|arg| named_python(arg))
        || process.comm.starts_with("python")
        || process.class.role.as_ref().is_some_and(|r| {
            ["celery.", "airflow.", "python."]
                .iter()
                .any(|family| r.id.starts_with(family))
        })
}

#[derive(Clone)]
pub struct Analyzer {
    rules: Rules,
    pending: Vec<PendingSpawn>,
    /// Orphans reported with an `orphaned` finding, awaiting their `orphan_exited`.
    orphans: FxHashSet<ProcessKey>,
    /// When kernel records were lost, oldest first.
    gaps: Vec<Gap>,
    /// The time of a process's latest terminating signal, and the identity it had when that
    /// series of signals (an escalation) began. A killed process is reported with it: a
    /// Celery pool worker retitles itself between its hard time limit's SIGTERM and SIGKILL,
    /// which would drop the task it died running.
    signalled: FxHashMap<ProcessKey, (u64, Identity)>,
    /// The traced host's name, which Celery's `%h` in node names stands for.
    host: String,
    /// The capture reads interpreters (`--python-inspect`): a Python parent's spawns wait for
    /// the read.
    inspecting: bool,
    /// Processes whose read is awaited, and until when.
    awaiting: FxHashMap<ProcessKey, u64>,
    /// Processes asked about, and their exec count then: one read per program.
    asked: FxHashMap<ProcessKey, u32>,
    /// Reads the live tracer should make, oldest first.
    wanted: Vec<Wanted>,
    /// Someone takes `wanted` (the live tracer; replay has its reads in the trace).
    reads_wanted: bool,
}

/// A read the analysis wants: of this process, running the program of its `execs`th exec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub process: ProcessKey,
    pub execs: u32,
}

/// Past this many signalled processes, those whose signals are older than an escalation are
/// forgotten (their exits were lost, or they survived).
const MAX_SIGNALLED: usize = 4096;

/// Kernel records lost somewhere in `from..=to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Gap {
    from: u64,
    to: u64,
    count: u64,
}

/// Gaps kept apart; beyond this the oldest are merged (a coarser, still honest, gap).
const MAX_GAPS: usize = 256;

fn sketch(process: &Process) -> ProcessSketch {
    ProcessSketch {
        pid: process.key.pid,
        start_time: process.key.start_time,
        title: process.title(),
        role: process.class.role.as_ref().map(|r| r.id.clone()),
        role_label: process.class.role.as_ref().map(|r| r.label.clone()),
        daemonic: process.class.is_daemonic(),
        exited: !process.is_alive(),
        started_by: process.class.started_by,
    }
}

/// `4683 `[celeryd: w1@host:ForkPoolWorker-2]` (Celery prefork pool worker)`
fn describe(process: &ProcessSketch) -> String {
    let mut text = format!("{} `{}`", process.pid, process.title);
    if let Some(label) = &process.role_label {
        text.push_str(&format!(" ({label})"));
    }
    text
}

fn lineage(model: &Model, index: ProcessIndex) -> Vec<ProcessSketch> {
    model.lineage(index).map(|(_, p)| sketch(p)).collect()
}

/// A finding about the process at `index`, with what every finding says about it; callers
/// add what is particular to their kind.
fn finding_about(
    model: &Model,
    index: ProcessIndex,
    kind: FindingKind,
    ts: u64,
    summary: String,
) -> Finding {
    let process = model.get(index);
    Finding {
        ts,
        pid: process.key.pid,
        start_time: process.key.start_time,
        kind,
        summary,
        process: sketch(process),
        parent_pid: None,
        how: None,
        program: None,
        new_ppid: None,
        dead_parent: None,
        dead_parent_identity: Identity::new(),
        death: None,
        orphaned_for_ns: None,
        lineage: lineage(model, index),
        evidence: process.class.daemonic.clone(),
        identity: process.class.identity.clone(),
        uncertain: None,
    }
}

/// The retained process with this identity, live or exited.
fn find_any(model: &Model, key: ProcessKey) -> Option<ProcessIndex> {
    model.find(key).or_else(|| {
        model
            .processes()
            .find(|(_, p)| p.key.pid == key.pid && p.key.start_time == key.start_time)
            .map(|(i, _)| i)
    })
}

fn role_id(process: Option<&Process>) -> Option<&str> {
    process
        .and_then(|p| p.class.role.as_ref())
        .map(|r| r.id.as_str())
}

/// The signal that killed `victim` with `sig`: the first delivered SIGKILL (a later one finds
/// the process already dying and is ignored, or merely pending), or the last delivered
/// signal of a catchable number (an earlier one may have been caught). Signals the kernel
/// ignored or left pending never count.
fn fatal_signal(victim: &Process, sig: i32) -> Option<&SignalInfo> {
    let mut delivered = victim
        .signals
        .iter()
        .filter(|s| s.sig == sig && s.result.delivered());
    if sig == SIGKILL {
        delivered.next()
    } else {
        delivered.next_back()
    }
}

/// What the kernel's own kill of `victim` was, as far as the trace tells.
fn kernel_cause(victim: &Process, exit: &Exit, signal: Option<&SignalInfo>) -> Option<String> {
    if exit.oom_killed {
        let mut cause = "OOM killer".to_owned();
        if let Some(cgroup) = &exit.memory_cgroup {
            match &cgroup.path {
                Some(path) => cause.push_str(&format!(", memory cgroup {path}")),
                None => cause.push_str(&format!(", memory cgroup {}", cgroup.id)),
            }
            if let Some(limit) = cgroup.limit_bytes {
                cause.push_str(&format!(" limited to {}", bytes(limit)));
            }
        }
        return Some(cause);
    }
    // RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at the hard one, both the kernel's.
    let cpu_warning = victim
        .signals
        .iter()
        .any(|s| s.sig == SIGXCPU && s.code == SI_KERNEL);
    let sig = signal.map(|s| s.sig).or(exit.signal)?;
    (sig == SIGXCPU || (sig == SIGKILL && cpu_warning))
        .then(|| "CPU time limit, RLIMIT_CPU".to_owned())
}

/// `64 MiB`, `1.5 GiB`, `4096 bytes`.
fn bytes(count: u64) -> String {
    const MIB: u64 = 1 << 20;
    match count {
        0..MIB => format!("{count} bytes"),
        MIB..1_073_741_824 if count.is_multiple_of(MIB) => format!("{} MiB", count / MIB),
        MIB..1_073_741_824 => format!("{:.1} MiB", count as f64 / MIB as f64),
        _ => format!("{:.1} GiB", count as f64 / 1_073_741_824.0),
    }
}

/// The kernel as a killer: never a process, whichever task was current when it sent.
fn the_kernel() -> ProcessSketch {
    ProcessSketch {
        pid: 0,
        start_time: 0,
        title: "[kernel]".to_owned(),
        role: None,
        role_label: None,
        daemonic: false,
        exited: false,
        started_by: None,
    }
}

/// Who killed `victim` (its exit says how), and what the kill was.
fn killer(model: &Model, victim: &Process, exit: &Exit) -> Option<Killer> {
    let sig = exit.signal?;
    let name = signal_name(sig);
    let Some(signal) = fatal_signal(victim, sig) else {
        // The signal record was lost or filtered; the exit still says the OOM killer chose it.
        let cause = kernel_cause(victim, exit, None).filter(|_| exit.oom_killed)?;
        return Some(Killer {
            process: the_kernel(),
            sig,
            what: format!("{name} from the kernel ({cause})"),
        });
    };
    // A kernel-made signal (`SEND_SIG_PRIV`) is sent from whatever task is current: the OOM
    // killer runs in the allocating task, RLIMIT_CPU in the timer's. It names no process.
    if signal.code == SI_KERNEL {
        let what = match kernel_cause(victim, exit, Some(signal)) {
            Some(cause) => format!("{name} from the kernel ({cause})"),
            None => format!("{name} from the kernel"),
        };
        return Some(Killer {
            process: the_kernel(),
            sig,
            what,
        });
    }
    let sender = find_any(model, signal.sender).map(|i| model.get(i));
    let process = sender.map(sketch).unwrap_or_else(|| ProcessSketch {
        pid: signal.sender.pid,
        start_time: signal.sender.start_time,
        title: format!("[{}]", signal.sender_comm),
        role: None,
        role_label: None,
        daemonic: false,
        exited: false,
        started_by: None,
    });
    let victim_role = role_id(Some(victim));
    let sender_role = role_id(sender);
    let steps = escalation(victim, signal);
    let escalation = steps.split_first().map(|(first, rest)| {
        let mut text = signal_name(first.sig);
        let mut previous = first.ts;
        for step in rest.iter().copied().chain([signal]) {
            text.push_str(&format!(
                ", then {} {} later",
                signal_name(step.sig),
                duration(step.ts.saturating_sub(previous))
            ));
            previous = step.ts;
        }
        text
    });
    let hard_time_limit = steps
        .last()
        .is_some_and(|s| signal.ts.saturating_sub(s.ts) < HARD_TIME_LIMIT_KILL_NS);
    // Traces from before the probes told an exiting sender apart: the parent's exit first.
    let parent_died_first = sender.is_some_and(|s| {
        s.key.pid == victim.original_ppid && s.exit.as_ref().is_some_and(|e| e.ts <= signal.ts)
    });
    let pid = signal.sender.pid;
    let what = if signal.parent_death && !signal.sender_group_exiting {
        format!(
            "{name}, its parent's death signal (PR_SET_PDEATHSIG), fired as thread {} of {pid}, \
             the thread that had forked it, exited while {pid} lived on",
            signal.sender_tid
        )
    } else if signal.parent_death || parent_died_first {
        format!("{name}, its parent's death signal (PR_SET_PDEATHSIG), as {pid} died")
    } else if signal.sender == victim.key {
        format!("{name} it sent itself")
    } else {
        let pattern = match (sender_role, victim_role) {
            (Some("celery.main"), Some("celery.pool_worker"))
                if sig == SIGKILL && hard_time_limit =>
            {
                Some("the Celery main process enforcing a hard time limit")
            }
            (Some("celery.main"), Some("celery.pool_worker")) => {
                Some("the Celery main process stopping its pool worker")
            }
            (Some("airflow.task_supervisor"), Some("airflow.task_runner")) => {
                Some("the Airflow task supervisor stopping its task runner")
            }
            (Some(s), Some("airflow3.task")) if s.starts_with("airflow3.") => {
                Some("the Airflow task supervisor stopping its task process")
            }
            _ => None,
        };
        let mut text = match pattern {
            Some(pattern) => format!("{name} from {pid}, {pattern}"),
            None => format!("{name} from {}", describe(&process)),
        };
        if let Some(steps) = &escalation {
            text.push_str(&format!(" ({steps})"));
        }
        text
    };
    Some(Killer { process, sig, what })
}

/// The signals the sender of `kill` sent `victim` before it, oldest first, each within
/// [`ESCALATION_STEP_NS`] of the next; a repeated signal counts once, at its latest. Bounded
/// by the signals the model keeps per process.
fn escalation<'a>(victim: &'a Process, kill: &SignalInfo) -> Vec<&'a SignalInfo> {
    let mut steps: Vec<&SignalInfo> = Vec::new();
    let (mut next_sig, mut next_ts) = (kill.sig, kill.ts);
    let earlier = victim
        .signals
        .iter()
        .rev()
        .skip_while(|s| !std::ptr::eq(*s, kill))
        .skip(1);
    for step in earlier.filter(|s| s.sender == kill.sender && s.result.delivered()) {
        if next_ts.saturating_sub(step.ts) >= ESCALATION_STEP_NS {
            break;
        }
        if step.sig != next_sig {
            steps.push(step);
            (next_sig, next_ts) = (step.sig, step.ts);
        }
    }
    steps.reverse();
    steps
}

fn death(model: &Model, process: &Process, exit: &Exit) -> Death {
    let killer = killer(model, process, exit);
    let description = match &killer {
        Some(killer) => {
            let core = if exit.core_dumped {
                " (core dumped)"
            } else {
                ""
            };
            format!("killed by {}{core}", killer.what)
        }
        None => exit_description(exit.exit_code, exit.signal, exit.core_dumped),
    };
    Death {
        ts: exit.ts,
        exit_code: exit.exit_code,
        signal: exit.signal,
        core_dumped: exit.core_dumped,
        killer,
        description,
    }
}

impl Analyzer {
    pub fn new(rules: Rules) -> Analyzer {
        Analyzer {
            rules,
            pending: Vec::new(),
            orphans: FxHashSet::default(),
            gaps: Vec::new(),
            signalled: FxHashMap::default(),
            host: String::new(),
            inspecting: false,
            awaiting: FxHashMap::default(),
            asked: FxHashMap::default(),
            wanted: Vec::new(),
            reads_wanted: false,
        }
    }

    /// The host the events come from (the trace header's), for Celery's `%h` and kin.
    pub fn set_host(&mut self, host: &str) {
        host.clone_into(&mut self.host);
    }

    /// Remembers `target`'s identity as of the first signal of a series (see `signalled`).
    fn note_signal(&mut self, model: &Model, target: ProcessKey, ts: u64) {
        let Some(index) = model.find(target) else {
            return;
        };
        let ongoing = |(last, _): &(u64, Identity)| ts.saturating_sub(*last) < ESCALATION_STEP_NS;
        if let Some(series) = self.signalled.get_mut(&target).filter(|s| ongoing(s)) {
            series.0 = ts;
            return;
        }
        let identity = &model.get(index).class.identity;
        if identity.is_empty() {
            self.signalled.remove(&target);
            return;
        }
        if self.signalled.len() >= MAX_SIGNALLED {
            self.signalled.retain(|_, series| ongoing(series));
        }
        self.signalled.insert(target, (ts, identity.clone()));
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Notes a loss of kernel records, for [`Analyzer::qualify`].
    fn note_gap(&mut self, from: u64, to: u64, count: u64) {
        self.gaps.push(Gap { from, to, count });
        if self.gaps.len() > MAX_GAPS {
            let oldest = self.gaps.remove(0);
            let next = &mut self.gaps[0];
            next.from = next.from.min(oldest.from);
            next.to = next.to.max(oldest.to);
            next.count += oldest.count;
        }
    }

    /// Marks the findings in `out` that rest on history with a hole in it: kernel records
    /// were lost while the processes a finding is about (the process, its parent, the
    /// daemonic chain) lived, or one of them was first seen after its start. A lost exec
    /// could have cleared a daemonic flag, a lost fork hidden the real parent, a lost signal
    /// the killer: such a finding is shown as uncertain, never silently as fact.
    pub fn qualify(&self, model: &Model, out: &mut [Event]) {
        for event in out {
            let Event::Finding(finding) = event else {
                continue;
            };
            if finding.uncertain.is_some() {
                continue;
            }
            // The processes whose histories the verdict reads: this one, the parent that died
            // (orphaned), the daemonic chain (evidence). Not every ancestor: a gap in the
            // life of a long-running Celery main process says nothing of a spawn it did not do.
            let mut keys = vec![ProcessKey {
                pid: finding.pid,
                start_time: finding.start_time,
            }];
            keys.extend(finding.dead_parent.as_ref().map(|p| ProcessKey {
                pid: p.pid,
                start_time: p.start_time,
            }));
            keys.extend(finding.evidence.iter().map(|e| ProcessKey {
                pid: e.pid,
                start_time: e.start_time,
            }));
            let since = keys.iter().map(|k| k.start_time).min().unwrap_or(0);
            let lost: u64 = self
                .gaps
                .iter()
                .filter(|gap| gap.to >= since && gap.from <= finding.ts)
                .map(|gap| gap.count)
                .sum();
            let inferred = keys.iter().find(|key| {
                find_any(model, **key).is_some_and(|i| model.get(i).origin == Origin::Inferred)
            });
            let unseen_exit = keys.iter().find(|key| {
                find_any(model, **key)
                    .and_then(|i| model.get(i).exit.as_ref())
                    .is_some_and(|exit| !exit.observed)
            });
            let reason = match (lost, inferred, unseen_exit) {
                (0, None, None) => continue,
                (0, Some(key), _) => format!(
                    "process {} was first seen after its start: its earlier history is unknown",
                    key.pid
                ),
                (0, None, Some(key)) => format!(
                    "the exit of {} was not seen (it was found gone): when and how it ended is \
                     unknown",
                    key.pid
                ),
                (lost, _, _) => format!(
                    "{lost} kernel records were lost while the processes this rests on lived"
                ),
            };
            finding.summary.push_str(&format!(" (UNCERTAIN: {reason})"));
            finding.uncertain = Some(reason);
        }
    }

    /// The process whose title and daemonic flag a process started from: its creator, or for
    /// a process found at start, its parent then.
    fn origin_parent(model: &Model, index: ProcessIndex) -> Option<ProcessIndex> {
        model
            .creator(index)
            .or_else(|| model.live_index(model.get(index).original_ppid))
            .filter(|&p| p != index)
    }

    /// Recomputes the role, identity and daemonic verdict of one process.
    fn classify(&self, model: &mut Model, index: ProcessIndex) {
        let parent = Self::origin_parent(model, index).map(|p| model.get(p));
        let process = model.get(index);
        let title = process.title();
        let inherited = match process.title_source {
            TitleSource::Fork => true,
            TitleSource::Snapshot => {
                parent.is_some_and(|p| !process.cmdline.is_empty() && p.cmdline == process.cmdline)
            }
            TitleSource::Exec | TitleSource::Rename => false,
        };
        let forked = match process.origin {
            Origin::Fork => process.execs == 0,
            Origin::Snapshot | Origin::Inferred => inherited,
        };
        let subject = Subject {
            title: &title,
            comm: &process.comm,
            program: process.filename.as_deref(),
            title_inherited: inherited,
            forked,
            parent_role: parent
                .and_then(|p| p.class.role.as_ref())
                .map(|r| r.id.as_str()),
        };
        let matched = self.rules.classify(&subject);
        let mut identity = parent.map(|p| p.class.identity.clone()).unwrap_or_default();
        let mut daemonic = Vec::new();
        let role = matched.map(|(role, own)| {
            identity.extend(own);
            role
        });
        if let Some(node) = identity.get_mut("celery_node")
            && node.contains('%')
        {
            *node = expand_celery_node(node, &self.host);
        }
        if let Some(role) = role.as_ref().filter(|r| r.daemonic_root) {
            daemonic.push(Evidence {
                pid: process.key.pid,
                start_time: process.key.start_time,
                title: title.clone(),
                reason: format!("daemonic: {} (rule {})", role.label, role.id),
            });
        } else if let Some(parent) = parent.filter(|p| forked && p.class.is_daemonic()) {
            daemonic.push(Evidence {
                pid: process.key.pid,
                start_time: process.key.start_time,
                title: title.clone(),
                reason: format!(
                    "forked without exec from {} `{}`",
                    parent.key.pid,
                    parent.title()
                ),
            });
            daemonic.extend(parent.class.daemonic.iter().take(MAX_EVIDENCE - 1).cloned());
            if parent.class.daemonic.len() >= MAX_EVIDENCE {
                // Keep the root, which says why the chain is daemonic at all.
                if let (Some(last), Some(root)) =
                    (daemonic.last_mut(), parent.class.daemonic.last())
                {
                    *last = root.clone();
                }
            }
        }
        if daemonic.is_empty()
            && !role.as_ref().is_some_and(|r| r.daemonic_root)
            && process.pdeath_signal == SIGKILL
            && forked
            && may_be_python(process)
        {
            daemonic.push(Evidence {
                pid: process.key.pid,
                start_time: process.key.start_time,
                title: title.clone(),
                reason: "daemonic: a forked Python process that set PR_SET_PDEATHSIG to SIGKILL, \
                         as Celery's prefork pool workers do (seen by the kernel; its \
                         interpreter was not read)"
                    .to_owned(),
            });
        }
        let (daemonic, conflict) = Self::with_interpreter(process, daemonic);
        let started_by = Self::started_by(model, index);
        model.set_class(
            index,
            Classification {
                role,
                identity,
                daemonic,
                conflict,
                started_by,
            },
        );
    }

    /// The verdict once the interpreter was read: what it says wins over the title rules,
    /// and where they disagree, the disagreement is kept.
    fn with_interpreter(
        process: &Process,
        by_rules: Vec<Evidence>,
    ) -> (Vec<Evidence>, Option<String>) {
        let Some(read) = &process.interpreter else {
            return (by_rules, None);
        };
        let python = read.python.as_deref().unwrap_or("3");
        let rules_said = || match Classification::explain(&by_rules) {
            Some(why) => format!("without the interpreter it would be daemonic ({why})"),
            None => String::new(),
        };
        match &read.outcome {
            ReadOutcome::Process(current) if current.daemon => {
                let evidence = Evidence {
                    pid: process.key.pid,
                    start_time: process.key.start_time,
                    title: process.title(),
                    reason: format!(
                        "daemonic: `{}` ({}) has daemon=True, read from the interpreter (Python {python})",
                        current.name, current.class
                    ),
                };
                // A rule gives a role, not a verdict of "not daemonic": nothing to disagree on.
                (vec![evidence], None)
            }
            ReadOutcome::Process(current) => {
                let conflict = (!by_rules.is_empty()).then(|| {
                    format!(
                        "{}, but the interpreter has daemon=False for `{}` ({})",
                        rules_said(),
                        current.name,
                        current.class
                    )
                });
                (Vec::new(), conflict)
            }
            ReadOutcome::NoMultiprocessing => {
                let conflict = (!by_rules.is_empty()).then(|| {
                    format!(
                        "{}, but multiprocessing is not imported in its interpreter",
                        rules_said()
                    )
                });
                (Vec::new(), conflict)
            }
            ReadOutcome::NotPython | ReadOutcome::Unknown { .. } => (by_rules, None),
        }
    }

    /// multiprocessing's `_parent_pid`, where it names another process than the kernel's
    /// parent and is not merely inherited: an `os.fork()` child keeps its parent's process
    /// object, `_parent_pid` and all, so the parent must have been read as another process.
    fn started_by(model: &Model, index: ProcessIndex) -> Option<u32> {
        let process = model.get(index);
        let ReadOutcome::Process(current) = &process.interpreter.as_ref()?.outcome else {
            return None;
        };
        let logical = current.parent_pid?;
        if logical == process.original_ppid {
            return None;
        }
        let creator = model.get(model.creator(index)?);
        match &creator.interpreter.as_ref()?.outcome {
            ReadOutcome::Process(theirs) if theirs.name != current.name => Some(logical),
            ReadOutcome::NoMultiprocessing => Some(logical),
            _ => None,
        }
    }

    /// Classifies a process and the live processes that started from it: a snapshot lists
    /// children before their parents as often as not.
    fn classify_tree(&self, model: &mut Model, root: ProcessIndex) {
        let mut stack = vec![root];
        let mut seen = HashSet::new();
        while let Some(index) = stack.pop() {
            if !seen.insert(index) {
                continue;
            }
            self.classify(model, index);
            let pid = model.get(index).key.pid;
            stack.extend(
                model
                    .children_of(pid)
                    .iter()
                    .copied()
                    .filter(|&c| Self::origin_parent(model, c) == Some(index)),
            );
        }
    }

    fn spawn_finding(
        &self,
        model: &Model,
        pending: &PendingSpawn,
        how: SpawnHow,
        program: Option<String>,
        ts: u64,
    ) -> Option<Event> {
        let parent = model.get(find_any(model, pending.parent)?);
        // A Python parent's spawn waited for its read, which may have found it not daemonic.
        if !parent.class.is_daemonic() {
            return None;
        }
        let mut finding = match find_any(model, pending.child) {
            Some(index) => {
                finding_about(model, index, FindingKind::DaemonicSpawn, ts, String::new())
            }
            // Gone while its parent's read was awaited: as it was when it exited.
            None => *pending.draft.clone()?,
        };
        finding.summary = format!(
            "daemonic {} started {} `{}`{} by {}",
            describe(&sketch(parent)),
            finding.process.pid,
            finding.process.title,
            finding
                .process
                .role_label
                .as_ref()
                .map(|label| format!(" ({label})"))
                .unwrap_or_default(),
            how.describe(program.as_deref()),
        );
        if let Some(first) = finding.lineage.first_mut()
            && first.pid == parent.key.pid
        {
            *first = sketch(parent);
        }
        finding.ts = ts;
        finding.parent_pid = Some(parent.key.pid);
        finding.how = Some(how);
        finding.program = program;
        // Why the parent is daemonic: that is what makes this spawn a finding.
        finding.evidence = parent.class.daemonic.clone();
        Some(Event::Finding(Box::new(finding)))
    }

    /// Reports the pending spawn of `child`, if there is one.
    fn settle(
        &mut self,
        model: &Model,
        child: ProcessKey,
        how: SpawnHow,
        program: Option<String>,
        ts: u64,
        out: &mut Vec<Event>,
    ) {
        let Some(position) = self.pending.iter().position(|p| p.child == child) else {
            return;
        };
        if self.awaiting.contains_key(&self.pending[position].parent) {
            // Judged once the parent's interpreter has been read.
            let draft = model.find(child).map(|index| {
                Box::new(finding_about(
                    model,
                    index,
                    FindingKind::DaemonicSpawn,
                    ts,
                    String::new(),
                ))
            });
            let pending = &mut self.pending[position];
            pending.shown.get_or_insert((how, program, ts));
            if draft.is_some() {
                pending.draft = draft;
            }
            return;
        }
        let pending = self.pending.swap_remove(position);
        out.extend(self.spawn_finding(model, &pending, how, program, ts));
    }

    /// Asks for a read of `index`'s interpreter if it may be Python and was not asked about
    /// since its last exec. Whether a read is awaited now.
    fn ask(&mut self, model: &Model, index: ProcessIndex, ts: u64) -> bool {
        let process = model.get(index);
        if !self.inspecting
            || process
                .interpreter
                .as_ref()
                .is_some_and(InterpreterRead::is_final)
        {
            return false;
        }
        if self.awaiting.contains_key(&process.key) {
            return true;
        }
        if self.asked.get(&process.key) == Some(&process.execs) || !may_be_python(process) {
            return false;
        }
        if self.reads_wanted {
            // The live tracer takes these after every batch; the bound only guards it.
            if self.wanted.len() >= MAX_WANTED {
                return false;
            }
            self.wanted.push(Wanted {
                process: process.key,
                execs: process.execs,
            });
        }
        self.asked.insert(process.key, process.execs);
        self.awaiting.insert(process.key, ts + READ_WAIT_NS);
        true
    }

    /// The reads the live tracer should make, oldest first. Replay has them in the trace.
    pub fn take_wanted(&mut self) -> Vec<Wanted> {
        std::mem::take(&mut self.wanted)
    }

    /// The caller makes the reads the analysis asks for ([`Analyzer::take_wanted`]).
    pub fn want_reads(&mut self) {
        self.reads_wanted = true;
    }

    pub fn set_inspecting(&mut self, inspecting: bool) {
        self.inspecting = inspecting;
    }

    /// The parent's read came (or will not): its spawns that showed how they started are
    /// judged now; the others wait as any spawn does, or go, if it is not daemonic.
    fn resolve(&mut self, model: &Model, parent: ProcessKey, out: &mut Vec<Event>) {
        let daemonic = find_any(model, parent).is_some_and(|p| model.get(p).class.is_daemonic());
        let (mine, others): (Vec<PendingSpawn>, Vec<PendingSpawn>) =
            std::mem::take(&mut self.pending)
                .into_iter()
                .partition(|p| p.parent == parent && (!daemonic || p.shown.is_some()));
        self.pending = others;
        for mut pending in mine {
            if let Some((how, program, ts)) = pending.shown.take() {
                out.extend(self.spawn_finding(model, &pending, how, program, ts));
            }
        }
    }

    /// Reads awaited past their time are given up on.
    fn expire(&mut self, model: &Model, now: u64, out: &mut Vec<Event>) {
        if self.awaiting.values().all(|&until| until > now) {
            return;
        }
        let mut expired: Vec<ProcessKey> = self
            .awaiting
            .iter()
            .filter(|&(_, &until)| until <= now)
            .map(|(&key, _)| key)
            .collect();
        expired.sort_unstable();
        for key in expired {
            self.awaiting.remove(&key);
            self.resolve(model, key, out);
        }
    }

    /// Reports spawns that went `SPAWN_SETTLE_NS` without exec by `now`.
    fn settle_due(&mut self, model: &Model, now: u64, out: &mut Vec<Event>) {
        self.expire(model, now, out);
        let due = |p: &PendingSpawn| {
            now.saturating_sub(p.ts) >= SPAWN_SETTLE_NS && !self.awaiting.contains_key(&p.parent)
        };
        if !self.pending.iter().any(due) {
            return;
        }
        let (due, waiting): (Vec<PendingSpawn>, Vec<PendingSpawn>) =
            std::mem::take(&mut self.pending).into_iter().partition(due);
        self.pending = waiting;
        for mut pending in due {
            let (how, program, ts) = pending.shown.take().unwrap_or((SpawnHow::Fork, None, now));
            out.extend(self.spawn_finding(model, &pending, how, program, ts));
        }
    }

    /// Before the model applies `event`: an exiting process is still live here.
    pub fn before(&mut self, event: &Event, model: &Model, out: &mut Vec<Event>) {
        let Event::Exit(exit) = event else {
            return;
        };
        let key = ProcessKey {
            pid: exit.pid,
            start_time: exit.start_time,
        };
        self.settle(model, key, SpawnHow::Fork, None, exit.ts, out);
        self.asked.remove(&key);
        let Some(index) = model.find(key) else {
            return;
        };
        let process = model.get(index);
        if self.orphans.remove(&process.key) {
            let death = death(model, process, exit);
            let since = process.orphaned.as_ref().map_or(exit.ts, |o| o.ts);
            let summary = format!(
                "orphan {} exited after {} as an orphan: {}",
                describe(&sketch(process)),
                duration(exit.ts.saturating_sub(since)),
                death.description
            );
            out.push(Event::Finding(Box::new(Finding {
                death: Some(death),
                orphaned_for_ns: Some(exit.ts.saturating_sub(since)),
                ..finding_about(model, index, FindingKind::OrphanExited, exit.ts, summary)
            })));
        }
        let signalled = self.signalled.remove(&process.key);
        if exit.signal.is_some() && process.class.role.is_some() {
            let death = death(model, process, exit);
            let summary = format!("{} was {}", describe(&sketch(process)), death.description);
            let mut finding = finding_about(model, index, FindingKind::Killed, exit.ts, summary);
            // What it was doing when the signals began, where it has since said less.
            if let Some((last, before)) = signalled
                && exit.ts.saturating_sub(last) < ESCALATION_STEP_NS
            {
                for (key, value) in before {
                    finding.identity.entry(key).or_insert(value);
                }
            }
            finding.death = Some(death);
            out.push(Event::Finding(Box::new(finding)));
        }
    }

    /// After the model applied `event`, or derived it.
    pub fn after(&mut self, event: &Event, model: &mut Model, out: &mut Vec<Event>) {
        let key = event.key();
        match event {
            Event::Lost(lost) => self.note_gap(lost.since, lost.ts, lost.count),
            Event::Snapshot(_) => {
                if let Some(index) = model.find(key) {
                    self.classify_tree(model, index);
                }
            }
            Event::ProcessStart(start) => {
                if let Some(index) = model.find(key) {
                    // What the caller's parent-death signal says of it, before its child.
                    if start.caller_pdeath_signal != 0
                        && let Some(creator) = model.creator(index)
                    {
                        self.classify(model, creator);
                    }
                    self.classify(model, index);
                    if let Some(creator) = model.creator(index) {
                        let awaited = self.ask(model, creator, start.ts);
                        if awaited || model.get(creator).class.is_daemonic() {
                            self.pending.push(PendingSpawn {
                                child: key,
                                parent: model.get(creator).key,
                                ts: start.ts,
                                shown: None,
                                draft: None,
                            });
                        }
                    }
                }
            }
            Event::Exec(exec) => {
                if let Some(index) = model.find(key) {
                    self.classify(model, index);
                    let spawned_python = model
                        .get(index)
                        .class
                        .role
                        .as_ref()
                        .is_some_and(|r| r.id == "python.mp_spawn_child");
                    let how = if spawned_python {
                        SpawnHow::MultiprocessingSpawn
                    } else {
                        SpawnHow::Exec
                    };
                    self.settle(model, key, how, Some(exec.filename.clone()), exec.ts, out);
                }
            }
            Event::Rename(_) => {
                if let Some(index) = model.find(key) {
                    self.classify(model, index);
                }
            }
            Event::Signal(signal) => self.note_signal(model, key, signal.ts),
            Event::Interpreter(read) => {
                // As the live tracer saw it: reads given up on before this one came are gone.
                self.expire(model, read.ts, out);
                self.awaiting.remove(&key);
                if !read.is_final() {
                    // Asked again at its next fork.
                    self.asked.remove(&key);
                }
                if let Some(index) = model.find(key) {
                    self.classify_tree(model, index);
                }
                self.resolve(model, key, out);
            }
            Event::Reparent(reparent) if reparent.source == ReparentSource::Exit => {
                self.on_orphaned(model, reparent, out);
            }
            _ => {}
        }
        self.settle_due(model, event.ts(), out);
    }

    fn on_orphaned(&mut self, model: &Model, reparent: &Reparent, out: &mut Vec<Event>) {
        let key = ProcessKey {
            pid: reparent.pid,
            start_time: reparent.start_time,
        };
        let Some(index) = model.find(key) else {
            return;
        };
        let orphan = model.get(index);
        let Some(orphaning) = &orphan.orphaned else {
            return;
        };
        let dead = find_any(model, orphaning.parent).map(|i| model.get(i));
        let interesting = orphan.class.is_daemonic()
            || orphan.class.role.is_some()
            || !orphan.class.identity.is_empty()
            || dead.is_some_and(|d| d.class.role.is_some() || d.class.is_daemonic());
        if !interesting {
            return;
        }
        let dead_sketch = dead.map(sketch).unwrap_or_else(|| ProcessSketch {
            pid: orphaning.parent.pid,
            start_time: orphaning.parent.start_time,
            title: format!("[{}]", orphaning.parent_comm),
            role: None,
            role_label: None,
            daemonic: false,
            exited: true,
            started_by: None,
        });
        let parent_death = dead.and_then(|d| {
            let info = d.exit.as_ref()?;
            let exit = Exit {
                ts: info.ts,
                pid: d.key.pid,
                start_time: d.key.start_time,
                ppid: d.ppid,
                exit_code: info.exit_code,
                signal: info.signal,
                core_dumped: info.core_dumped,
                reaper_pid: reparent.new_ppid,
                pgid: d.pgid,
                sid: d.sid,
                comm: d.comm.clone(),
                oom_killed: info.oom_killed,
                memory_cgroup: info.memory_cgroup.clone(),
                inferred: !info.observed,
            };
            Some(death(model, d, &exit))
        });
        let mut summary = format!(
            "{} orphaned, now under {}: its parent {} {}",
            describe(&sketch(orphan)),
            reparent.new_ppid,
            describe(&dead_sketch),
            parent_death
                .as_ref()
                .map_or("exited".to_owned(), |d| d.description.clone())
        );
        if !orphan.class.identity.is_empty() {
            let identity: Vec<String> = orphan
                .class
                .identity
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            summary.push_str(&format!(" [{}]", identity.join(" ")));
        }
        self.orphans.insert(orphan.key);
        out.push(Event::Finding(Box::new(Finding {
            parent_pid: Some(orphaning.parent.pid),
            new_ppid: Some(reparent.new_ppid),
            dead_parent: Some(dead_sketch),
            dead_parent_identity: dead.map(|d| d.class.identity.clone()).unwrap_or_default(),
            death: parent_death,
            ..finding_about(model, index, FindingKind::Orphaned, reparent.ts, summary)
        })));
    }

    /// Capture or replay is over: spawns still waiting are reported as forks, at the time of
    /// the last event.
    /// Time has passed without events (a live capture's tick, `now` in kernel time): reports
    /// the spawns that went long enough without exec, as the next event would have.
    pub fn settle_until(&mut self, model: &Model, now: u64, out: &mut Vec<Event>) {
        self.settle_due(model, now, out);
    }

    pub fn finish(&mut self, model: &Model, out: &mut Vec<Event>) {
        self.awaiting.clear();
        for mut pending in std::mem::take(&mut self.pending) {
            let (how, program, ts) =
                pending
                    .shown
                    .take()
                    .unwrap_or((SpawnHow::Fork, None, model.now()));
            out.extend(self.spawn_finding(model, &pending, how, program, ts));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{MemoryCgroup, Signal, SignalResult};
    use crate::fixtures::{self, key};
    use crate::history::FindingIndex;
    use crate::ingest::Pipeline;

    const TICK: u64 = 10_000_000;
    const MS: u64 = 1_000_000;

    struct Host {
        pipeline: Pipeline<FindingIndex>,
        ts: u64,
    }

    impl Host {
        fn new() -> Host {
            let mut host = Host {
                pipeline: Pipeline::new(
                    Model::new(TICK),
                    Analyzer::new(Rules::builtin()),
                    FindingIndex::default(),
                ),
                ts: 1_000 * MS,
            };
            host.snapshot(1, 0, "/sbin/init");
            host
        }

        fn tick(&mut self, ms: u64) -> u64 {
            self.ts += ms * MS;
            self.ts
        }

        fn key(&self, pid: u32) -> ProcessKey {
            self.pipeline.model.live(pid).expect("live").key
        }

        fn apply(&mut self, event: Event) {
            self.pipeline.apply(&event).unwrap();
        }

        fn snapshot(&mut self, pid: u32, ppid: u32, title: &str) {
            let ts = self.tick(1);
            // One argument: these titles are setproctitle titles, spaces and all.
            let Event::Snapshot(mut snapshot) =
                fixtures::snapshot(ts, key(pid, pid as u64 * TICK), ppid, title)
            else {
                unreachable!()
            };
            snapshot.cmdline = vec![title.to_owned()];
            self.apply(Event::Snapshot(snapshot));
        }

        fn fork(&mut self, pid: u32, parent: u32) {
            let ts = self.tick(1);
            let parent = self.key(parent);
            self.apply(fixtures::fork(ts, key(pid, ts), parent, "python3"));
        }

        fn rename(&mut self, pid: u32, title: &str) {
            let ts = self.tick(1);
            let process = self.key(pid);
            self.apply(fixtures::rename(ts, process, title));
        }

        fn exec(&mut self, pid: u32, argv: &[&str]) {
            let ts = self.tick(1);
            let process = self.pipeline.model.live(pid).unwrap();
            let (process, ppid) = (process.key, process.ppid);
            let filename = format!("/usr/bin/{}", argv[0]);
            self.apply(fixtures::exec(ts, process, ppid, &filename, argv));
        }

        fn signal(&mut self, target: u32, sender: u32, sig: i32, after_ms: u64) {
            let ts = self.tick(after_ms);
            let (target, sender) = (self.key(target), self.key(sender));
            self.apply(fixtures::signal(ts, target, sender, sig));
        }

        fn exit(&mut self, pid: u32, code: Option<i32>, signal: Option<i32>) {
            let ts = self.tick(1);
            let process = self.pipeline.model.live(pid).unwrap();
            let (process, ppid) = (process.key, process.ppid);
            self.apply(fixtures::exit(ts, process, ppid, (code, signal), 1));
        }

        fn findings(&self, kind: FindingKind) -> Vec<&Finding> {
            self.pipeline
                .sink
                .as_slice()
                .iter()
                .filter(|f| f.kind == kind)
                .collect()
        }

        fn class(&self, pid: u32) -> &Classification {
            &self.pipeline.model.live(pid).unwrap().class
        }
    }

    /// A host with Celery main process 100 under init.
    fn celery_main() -> Host {
        let mut host = Host::new();
        host.snapshot(
            100,
            1,
            "[celeryd: w1@host:MainProcess] -active- (-A tasks worker)",
        );
        host
    }

    /// Celery main 100 forks pool worker 101, which forks two children from a task; the
    /// main process enforces a hard time limit on 101.
    /// Pool worker 101 of the Celery main process 100.
    fn celery_pool_worker() -> Host {
        let mut host = celery_main();
        host.fork(101, 100);
        host.rename(101, "[celeryd: w1@host:ForkPoolWorker-2]");
        host
    }

    fn celery_hard_time_limit() -> Host {
        let mut host = celery_pool_worker();
        host.fork(102, 101);
        host.fork(103, 101);
        host.signal(101, 100, 15, 2_000);
        host.signal(101, 100, 9, 100);
        host.exit(101, None, Some(9));
        host
    }

    #[test]
    fn a_pool_worker_and_its_forks_are_daemonic_with_evidence() {
        let host = celery_hard_time_limit();
        let child = host.class(102);
        assert!(child.is_daemonic());
        assert_eq!(child.role, None, "a fork's copied title is not its role");
        assert_eq!(
            child.explain_daemonic().unwrap(),
            "forked without exec from 101 `[celeryd: w1@host:ForkPoolWorker-2]` \
             (daemonic: Celery prefork pool worker (rule celery.pool_worker))"
        );
        assert_eq!(child.identity["celery_node"], "w1@host");
        assert_eq!(child.identity["celery_worker"], "2");
        assert!(
            !host.class(100).is_daemonic(),
            "the main process is not daemonic"
        );
    }

    fn lose(host: &mut Host, count: u64, since: u64) {
        let ts = host.tick(1);
        host.apply(Event::Lost(crate::event::Lost {
            ts,
            pid: 0,
            start_time: 0,
            count,
            by_kind: crate::event::LostCounts {
                exec: count,
                ..Default::default()
            },
            since,
        }));
    }

    #[test]
    fn findings_resting_on_a_gap_are_uncertain_and_others_are_not() {
        let mut host = celery_main();
        // A loss long before the pool worker exists: nothing it rests on was alive.
        let before = host.ts;
        lose(&mut host, 5, before);
        host.fork(101, 100);
        host.rename(101, "[celeryd: w1@host:ForkPoolWorker-2]");
        host.fork(102, 101);
        // An exec of 103 may be among these: its daemonic spawn is uncertain.
        host.fork(103, 101);
        let since = host.ts;
        lose(&mut host, 7, since);
        host.tick(2_000);
        host.exit(101, None, Some(9));
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 2);
        for spawn in spawns {
            let reason = spawn.uncertain.as_deref().expect("after the gap");
            assert!(reason.starts_with("7 kernel records were lost"), "{reason}");
            assert!(spawn.summary.ends_with(&format!("(UNCERTAIN: {reason})")));
        }

        // The same story without the second loss: certain.
        let mut host = celery_main();
        let before = host.ts;
        lose(&mut host, 5, before);
        host.fork(101, 100);
        host.rename(101, "[celeryd: w1@host:ForkPoolWorker-2]");
        host.fork(102, 101);
        host.tick(2_000);
        host.exit(101, None, Some(9));
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 1);
        assert_eq!(spawns[0].uncertain, None);
        assert!(
            host.findings(FindingKind::Killed)
                .iter()
                .all(|f| f.uncertain.is_none())
        );
    }

    #[test]
    fn a_process_first_seen_late_makes_its_findings_uncertain() {
        let mut host = celery_main();
        // Pool worker 101's start was never seen: it shows up in an exec.
        let ts = host.tick(1);
        host.apply(fixtures::exec(
            ts,
            key(101, ts - 5 * MS),
            100,
            "/usr/bin/python3",
            &["[celeryd: w1@host:ForkPoolWorker-2]"],
        ));
        host.fork(102, 101);
        host.tick(2_000);
        host.exit(101, None, Some(9));
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 1);
        assert!(
            spawns.iter().all(|s| s
                .uncertain
                .as_deref()
                .is_some_and(|r| r.contains("101 was first seen after its start"))),
            "{spawns:#?}"
        );
    }

    #[test]
    fn the_hard_time_limit_story() {
        let host = celery_hard_time_limit();
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 2, "settled by time: the kill came 2 s later");
        assert!(spawns.iter().all(|s| s.how == Some(SpawnHow::Fork)));
        assert!(spawns.iter().all(|s| s.parent_pid == Some(101)));

        let killed = host.findings(FindingKind::Killed);
        assert_eq!(killed.len(), 1);
        let what = &killed[0]
            .death
            .as_ref()
            .unwrap()
            .killer
            .as_ref()
            .unwrap()
            .what;
        assert_eq!(
            what,
            "SIGKILL from 100, the Celery main process enforcing a hard time limit \
             (SIGTERM, then SIGKILL 100ms later)"
        );

        let orphaned = host.findings(FindingKind::Orphaned);
        assert_eq!(orphaned.len(), 2);
        let first = orphaned[0];
        assert_eq!((first.parent_pid, first.new_ppid), (Some(101), Some(1)));
        assert_eq!(
            first.dead_parent.as_ref().unwrap().role.as_deref(),
            Some("celery.pool_worker")
        );
        assert!(
            first.summary.contains("hard time limit"),
            "{}",
            first.summary
        );
        assert_eq!(first.lineage[0].pid, 101);
        assert_eq!(first.lineage[1].pid, 100);
        assert_eq!(first.identity["celery_worker"], "2");
    }

    #[test]
    fn a_killed_worker_keeps_the_task_it_was_running_when_the_signals_began() {
        let mut host = celery_main();
        host.fork(101, 100);
        host.rename(101, "[celeryd: w1@host:ForkPoolWorker-2] tasks.hang[t-1]");
        host.fork(102, 101);
        host.signal(101, 100, 15, 2_000);
        // Celery's task_postrun runs on SIGTERM and gives the worker back its plain title.
        host.rename(101, "[celeryd: w1@host:ForkPoolWorker-2]");
        host.signal(101, 100, 9, 100);
        host.exit(101, None, Some(9));

        let killed = host.findings(FindingKind::Killed);
        assert_eq!(killed[0].identity["celery_task"], "tasks.hang");
        assert_eq!(killed[0].identity["celery_task_id"], "t-1");
        assert_eq!(
            killed[0].process.title,
            "[celeryd: w1@host:ForkPoolWorker-2]"
        );
        let orphaned = host.findings(FindingKind::Orphaned);
        assert_eq!(orphaned[0].identity["celery_task"], "tasks.hang");

        // A worker killed while idle, long after its last task, is not given that task.
        let mut host = celery_main();
        host.fork(101, 100);
        host.rename(101, "[celeryd: w1@host:ForkPoolWorker-2] tasks.hang[t-1]");
        host.signal(101, 100, 10, 0);
        host.rename(101, "[celeryd: w1@host:ForkPoolWorker-2]");
        host.signal(101, 100, 9, 10_000);
        host.exit(101, None, Some(9));
        let killed = host.findings(FindingKind::Killed);
        assert_eq!(killed[0].identity.get("celery_task"), None);
    }

    #[test]
    fn exec_clears_the_flag_and_says_how() {
        let mut host = celery_hard_time_limit();
        host.snapshot(200, 100, "[celeryd: w1@host:ForkPoolWorker-1]");
        host.fork(201, 200);
        host.exec(201, &["sleep", "20"]);
        assert!(!host.class(201).is_daemonic());
        let spawn = host
            .findings(FindingKind::DaemonicSpawn)
            .into_iter()
            .find(|f| f.pid == 201)
            .cloned()
            .unwrap();
        assert_eq!(spawn.how, Some(SpawnHow::Exec));
        assert_eq!(spawn.program.as_deref(), Some("/usr/bin/sleep"));
        assert!(
            spawn.summary.ends_with("by exec of /usr/bin/sleep"),
            "{}",
            spawn.summary
        );
        // Its orphaning later: the exec'd child is not daemonic, but it belongs to the worker.
        host.exit(200, Some(0), None);
        let orphan = host
            .findings(FindingKind::Orphaned)
            .into_iter()
            .find(|f| f.pid == 201);
        assert!(orphan.is_some(), "orphans of a role are reported");
        host.exit(201, Some(0), None);
        let gone = host.findings(FindingKind::OrphanExited);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].pid, 201);
    }

    #[test]
    fn spawns_wait_for_the_child_to_show_how_until_the_end() {
        let mut host = Host::new();
        host.snapshot(300, 1, "airflow worker -- LocalExecutor");
        host.fork(301, 300);
        assert!(host.findings(FindingKind::DaemonicSpawn).is_empty());
        host.pipeline.finish_analysis().unwrap();
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 1);
        assert_eq!(spawns[0].how, Some(SpawnHow::Fork));
    }

    #[test]
    fn airflow_supervisor_killed_orphans_the_runner_with_the_task_identity() {
        let mut host = Host::new();
        host.snapshot(400, 1, "/venv/bin/python3 /venv/bin/airflow scheduler");
        host.fork(410, 400);
        host.rename(410, "airflow worker -- LocalExecutor");
        host.rename(
            410,
            "airflow worker -- LocalExecutor: ['airflow', 'tasks', 'run', 'etl', 'load', 'manual__1', '--local']",
        );
        host.fork(411, 410);
        host.rename(
            411,
            "airflow task supervisor: ['airflow', 'tasks', 'run', 'etl', 'load', 'manual__1', '--local']",
        );
        host.fork(412, 411);
        host.rename(412, "airflow task runner: etl load manual__1 7");
        host.fork(413, 412);
        host.exec(413, &["sleep", "120"]);
        assert_eq!(
            host.class(410).role.as_ref().unwrap().id,
            "airflow.local_worker"
        );
        assert!(
            host.class(412).is_daemonic(),
            "runner: forked from the daemonic worker's forks"
        );
        assert_eq!(host.class(412).identity["job_id"], "7");
        assert!(!host.class(400).is_daemonic());

        host.signal(411, 1, 9, 10);
        host.exit(411, None, Some(9));
        let orphaned = host.findings(FindingKind::Orphaned);
        assert_eq!(orphaned.len(), 1);
        let runner = orphaned[0];
        assert_eq!(runner.pid, 412);
        assert_eq!(runner.process.role.as_deref(), Some("airflow.task_runner"));
        for (key, value) in [
            ("dag_id", "etl"),
            ("task_id", "load"),
            ("run_id", "manual__1"),
        ] {
            assert_eq!(runner.identity[key], value);
        }
        let killed = host.findings(FindingKind::Killed);
        assert_eq!(killed[0].pid, 411);
        // The spawns: the supervisor and runner (framework) and the task's own sleep. The
        // runner never exec'd and the input ends within the settling time.
        host.pipeline.finish_analysis().unwrap();
        let spawned: Vec<u32> = host
            .findings(FindingKind::DaemonicSpawn)
            .iter()
            .map(|f| f.pid)
            .collect();
        assert!(spawned.contains(&411) && spawned.contains(&412) && spawned.contains(&413));
    }

    #[test]
    fn a_task_in_a_new_interpreter_is_not_daemonic() {
        let mut host = Host::new();
        host.snapshot(500, 1, "airflow worker -- LocalExecutor");
        host.fork(501, 500);
        host.exec(
            501,
            &[
                "/venv/bin/python3",
                "/venv/bin/airflow",
                "tasks",
                "run",
                "etl",
                "load",
                "manual__1",
                "--local",
            ],
        );
        let class = host.class(501);
        assert_eq!(class.role.as_ref().unwrap().id, "airflow.task_command");
        assert!(!class.is_daemonic());
        host.fork(502, 501);
        host.pipeline.finish_analysis().unwrap();
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 1, "only the worker's own spawn of 501");
        assert_eq!(spawns[0].pid, 501);
    }

    fn killer_of(finding: &Finding) -> &str {
        &finding
            .death
            .as_ref()
            .unwrap()
            .killer
            .as_ref()
            .unwrap()
            .what
    }

    const TI: &str = "0193a4f2-0000-7000-8000-00000000abcd";

    /// Airflow 2 LocalExecutor: worker 410 (daemonic) → supervisor 411 → runner 412 → the
    /// task's `sleep` 413.
    fn airflow2_task() -> Host {
        let mut host = Host::new();
        host.snapshot(400, 1, "/venv/bin/python3 /venv/bin/airflow scheduler");
        host.fork(410, 400);
        host.rename(410, "airflow worker -- LocalExecutor");
        host.fork(411, 410);
        host.rename(
            411,
            "airflow task supervisor: ['airflow', 'tasks', 'run', 'etl', 'load', 'manual__1', '--local']",
        );
        host.fork(412, 411);
        host.rename(412, "airflow task runner: etl load manual__1 7");
        host.fork(413, 412);
        host.exec(413, &["sleep", "120"]);
        host
    }

    #[test]
    fn the_airflow2_supervisor_stopping_its_runner_and_the_orphan_it_leaves() {
        let mut host = airflow2_task();
        host.signal(412, 411, 15, 10);
        host.exit(412, None, Some(15));
        let killed = host.findings(FindingKind::Killed);
        assert_eq!(killed.len(), 1);
        assert_eq!(killed[0].pid, 412);
        assert_eq!(
            killer_of(killed[0]),
            "SIGTERM from 411, the Airflow task supervisor stopping its task runner"
        );
        assert_eq!(
            killed[0].summary,
            "412 `airflow task runner: etl load manual__1 7` (Airflow task runner) was killed by \
             SIGTERM from 411, the Airflow task supervisor stopping its task runner"
        );

        let orphaned_at = host.ts;
        let orphaned = host.findings(FindingKind::Orphaned);
        assert_eq!(orphaned.len(), 1);
        assert_eq!(orphaned[0].pid, 413);
        assert_eq!(orphaned[0].identity["dag_id"], "etl");

        host.tick(1_500);
        host.exit(413, Some(0), None);
        let gone = host.findings(FindingKind::OrphanExited);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].pid, 413);
        assert_eq!(gone[0].orphaned_for_ns, Some(host.ts - orphaned_at));
        assert_eq!(gone[0].orphaned_for_ns, Some(1_501 * MS));
        assert_eq!(
            gone[0].summary,
            "orphan 413 `sleep 120` exited after 1.5s as an orphan: exit code 0"
        );
        assert_eq!(gone[0].identity["run_id"], "manual__1");
    }

    /// Airflow 3 under Celery: pool worker 701 of main process 700, retitled as the
    /// supervisor of task instance `TI` (a daemonic root).
    fn airflow3_celery_supervisor() -> Host {
        let mut host = Host::new();
        host.snapshot(
            700,
            1,
            "[celeryd: w3@host:MainProcess] -active- (-A airflow.providers.celery worker)",
        );
        host.fork(701, 700);
        host.rename(701, "[celeryd: w3@host:ForkPoolWorker-1]");
        host.rename(701, &format!("airflow supervisor: {TI}"));
        host
    }

    #[test]
    fn an_escalation_lists_every_signal_from_the_same_sender() {
        // Task process 702 of the Airflow 3 supervisor 701 under Celery; its user code
        // starts 703.
        let mut host = airflow3_celery_supervisor();
        host.fork(702, 701);
        host.rename(702, &format!("airflow worker -- {TI}"));
        host.fork(703, 702);
        host.exec(703, &["sleep", "120"]);

        // The supervisor's escalation, 5 s apart; a signal from someone else in between is
        // not part of it.
        host.signal(702, 701, 2, 10);
        host.signal(702, 1, 1, 1_000);
        host.signal(702, 701, 15, 4_000);
        host.signal(702, 701, 9, 5_000);
        host.exit(702, None, Some(9));
        let killed = host.findings(FindingKind::Killed);
        assert_eq!(killed.len(), 1);
        assert_eq!(
            killer_of(killed[0]),
            "SIGKILL from 701, the Airflow task supervisor stopping its task process \
             (SIGINT, then SIGTERM 5.0s later, then SIGKILL 5.0s later)"
        );
    }

    #[test]
    fn an_escalation_stops_at_a_pause_longer_than_a_step_and_counts_repeats_once() {
        let mut host = celery_pool_worker();
        // A SIGINT a minute earlier is another story; SIGTERM twice is one step.
        host.signal(101, 100, 2, 10);
        host.signal(101, 100, 15, 60_000);
        host.signal(101, 100, 15, 50);
        host.signal(101, 100, 9, 100);
        host.exit(101, None, Some(9));
        let killed = host.findings(FindingKind::Killed);
        assert_eq!(
            killer_of(killed[0]),
            "SIGKILL from 100, the Celery main process enforcing a hard time limit \
             (SIGTERM, then SIGKILL 100ms later)"
        );

        // A SIGKILL 3 s after the SIGTERM is still an escalation, but no hard time limit.
        let mut host = celery_pool_worker();
        host.signal(101, 100, 15, 10);
        host.signal(101, 100, 9, 3_000);
        host.exit(101, None, Some(9));
        assert_eq!(
            killer_of(host.findings(FindingKind::Killed)[0]),
            "SIGKILL from 100, the Celery main process stopping its pool worker \
             (SIGTERM, then SIGKILL 3.0s later)"
        );
    }

    #[test]
    fn airflow3_under_celery_the_task_process_and_its_children_are_daemonic() {
        let mut host = airflow3_celery_supervisor();
        let supervisor = host.class(701);
        assert_eq!(
            supervisor.role.as_ref().unwrap().id,
            "airflow3.celery_supervisor"
        );
        assert_eq!(supervisor.daemonic.len(), 1, "a daemonic root");
        assert_eq!(supervisor.identity["ti_id"], TI);

        host.fork(702, 701);
        host.rename(702, &format!("airflow worker -- {TI}"));
        let task = host.class(702);
        assert_eq!(task.role.as_ref().unwrap().id, "airflow3.task");
        assert_eq!(task.identity["ti_id"], TI);
        assert_eq!(
            task.explain_daemonic().unwrap(),
            format!(
                "forked without exec from 701 `airflow supervisor: {TI}` (daemonic: Airflow 3 \
                 task supervisor in a Celery pool worker (rule airflow3.celery_supervisor))"
            )
        );

        host.fork(703, 702);
        host.exec(703, &["sleep", "120"]);
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        let user = spawns
            .iter()
            .find(|f| f.pid == 703)
            .expect("the user child");
        assert_eq!(user.parent_pid, Some(702));
        assert_eq!(user.how, Some(SpawnHow::Exec));
        assert_eq!(user.identity["ti_id"], TI);
        assert_eq!(user.lineage[0].role.as_deref(), Some("airflow3.task"));
        // Why the parent is daemonic: the task process, then the supervisor root.
        let chain: Vec<u32> = user.evidence.iter().map(|e| e.pid).collect();
        assert_eq!(chain, [702, 701]);
    }

    #[test]
    fn airflow3_local_executor_is_not_daemonic_but_its_kills_and_orphans_are_named() {
        let mut host = Host::new();
        host.snapshot(800, 1, "/venv/bin/python3 /venv/bin/airflow scheduler");
        host.fork(801, 800);
        host.rename(801, "airflow worker -- LocalExecutor: <idle>");
        host.rename(801, &format!("airflow worker -- LocalExecutor: {TI}"));
        host.fork(802, 801);
        host.rename(802, &format!("airflow worker -- {TI}"));
        host.fork(803, 802);
        host.exec(803, &["sleep", "120"]);
        assert_eq!(
            host.class(801).role.as_ref().unwrap().id,
            "airflow3.local_worker"
        );
        assert_eq!(host.class(802).role.as_ref().unwrap().id, "airflow3.task");
        assert_eq!(host.class(802).identity["ti_id"], TI);
        for pid in [800, 801, 802, 803] {
            assert!(!host.class(pid).is_daemonic(), "{pid}");
        }

        host.signal(802, 801, 2, 10);
        host.signal(802, 801, 15, 5_000);
        host.exit(802, None, Some(15));
        host.pipeline.finish_analysis().unwrap();
        assert!(host.findings(FindingKind::DaemonicSpawn).is_empty());
        let killed = host.findings(FindingKind::Killed);
        assert_eq!(killed.len(), 1);
        assert_eq!(
            killer_of(killed[0]),
            "SIGTERM from 801, the Airflow task supervisor stopping its task process \
             (SIGINT, then SIGTERM 5.0s later)"
        );
        let orphaned = host.findings(FindingKind::Orphaned);
        assert_eq!(orphaned.len(), 1);
        assert_eq!(orphaned[0].pid, 803);
        assert_eq!(orphaned[0].identity["ti_id"], TI);
        assert_eq!(
            orphaned[0].dead_parent.as_ref().unwrap().role.as_deref(),
            Some("airflow3.task")
        );
    }

    #[test]
    fn a_multiprocessing_spawn_child_of_a_daemonic_process_says_so() {
        let mut host = celery_pool_worker();
        host.fork(110, 101);
        host.exec(
            110,
            &[
                "python3",
                "-B",
                "-c",
                "from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7)",
                "--multiprocessing-fork",
            ],
        );
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 1);
        assert_eq!(spawns[0].how, Some(SpawnHow::MultiprocessingSpawn));
        assert_eq!(spawns[0].program.as_deref(), Some("/usr/bin/python3"));
        assert_eq!(
            spawns[0].process.role.as_deref(),
            Some("python.mp_spawn_child")
        );
        assert!(
            spawns[0]
                .summary
                .ends_with("by a Python multiprocessing child (spawn start method)"),
            "{}",
            spawns[0].summary
        );
        assert!(!host.class(110).is_daemonic(), "a new interpreter");
    }

    #[test]
    fn a_forkserver_child_descends_from_the_forkserver_not_its_caller() {
        let mut host = celery_pool_worker();
        // The pool worker starts a forkserver, then asks it for a child.
        host.fork(120, 101);
        host.exec(
            120,
            &[
                "python3",
                "-c",
                "from multiprocessing.forkserver import main; main(8, 9, ['__main__'], **{})",
            ],
        );
        host.fork(121, 120);
        let served = host.class(121);
        assert_eq!(
            served.role.as_ref().unwrap().id,
            "python.mp_forkserver_child"
        );
        assert!(!served.is_daemonic(), "the forkserver is not daemonic");
        host.tick(2_000);
        host.signal(120, 101, 9, 10);
        host.exit(120, None, Some(9));
        let orphaned = host.findings(FindingKind::Orphaned);
        assert_eq!(orphaned.len(), 1);
        let lineage: Vec<(u32, Option<&str>)> = orphaned[0]
            .lineage
            .iter()
            .map(|p| (p.pid, p.role.as_deref()))
            .collect();
        assert_eq!(
            lineage,
            [
                (120, Some("python.mp_forkserver")),
                (101, Some("celery.pool_worker")),
                (100, Some("celery.main")),
            ]
        );
        let spawned: Vec<u32> = host
            .findings(FindingKind::DaemonicSpawn)
            .iter()
            .map(|f| f.pid)
            .collect();
        assert_eq!(spawned, [120], "only the daemonic worker's own spawn");
    }

    #[test]
    fn celery_without_setproctitle_has_daemonic_pool_workers() {
        // Seen starting: the main process execs celery; its pool workers are plain forks.
        let mut host = Host::new();
        host.snapshot(90, 1, "bash");
        host.fork(100, 90);
        host.exec(
            100,
            &[
                "python3",
                "/venv/bin/celery",
                "-A",
                "t",
                "worker",
                "-n",
                "w4@h",
            ],
        );
        assert_eq!(host.class(100).role.as_ref().unwrap().id, "celery.main");
        host.fork(101, 100);
        let worker = host.class(101);
        assert_eq!(worker.role.as_ref().unwrap().id, "celery.pool_worker");
        assert_eq!(worker.identity["celery_node"], "w4@h");
        assert_eq!(
            worker.explain_daemonic().unwrap(),
            "daemonic: Celery prefork pool worker (rule celery.pool_worker)"
        );
        host.fork(102, 101);
        host.pipeline.finish_analysis().unwrap();
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        let spawn = spawns
            .iter()
            .find(|f| f.pid == 102)
            .expect("the task's fork");
        assert_eq!(
            (spawn.parent_pid, spawn.how),
            (Some(101), Some(SpawnHow::Fork))
        );
        assert_eq!(spawn.identity["celery_node"], "w4@h");

        // Found running: the snapshot shows the same command line for main and worker.
        let mut host = Host::new();
        let title = "/venv/bin/python3 /venv/bin/celery -A t worker";
        host.snapshot(200, 1, title);
        host.snapshot(201, 200, title);
        assert_eq!(host.class(200).role.as_ref().unwrap().id, "celery.main");
        assert!(!host.class(200).is_daemonic());
        assert_eq!(
            host.class(201).role.as_ref().unwrap().id,
            "celery.pool_worker"
        );
        assert!(host.class(201).is_daemonic());
        host.fork(202, 201);
        host.pipeline.finish_analysis().unwrap();
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 1);
        assert_eq!((spawns[0].pid, spawns[0].parent_pid), (202, Some(201)));
    }

    #[test]
    fn a_parent_death_signal_is_named_as_such() {
        let mut host = Host::new();
        host.snapshot(600, 1, "[celeryd: w2@host:MainProcess]");
        host.fork(601, 600);
        host.rename(601, "[celeryd: w2@host:ForkPoolWorker-1]");
        // The main process is SIGKILLed; its pool worker gets its death signal from it.
        host.signal(600, 1, 9, 10);
        host.exit(600, None, Some(9));
        let ts = host.tick(1);
        let (target, sender) = (
            host.key(601),
            ProcessKey {
                pid: 600,
                start_time: 600 * TICK,
            },
        );
        host.apply(fixtures::signal(ts, target, sender, 9));
        host.exit(601, None, Some(9));
        let killed = host.findings(FindingKind::Killed);
        let worker = killed.iter().find(|f| f.pid == 601).unwrap();
        let what = &worker.death.as_ref().unwrap().killer.as_ref().unwrap().what;
        assert_eq!(
            what,
            "SIGKILL, its parent's death signal (PR_SET_PDEATHSIG), as 600 died"
        );
    }

    /// A Celery pool worker 11 (parent 10, the main process) and its task child 12.
    fn celery_pool() -> Host {
        let mut host = Host::new();
        host.snapshot(10, 1, "[celeryd: w1@host:MainProcess] -active- (worker)");
        host.fork(11, 10);
        host.rename(11, "[celeryd: w1@host:ForkPoolWorker-1]");
        host
    }

    /// A signal from `sender` with the kernel's `si_code` and result as the probe saw them.
    fn raw_signal(host: &mut Host, target: u32, sender: u32, sig: i32, edit: impl Fn(&mut Signal)) {
        let ts = host.tick(1);
        let (target, sender) = (host.key(target), host.key(sender));
        let Event::Signal(mut signal) = fixtures::signal(ts, target, sender, sig) else {
            unreachable!()
        };
        edit(&mut signal);
        host.apply(Event::Signal(signal));
    }

    fn exit_with(host: &mut Host, pid: u32, signal: i32, edit: impl Fn(&mut Exit)) {
        let ts = host.tick(1);
        let process = host.pipeline.model.live(pid).unwrap();
        let (process, ppid) = (process.key, process.ppid);
        let Event::Exit(mut exit) = fixtures::exit(ts, process, ppid, (None, Some(signal)), 1)
        else {
            unreachable!()
        };
        edit(&mut exit);
        host.apply(Event::Exit(exit));
    }

    #[test]
    fn an_oom_kill_is_the_kernels_whichever_task_was_current() {
        let mut host = celery_pool();
        // The OOM killer runs in the allocating task: here the victim itself.
        raw_signal(&mut host, 11, 11, 9, |s| s.code = SI_KERNEL);
        exit_with(&mut host, 11, 9, |e| {
            e.oom_killed = true;
            e.memory_cgroup = Some(MemoryCgroup::new(
                4242,
                Some("/workers".into()),
                Some(64 << 20),
            ));
        });
        let killed = host.findings(FindingKind::Killed);
        assert_eq!(killed.len(), 1);
        assert_eq!(
            killer_of(killed[0]),
            "SIGKILL from the kernel (OOM killer, memory cgroup /workers limited to 64 MiB)"
        );
        let killer = killed[0].death.as_ref().unwrap().killer.as_ref().unwrap();
        assert_eq!(killer.process.pid, 0, "no process is named as the sender");
    }

    #[test]
    fn a_kernel_kill_without_its_signal_record_is_still_the_oom_killers() {
        let mut host = celery_pool();
        exit_with(&mut host, 11, 9, |e| e.oom_killed = true);
        assert_eq!(
            killer_of(host.findings(FindingKind::Killed)[0]),
            "SIGKILL from the kernel (OOM killer)"
        );
    }

    #[test]
    fn rlimit_cpu_kills_are_the_kernels_too() {
        let mut host = celery_pool();
        raw_signal(&mut host, 11, 10, SIGXCPU, |s| s.code = SI_KERNEL);
        raw_signal(&mut host, 11, 10, 9, |s| s.code = SI_KERNEL);
        exit_with(&mut host, 11, 9, |_| {});
        assert_eq!(
            killer_of(host.findings(FindingKind::Killed)[0]),
            "SIGKILL from the kernel (CPU time limit, RLIMIT_CPU)"
        );
    }

    #[test]
    fn the_killer_is_the_first_delivered_sigkill_not_a_later_ignored_one() {
        let mut host = celery_pool();
        host.snapshot(20, 1, "/usr/bin/bash");
        host.signal(11, 10, 15, 10);
        host.signal(11, 10, 9, 100);
        // A second sender's SIGKILL while the worker dies: ignored by the kernel.
        raw_signal(&mut host, 11, 20, 9, |s| s.result = SignalResult::Ignored);
        raw_signal(&mut host, 11, 10, 15, |s| {
            s.result = SignalResult::AlreadyPending
        });
        host.exit(11, None, Some(9));
        assert_eq!(
            killer_of(host.findings(FindingKind::Killed)[0]),
            "SIGKILL from 10, the Celery main process enforcing a hard time limit \
             (SIGTERM, then SIGKILL 100ms later)"
        );
    }

    #[test]
    fn a_parent_death_signal_from_an_exiting_thread_is_not_a_kill_by_the_parent() {
        let mut host = celery_pool();
        host.fork(12, 11);
        raw_signal(&mut host, 12, 11, 9, |s| {
            s.sender_tid = 13;
            s.sender_exiting = true;
            s.target_pdeath_signal = 9;
        });
        let process = host.pipeline.model.live(12).unwrap().clone();
        let what = killer(&host.pipeline.model, &process, &fixture_exit(&process))
            .unwrap()
            .what;
        assert_eq!(
            what,
            "SIGKILL, its parent's death signal (PR_SET_PDEATHSIG), fired as thread 13 of 11, \
             the thread that had forked it, exited while 11 lived on"
        );
        // The same signal sent as the parent's last thread exits: the parent died.
        let mut host = celery_pool();
        host.fork(12, 11);
        raw_signal(&mut host, 12, 11, 9, |s| {
            s.sender_exiting = true;
            s.sender_group_exiting = true;
            s.target_pdeath_signal = 9;
        });
        let process = host.pipeline.model.live(12).unwrap().clone();
        let what = killer(&host.pipeline.model, &process, &fixture_exit(&process))
            .unwrap()
            .what;
        assert_eq!(
            what,
            "SIGKILL, its parent's death signal (PR_SET_PDEATHSIG), as 11 died"
        );
    }

    fn fixture_exit(process: &Process) -> Exit {
        let Event::Exit(exit) = fixtures::exit(
            process.key.start_time + 1,
            process.key,
            process.ppid,
            (None, Some(9)),
            1,
        ) else {
            unreachable!()
        };
        exit
    }

    #[test]
    fn celery_node_names_from_command_lines_are_expanded_with_the_traced_host() {
        let mut host = Host::new();
        let mut header = fixtures::header();
        header.host = "vm".into();
        host.pipeline.header(&header).unwrap();
        host.snapshot(30, 1, "/venv/bin/celery -A app worker -n repro@%h");
        let main = host.pipeline.model.live(30).unwrap();
        assert_eq!(
            main.class.identity.get("celery_node").map(String::as_str),
            Some("repro@vm")
        );
    }

    impl Host {
        /// Captures as with `--python-inspect on`.
        fn inspecting() -> Host {
            let mut host = Host::new();
            host.pipeline.analyzer.set_inspecting(true);
            host.pipeline.analyzer.want_reads();
            host
        }

        fn read(&mut self, pid: u32, daemon: bool, name: &str, class: &str, parent: Option<u32>) {
            let ts = self.tick(1);
            let process = self.pipeline.model.live(pid).expect("live");
            let (key, execs) = (process.key, process.execs);
            let Event::Interpreter(mut read) =
                fixtures::interpreter(ts, key, daemon, name, class, parent)
            else {
                unreachable!()
            };
            read.execs = execs;
            self.apply(Event::Interpreter(read));
        }
    }

    /// A plain script 50 (no title any rule knows) whose `Process(daemon=True)` 51 starts a
    /// forked child and a subprocess, each of them before the read of 51 came back.
    #[test]
    fn a_read_daemon_flag_makes_a_plain_scripts_spawns_findings() {
        let mut host = Host::inspecting();
        host.snapshot(50, 1, "python3 job.py");
        host.fork(51, 50);
        let wanted = |host: &mut Host| -> Vec<ProcessKey> {
            host.pipeline
                .analyzer
                .take_wanted()
                .iter()
                .map(|w| w.process)
                .collect()
        };
        assert_eq!(wanted(&mut host), [host.key(50)]);
        host.read(
            50,
            false,
            "MainProcess",
            "multiprocessing.process._MainProcess",
            None,
        );
        host.fork(52, 51);
        host.fork(53, 51);
        host.exec(53, &["sleep", "30"]);
        host.exit(52, Some(0), None);
        assert_eq!(wanted(&mut host), [host.key(51)]);
        assert!(
            host.findings(FindingKind::DaemonicSpawn).is_empty(),
            "not before the read"
        );
        host.read(
            51,
            true,
            "Process-1",
            "multiprocessing.context.Process",
            Some(50),
        );
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 2, "{spawns:?}");
        let mut hows: Vec<Option<SpawnHow>> = spawns.iter().map(|s| s.how).collect();
        hows.sort_by_key(|h| format!("{h:?}"));
        assert_eq!(hows, [Some(SpawnHow::Exec), Some(SpawnHow::Fork)]);
        assert_eq!(
            spawns[0].evidence[0].reason,
            "daemonic: `Process-1` (multiprocessing.context.Process) has daemon=True, read from \
             the interpreter (Python 3.11)"
        );
        assert!(host.class(51).is_daemonic());
        assert!(!host.class(50).is_daemonic(), "MainProcess");
        assert_eq!(
            host.class(51).started_by,
            None,
            "its parent in the kernel too"
        );
        // The parent's forks that came after the read are judged as any daemonic spawn.
        host.fork(54, 51);
        host.exec(54, &["true"]);
        assert_eq!(host.findings(FindingKind::DaemonicSpawn).len(), 3);
    }

    #[test]
    fn a_read_of_daemon_false_overrides_the_title_rules_and_says_they_disagree() {
        let mut host = celery_pool_worker();
        host.pipeline.analyzer.set_inspecting(true);
        host.fork(102, 101);
        host.exec(102, &["sleep", "1"]);
        host.read(101, false, "Worker-7", "__main__.Odd", Some(100));
        assert!(host.findings(FindingKind::DaemonicSpawn).is_empty());
        let class = host.class(101);
        assert!(!class.is_daemonic());
        assert_eq!(
            class.conflict.as_deref(),
            Some(
                "without the interpreter it would be daemonic (daemonic: Celery prefork pool \
                 worker (rule celery.pool_worker)), but the interpreter has daemon=False for \
                 `Worker-7` (__main__.Odd)"
            )
        );
    }

    #[test]
    fn a_read_that_never_comes_leaves_the_verdict_to_the_title_rules() {
        let mut host = celery_pool_worker();
        host.pipeline.analyzer.set_inspecting(true);
        host.fork(102, 101);
        host.exec(102, &["sleep", "1"]);
        assert!(
            host.findings(FindingKind::DaemonicSpawn).is_empty(),
            "waiting"
        );
        host.tick(READ_WAIT_NS / MS);
        host.fork(103, 100);
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 1);
        assert_eq!(spawns[0].how, Some(SpawnHow::Exec));
        assert!(
            spawns[0].evidence[0]
                .reason
                .contains("rule celery.pool_worker")
        );
    }

    #[test]
    fn without_inspection_nothing_is_asked_or_awaited() {
        let mut host = celery_pool_worker();
        host.fork(102, 101);
        host.exec(102, &["sleep", "1"]);
        assert_eq!(host.findings(FindingKind::DaemonicSpawn).len(), 1);
        assert!(host.pipeline.analyzer.take_wanted().is_empty());
    }

    /// Under the forkserver start method the kernel parent is the forkserver; the process
    /// that asked for the child is in its interpreter.
    #[test]
    fn a_forkserver_child_names_the_process_that_started_it() {
        let mut host = Host::inspecting();
        host.snapshot(60, 1, "python3 job.py");
        host.fork(61, 60);
        host.exec(
            61,
            &[
                "python3",
                "-c",
                "from multiprocessing.forkserver import main; main(8, 9, ['__main__'], **{})",
            ],
        );
        host.read(
            60,
            false,
            "MainProcess",
            "multiprocessing.process._MainProcess",
            None,
        );
        host.fork(62, 61);
        host.read(
            61,
            false,
            "MainProcess",
            "multiprocessing.process._MainProcess",
            None,
        );
        host.fork(63, 62);
        host.read(
            62,
            true,
            "Process-1",
            "multiprocessing.context.ForkServerProcess",
            Some(60),
        );
        assert_eq!(host.class(62).started_by, Some(60));
        // A forked child is judged when it has gone a while without exec.
        host.tick(SPAWN_SETTLE_NS / MS);
        host.fork(70, 1);
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 1, "{spawns:?}");
        assert_eq!(spawns[0].lineage[0].started_by, Some(60));
        // An os.fork() child of it keeps its process object: no claim about who started it.
        host.fork(64, 63);
        host.read(
            63,
            true,
            "Process-1",
            "multiprocessing.context.ForkServerProcess",
            Some(60),
        );
        assert_eq!(host.class(63).started_by, None);
    }

    /// Without a read (inspection off), a forked Python process that set PR_SET_PDEATHSIG to
    /// SIGKILL, as Celery's pool workers do, is daemonic on that kernel-visible evidence; a
    /// read that says otherwise wins.
    #[test]
    fn a_parent_death_sigkill_is_daemonic_evidence_until_the_interpreter_says_otherwise() {
        let fork_with_pdeath = |host: &mut Host, pid: u32, parent: u32| {
            let ts = host.tick(1);
            let Event::ProcessStart(mut start) =
                fixtures::fork(ts, key(pid, ts), host.key(parent), "python3")
            else {
                unreachable!()
            };
            start.caller_pdeath_signal = SIGKILL;
            host.apply(Event::ProcessStart(start));
        };
        let mut host = Host::new();
        host.snapshot(80, 1, "python3 job.py");
        host.fork(81, 80);
        fork_with_pdeath(&mut host, 82, 81);
        host.exec(82, &["sleep", "1"]);
        let spawns = host.findings(FindingKind::DaemonicSpawn);
        assert_eq!(spawns.len(), 1);
        assert!(
            spawns[0].evidence[0]
                .reason
                .contains("set PR_SET_PDEATHSIG to SIGKILL"),
            "{:?}",
            spawns[0].evidence
        );
        assert!(!host.class(80).is_daemonic(), "its parent set none");

        let mut host = Host::inspecting();
        host.snapshot(80, 1, "python3 job.py");
        host.fork(81, 80);
        host.read(
            80,
            false,
            "MainProcess",
            "multiprocessing.process._MainProcess",
            None,
        );
        fork_with_pdeath(&mut host, 82, 81);
        host.exec(82, &["sleep", "1"]);
        host.read(
            81,
            false,
            "MainProcess",
            "multiprocessing.process._MainProcess",
            None,
        );
        assert!(host.findings(FindingKind::DaemonicSpawn).is_empty());
        assert!(
            host.class(81)
                .conflict
                .as_deref()
                .is_some_and(|c| c.contains("PR_SET_PDEATHSIG")),
            "{:?}",
            host.class(81)
        );
    }
}
