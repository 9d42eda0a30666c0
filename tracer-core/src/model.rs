//! The live process tree of a host, rebuilt from events. Plain Rust with no I/O: live capture
//! and replay feed it the same events and get the same tree.
//!
//! Identity is (pid, start time) everywhere. A process keeps two parents: the one it has now
//! (`ppid`, which changes when it is reparented) and the one that created it (its lineage). An
//! exited process stays as a tombstone while any process descended from it lives, so the
//! lineage of an orphan survives its parent; then it is collected.

use std::collections::VecDeque;

use rustc_hash::{FxHashMap, FxHashSet};

use serde::{Deserialize, Serialize};

use crate::event::{
    Environment, Event, Exec, Exit, InterpreterRead, LostCounts, MemoryCgroup, ProcessKey,
    ProcessStart, Rename, Reparent, ReparentSource, Signal, SignalResult, Snapshot,
};
use crate::roles::Classification;

/// Index of a process in the model. Valid while the process is retained.
pub type ProcessIndex = usize;

/// The pid of kthreadd, parent of every kernel thread.
const KTHREADD: u32 = 2;

/// The parent of processes whose parent the model lost track of.
pub const UNKNOWN_PARENT: u32 = 0;

/// Terminating signals remembered per process: enough for the longest escalation seen on
/// these hosts (Airflow 3's SIGINT, SIGTERM, SIGKILL) and one more.
const SIGNAL_HISTORY: usize = 8;

/// How many exited identities the model remembers, so that an event arriving after its
/// process's exit cannot bring the process back.
const RECENT_EXITS: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Found in `/proc` when the tracer started.
    Snapshot,
    /// Seen being created.
    Fork,
    /// First seen in a later event (its creation was lost or raced the bootstrap).
    Inferred,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    pub ts: u64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub core_dumped: bool,
    /// False when the process vanished without an exit event (its pid came back as another
    /// process): the exit was lost.
    pub observed: bool,
    /// The OOM killer chose it, and the memory cgroup it ran in.
    #[serde(default, skip_serializing_if = "is_false")]
    pub oom_killed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_cgroup: Option<MemoryCgroup>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Orphaning {
    pub ts: u64,
    /// The parent whose exit orphaned this process.
    pub parent: ProcessKey,
    pub parent_comm: String,
    /// Who adopted it.
    pub new_ppid: u32,
}

/// Where a process's title (command line) came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TitleSource {
    /// Read from `/proc` at start; whether it was its own is unknown.
    Snapshot,
    /// Copied from the process that forked it: not its own yet.
    Fork,
    Exec,
    Rename,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalInfo {
    pub ts: u64,
    pub sig: i32,
    /// `si_code`: 0 kill(2), 128 the kernel, ...
    pub code: i32,
    pub sender: ProcessKey,
    pub sender_comm: String,
    /// What the kernel did with it: only a delivered signal can have killed.
    #[serde(default = "delivered", skip_serializing_if = "is_delivered")]
    pub result: SignalResult,
    /// The sending thread, when the trace says.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sender_tid: u32,
    /// It was the target's parent-death signal, sent by an exiting thread: the kernel's
    /// doing as a parent thread exits, not a deliberate kill.
    #[serde(default, skip_serializing_if = "is_false")]
    pub parent_death: bool,
    /// With `parent_death`: the sender's whole process was exiting (not one thread of it).
    #[serde(default, skip_serializing_if = "is_false")]
    pub sender_group_exiting: bool,
}

fn delivered() -> SignalResult {
    SignalResult::Delivered
}

fn is_delivered(result: &SignalResult) -> bool {
    *result == SignalResult::Delivered
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

fn is_false(value: &bool) -> bool {
    !*value
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Process {
    #[serde(flatten)]
    pub key: ProcessKey,
    /// Current parent.
    pub ppid: u32,
    /// The parent that created it (for processes from the snapshot: the parent they had then).
    pub original_ppid: u32,
    pub comm: String,
    pub cmdline: Vec<String>,
    /// Allowlisted environment variables, as of its last exec (inherited across fork).
    #[serde(skip_serializing_if = "Environment::is_empty")]
    pub env: Environment,
    pub title_source: TitleSource,
    /// The program it runs: the path of its last exec, inherited across fork.
    pub filename: Option<String>,
    pub uid: u32,
    pub pgid: u32,
    pub sid: u32,
    pub cgroup_id: Option<u64>,
    pub origin: Origin,
    pub kernel_thread: bool,
    pub execs: u32,
    pub exit: Option<ExitInfo>,
    pub orphaned: Option<Orphaning>,
    /// The latest terminating signals generated for it, oldest first.
    pub signals: Vec<SignalInfo>,
    /// Its parent-death signal (`PR_SET_PDEATHSIG`) when it last forked; 0 for none or unseen.
    #[serde(skip_serializing_if = "no_signal")]
    pub pdeath_signal: i32,
    /// What the tracer read from its interpreter since its last exec, if it is Python.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interpreter: Option<InterpreterRead>,
    /// Role, identity and daemonic verdict, kept up to date by the analysis.
    pub class: Classification,
    #[serde(skip)]
    links: Links,
}

fn no_signal(value: &i32) -> bool {
    *value == 0
}

/// The model's bookkeeping for a process: where it sits in the model, not facts about it.
#[derive(Clone, Debug, Default)]
struct Links {
    /// Lineage link to the creating parent's record, while the model holds it.
    lineage_parent: Option<ProcessIndex>,
    /// Retained processes whose lineage parent this is; a tombstone is kept while non-zero.
    lineage_refs: u32,
    /// Position in the current parent's children list, for constant-time removal: PID 1 of
    /// a busy host can have thousands of children.
    child_slot: usize,
    /// The start time came from `/proc`, in clock ticks: until a kernel event gives the exact
    /// nanoseconds, identities can only be compared at tick precision. Kept here, in the
    /// struct's padding, rather than as a fact about the process: it is how the model knows
    /// the start time, not part of it.
    start_in_ticks: bool,
}

/// Two processes with the same facts are equal wherever the model stores them.
impl PartialEq for Links {
    fn eq(&self, _other: &Links) -> bool {
        true
    }
}

impl Process {
    pub fn is_alive(&self) -> bool {
        self.exit.is_none()
    }

    /// This process as a snapshot line at `ts`: how a trace that starts now (an export, a
    /// rotated file) lists what was already alive.
    pub fn snapshot(&self, ts: u64) -> Snapshot {
        Snapshot {
            ts,
            pid: self.key.pid,
            start_time: self.key.start_time,
            ppid: self.ppid,
            comm: self.comm.clone(),
            cmdline: self.cmdline.clone(),
            cmdline_truncated: false,
            uid: self.uid,
            pgid: self.pgid,
            sid: self.sid,
            kernel_thread: self.kernel_thread,
            env: self.env.clone(),
        }
    }

    /// The full title: command line if it has one (setproctitle titles live there), else comm.
    pub fn title(&self) -> String {
        if self.cmdline.is_empty() {
            format!("[{}]", self.comm)
        } else {
            self.cmdline.join(" ")
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    pub events: u64,
    pub lost: LostCounts,
    /// Processes first seen after their creation.
    pub inferred: u64,
    /// Processes whose exit event was never seen.
    pub vanished: u64,
    /// Events about a process older than the one now holding its pid (ignored).
    pub stale: u64,
    /// Times an event showed a parent other than the one the model had.
    pub parent_resyncs: u64,
    /// Events that cannot describe a real process (pid 0, a process its own parent): only a
    /// damaged or crafted trace has them.
    pub rejected: u64,
    pub reparents: u64,
}

/// One process as a comparable, serialisable row of [`Model::view`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessView {
    #[serde(flatten)]
    pub process: Process,
    /// pid and start time of each lineage ancestor the model still holds, nearest first.
    pub lineage: Vec<ProcessKey>,
}

/// Clone: replay keeps copies as checkpoints to scrub through time.
#[derive(Clone, Debug)]
pub struct Model {
    slots: Vec<Option<Process>>,
    free: Vec<ProcessIndex>,
    /// The live process holding each pid.
    by_pid: FxHashMap<u32, ProcessIndex>,
    /// Live processes by current parent pid.
    children: FxHashMap<u32, Vec<ProcessIndex>>,
    /// Identities that exited lately, oldest first.
    recent_exits: VecDeque<ProcessKey>,
    recent_exit_set: FxHashSet<ProcessKey>,
    /// Nanoseconds per clock tick, the precision of `/proc` start times.
    tick_ns: u64,
    now: u64,
    pub stats: ModelStats,
}

impl Model {
    /// `tick_ns`: nanoseconds per `/proc` clock tick (10 ms at the usual USER_HZ of 100).
    pub fn new(tick_ns: u64) -> Model {
        Model {
            slots: Vec::new(),
            free: Vec::new(),
            by_pid: FxHashMap::default(),
            children: FxHashMap::default(),
            recent_exits: VecDeque::new(),
            recent_exit_set: FxHashSet::default(),
            tick_ns: tick_ns.max(1),
            now: 0,
            stats: ModelStats::default(),
        }
    }

    /// The latest event time seen (ns since boot).
    pub fn now(&self) -> u64 {
        self.now
    }

    pub fn get(&self, index: ProcessIndex) -> &Process {
        self.slots[index]
            .as_ref()
            .expect("index of a retained process")
    }

    fn get_mut(&mut self, index: ProcessIndex) -> &mut Process {
        self.slots[index]
            .as_mut()
            .expect("index of a retained process")
    }

    /// The live process with this pid.
    pub fn live(&self, pid: u32) -> Option<&Process> {
        self.by_pid.get(&pid).map(|&i| self.get(i))
    }

    pub fn live_index(&self, pid: u32) -> Option<ProcessIndex> {
        self.by_pid.get(&pid).copied()
    }

    /// Live processes whose current parent is `pid`.
    pub fn children_of(&self, pid: u32) -> &[ProcessIndex] {
        self.children.get(&pid).map_or(&[], Vec::as_slice)
    }

    /// The live children of `pid` that `keep` accepts, by pid: the order trees are shown in.
    pub fn children_by_pid(
        &self,
        pid: u32,
        keep: impl Fn(ProcessIndex) -> bool,
    ) -> Vec<ProcessIndex> {
        let mut children: Vec<ProcessIndex> = self
            .children_of(pid)
            .iter()
            .copied()
            .filter(|&c| keep(c))
            .collect();
        children.sort_by_key(|&c| self.get(c).key.pid);
        children
    }

    pub fn live_count(&self) -> usize {
        self.by_pid.len()
    }

    /// Records what the analysis concluded about a process.
    pub fn set_class(&mut self, index: ProcessIndex, class: Classification) {
        self.get_mut(index).class = class;
    }

    /// The lineage parent: the process that created this one, while the model holds it.
    pub fn creator(&self, index: ProcessIndex) -> Option<ProcessIndex> {
        self.get(index).links.lineage_parent
    }

    /// Live processes the analysis found daemonic.
    pub fn daemonic_count(&self) -> usize {
        self.by_pid
            .values()
            .filter(|&&i| self.get(i).class.is_daemonic())
            .count()
    }

    /// Live processes whose parent died while they lived.
    pub fn orphan_count(&self) -> usize {
        self.by_pid
            .values()
            .filter(|&&i| self.get(i).orphaned.is_some())
            .count()
    }

    pub fn retained_count(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn processes(&self) -> impl Iterator<Item = (ProcessIndex, &Process)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, slot)| slot.as_ref().map(|p| (i, p)))
    }

    /// Live processes whose parent is not a live process of the model (PID 1, kthreadd, and
    /// processes whose parent the model never saw), by pid.
    pub fn roots(&self) -> Vec<ProcessIndex> {
        let mut roots: Vec<ProcessIndex> = self
            .by_pid
            .values()
            .copied()
            .filter(|&i| {
                let process = self.get(i);
                process.ppid == 0 || !self.by_pid.contains_key(&process.ppid)
            })
            .collect();
        roots.sort_by_key(|&i| self.get(i).key.pid);
        roots
    }

    /// Ancestors by lineage (who created whom), nearest first, as far as the model holds them.
    pub fn lineage(&self, index: ProcessIndex) -> impl Iterator<Item = (ProcessIndex, &Process)> {
        let mut next = self.get(index).links.lineage_parent;
        std::iter::from_fn(move || {
            let current = next?;
            let process = self.get(current);
            next = process.links.lineage_parent;
            Some((current, process))
        })
        // Lineage is acyclic by construction; the bound keeps a bug from becoming a hang.
        .take(self.slots.len())
    }

    /// Whether `held` started at `start`. Two kernel times must be equal: pid reuse within
    /// one clock tick (after a lost exit) is two processes. A `/proc` time on either side
    /// says only which tick it started in.
    fn same_start(&self, held: &Process, start: u64, start_in_ticks: bool) -> bool {
        if held.links.start_in_ticks || start_in_ticks {
            held.key.start_time / self.tick_ns == start / self.tick_ns
        } else {
            held.key.start_time == start
        }
    }

    /// The live process with this identity, `key` being exact (from a kernel event, or the
    /// model itself).
    pub fn find(&self, key: ProcessKey) -> Option<ProcessIndex> {
        self.find_with(key, false)
    }

    fn find_with(&self, key: ProcessKey, start_in_ticks: bool) -> Option<ProcessIndex> {
        let index = *self.by_pid.get(&key.pid)?;
        self.same_start(self.get(index), key.start_time, start_in_ticks)
            .then_some(index)
    }

    /// Records the exact start time a kernel event gave for a process the model may have
    /// known only to the tick.
    fn refine_start(&mut self, index: ProcessIndex, start_time: u64) {
        let process = self.get_mut(index);
        process.key.start_time = start_time;
        process.links.start_in_ticks = false;
    }

    /// Makes room for a process starting at `key`: if an older process still holds its pid,
    /// that one's exit was lost. Returns false when the holder is newer: the event is stale.
    fn claim_pid(&mut self, key: ProcessKey) -> bool {
        if self.recent_exit_set.contains(&key) {
            self.stats.stale += 1;
            return false;
        }
        let Some(&holder) = self.by_pid.get(&key.pid) else {
            return true;
        };
        if self.get(holder).key.start_time > key.start_time {
            self.stats.stale += 1;
            return false;
        }
        self.stats.vanished += 1;
        // Its children were reparented by an exit the model never saw, to a parent it cannot
        // know: they wait, parent unknown (0), for their next event to say where they are.
        // Only those that started before the new holder: one that started after it (seen
        // before its parent, as out-of-order events and snapshots can) is the new holder's.
        let theirs: Vec<ProcessIndex> = self
            .children_of(key.pid)
            .iter()
            .copied()
            .filter(|&c| self.get(c).key.start_time < key.start_time)
            .collect();
        for child in theirs {
            self.link_lineage(child, holder);
            self.set_parent(child, UNKNOWN_PARENT);
        }
        let ts = self.now;
        self.retire(
            holder,
            ExitInfo {
                ts,
                exit_code: None,
                signal: None,
                core_dumped: false,
                observed: false,
                oom_killed: false,
                memory_cgroup: None,
            },
        );
        true
    }

    fn insert(&mut self, process: Process) -> ProcessIndex {
        let (pid, ppid) = (process.key.pid, process.ppid);
        self.detach_predecessors_children(process.key, process.links.start_in_ticks);
        let parent = process.links.lineage_parent;
        let index = match self.free.pop() {
            Some(index) => {
                self.slots[index] = Some(process);
                index
            }
            None => {
                self.slots.push(Some(process));
                self.slots.len() - 1
            }
        };
        if let Some(parent) = parent {
            self.get_mut(parent).links.lineage_refs += 1;
        }
        self.by_pid.insert(pid, index);
        self.link_child(ppid, index);
        index
    }

    /// Records `parent` as the creator of `child`, for a child whose lineage was unknown when
    /// it entered the model (from the snapshot, or inferred). Refused where it would make a
    /// process its own ancestor, which only a damaged trace can ask for.
    fn link_lineage(&mut self, child: ProcessIndex, parent: ProcessIndex) {
        if self.get(child).links.lineage_parent.is_some()
            || child == parent
            || self.lineage(parent).any(|(ancestor, _)| ancestor == child)
        {
            return;
        }
        self.get_mut(child).links.lineage_parent = Some(parent);
        self.get_mut(parent).links.lineage_refs += 1;
    }

    /// Children listed under `key.pid` that started before `key` belong to an earlier holder of
    /// that pid whose exit the model did not see: they wait, parent unknown, for their next
    /// event. Children that started later (listed before their parent, as a snapshot may
    /// list them) stay.
    fn detach_predecessors_children(&mut self, key: ProcessKey, start_in_ticks: bool) {
        let Some(listed) = self.children.get(&key.pid) else {
            return;
        };
        let stale: Vec<ProcessIndex> = listed
            .iter()
            .copied()
            .filter(|&c| {
                let child = self.get(c);
                child.key.start_time < key.start_time
                    && !self.same_start(child, key.start_time, start_in_ticks)
            })
            .collect();
        for child in stale {
            self.set_parent(child, UNKNOWN_PARENT);
        }
    }

    /// Lists `index` under `ppid` (without changing its `ppid` field).
    fn link_child(&mut self, ppid: u32, index: ProcessIndex) {
        let siblings = self.children.entry(ppid).or_default();
        let slot = siblings.len();
        siblings.push(index);
        self.get_mut(index).links.child_slot = slot;
    }

    fn unlink_child(&mut self, ppid: u32, index: ProcessIndex) {
        let slot = self.get(index).links.child_slot;
        let Some(siblings) = self.children.get_mut(&ppid) else {
            return;
        };
        if siblings.get(slot) != Some(&index) {
            return;
        }
        siblings.swap_remove(slot);
        let moved = siblings.get(slot).copied();
        if siblings.is_empty() {
            self.children.remove(&ppid);
        }
        if let Some(moved) = moved {
            self.get_mut(moved).links.child_slot = slot;
        }
    }

    fn set_parent(&mut self, index: ProcessIndex, new_ppid: u32) {
        let old_ppid = self.get(index).ppid;
        if old_ppid == new_ppid {
            return;
        }
        self.unlink_child(old_ppid, index);
        self.link_child(new_ppid, index);
        self.get_mut(index).ppid = new_ppid;
    }

    /// Keeps the model's parent in step with the kernel's, which fork, exec and exit events
    /// report. Not back to a parent whose exit orphaned the process: the kernel reparents
    /// children only at the end of the exit, after the exit probe, so an exec in between
    /// still reports the dying parent.
    fn resync_parent(&mut self, index: ProcessIndex, ppid: u32) {
        let process = self.get(index);
        let stale = process
            .orphaned
            .as_ref()
            .is_some_and(|o| o.parent.pid == ppid);
        if process.ppid != ppid && !stale && ppid != process.key.pid {
            self.stats.parent_resyncs += 1;
            self.set_parent(index, ppid);
        }
    }

    /// Marks a process exited, frees its pid, and collects it unless its lineage is needed.
    fn retire(&mut self, index: ProcessIndex, exit: ExitInfo) {
        let (key, ppid) = {
            let process = self.get_mut(index);
            process.exit = Some(exit);
            (process.key, process.ppid)
        };
        let pid = key.pid;
        if self.recent_exit_set.insert(key) {
            self.recent_exits.push_back(key);
            if self.recent_exits.len() > RECENT_EXITS
                && let Some(oldest) = self.recent_exits.pop_front()
            {
                self.recent_exit_set.remove(&oldest);
            }
        }
        if self.by_pid.get(&pid) == Some(&index) {
            self.by_pid.remove(&pid);
        }
        self.unlink_child(ppid, index);
        self.collect(index);
    }

    /// Frees exited processes nobody's lineage needs, walking up the lineage.
    fn collect(&mut self, mut index: ProcessIndex) {
        loop {
            let process = self.get(index);
            if process.is_alive() || process.links.lineage_refs > 0 {
                return;
            }
            let parent = process.links.lineage_parent;
            self.slots[index] = None;
            self.free.push(index);
            let Some(parent) = parent else { return };
            self.get_mut(parent).links.lineage_refs -= 1;
            index = parent;
        }
    }

    /// A process seen for the first time in an event other than its creation.
    fn infer(&mut self, key: ProcessKey, ppid: u32, comm: &str) -> Option<ProcessIndex> {
        if let Some(index) = self.find(key) {
            self.refine_start(index, key.start_time);
            return Some(index);
        }
        if !self.claim_pid(key) {
            return None;
        }
        self.stats.inferred += 1;
        let lineage_parent = self.live_index(ppid);
        Some(self.insert(Process {
            key,
            ppid,
            original_ppid: ppid,
            comm: comm.to_owned(),
            cmdline: Vec::new(),
            env: Environment::new(),
            title_source: TitleSource::Snapshot,
            filename: None,
            uid: 0,
            pgid: 0,
            sid: 0,
            cgroup_id: None,
            origin: Origin::Inferred,
            kernel_thread: ppid == KTHREADD,
            execs: 0,
            exit: None,
            orphaned: None,
            signals: Vec::new(),
            pdeath_signal: 0,
            interpreter: None,
            class: Classification::default(),
            links: Links {
                lineage_parent,
                ..Links::default()
            },
        }))
    }

    /// Applies one event. Events the model derives from it (reparents) are appended to
    /// `derived`, in order.
    pub fn apply(&mut self, event: &Event, derived: &mut Vec<Event>) {
        self.stats.events += 1;
        self.now = self.now.max(event.ts());
        if !Self::plausible(event) {
            self.stats.rejected += 1;
            return;
        }
        match event {
            Event::Snapshot(e) => self.on_snapshot(e),
            Event::ProcessStart(e) => self.on_process_start(e, derived),
            Event::Exec(e) => self.on_exec(e),
            Event::Exit(e) => self.on_exit(e, derived),
            Event::Rename(e) => self.on_rename(e),
            Event::Signal(e) => self.on_signal(e),
            Event::Reparent(e) => self.on_reparent(e),
            Event::Lost(e) => self.stats.lost.add(&e.by_kind),
            Event::Interpreter(e) => self.on_interpreter(e),
            // The analysis's output, derived again on replay.
            Event::Finding(_) => {}
        }
    }

    fn plausible(event: &Event) -> bool {
        let pid = event.key().pid;
        let ppid = match event {
            Event::Lost(_) | Event::Finding(_) => return true,
            Event::Snapshot(e) => e.ppid,
            Event::ProcessStart(e) => e.ppid,
            Event::Exec(e) => e.ppid,
            Event::Exit(e) => e.ppid,
            Event::Reparent(e) => e.new_ppid,
            Event::Rename(_) | Event::Signal(_) | Event::Interpreter(_) => return pid != 0,
        };
        pid != 0 && ppid != pid
    }

    fn on_snapshot(&mut self, e: &Snapshot) {
        let key = ProcessKey {
            pid: e.pid,
            start_time: e.start_time,
        };
        if let Some(index) = self.find_with(key, true) {
            self.resync_parent(index, e.ppid);
            let process = self.get_mut(index);
            process.comm.clone_from(&e.comm);
            process.cmdline.clone_from(&e.cmdline);
            process.env.clone_from(&e.env);
            return;
        }
        if !self.claim_pid(key) {
            return;
        }
        self.insert(Process {
            key,
            ppid: e.ppid,
            original_ppid: e.ppid,
            comm: e.comm.clone(),
            cmdline: e.cmdline.clone(),
            env: e.env.clone(),
            title_source: TitleSource::Snapshot,
            filename: None,
            uid: e.uid,
            pgid: e.pgid,
            sid: e.sid,
            cgroup_id: None,
            origin: Origin::Snapshot,
            kernel_thread: e.kernel_thread,
            execs: 0,
            exit: None,
            orphaned: None,
            signals: Vec::new(),
            pdeath_signal: 0,
            interpreter: None,
            class: Classification::default(),
            links: Links {
                start_in_ticks: true,
                ..Links::default()
            },
        });
    }

    fn on_process_start(&mut self, e: &ProcessStart, derived: &mut Vec<Event>) {
        let key = ProcessKey {
            pid: e.pid,
            start_time: e.start_time,
        };
        let parent_key = ProcessKey {
            pid: e.ppid,
            start_time: e.parent_start_time,
        };
        if let Some(index) = self.find(key) {
            // Also in the snapshot (the fork raced the bootstrap). The snapshot may have read
            // the process after a later reparent; the fork says who created it, and the events
            // that follow move it on again as the kernel did.
            self.set_parent(index, e.ppid);
            self.refine_start(index, e.start_time);
            let process = self.get_mut(index);
            process.original_ppid = e.ppid;
            process.cgroup_id = Some(e.cgroup_id);
            if let Some(parent) = self.find(parent_key) {
                self.link_lineage(index, parent);
            }
            return;
        }
        if !self.claim_pid(key) {
            return;
        }
        // Only now: claiming the pid may have retired a process the parent key matched.
        let parent = self.find(parent_key);
        // A child starts as a copy of the process that forked it (the parent, unless
        // CLONE_PARENT): same argument memory and program.
        let caller = if e.caller_pid == e.ppid {
            parent
        } else {
            self.live_index(e.caller_pid)
        };
        if let Some(caller) = caller {
            self.get_mut(caller).pdeath_signal = e.caller_pdeath_signal;
        }
        let (cmdline, env, filename) = caller
            .map(|c| {
                let caller = self.get(c);
                (
                    caller.cmdline.clone(),
                    caller.env.clone(),
                    caller.filename.clone(),
                )
            })
            .unwrap_or_default();
        let index = self.insert(Process {
            key,
            ppid: e.ppid,
            original_ppid: e.ppid,
            comm: e.comm.clone(),
            cmdline,
            env,
            title_source: TitleSource::Fork,
            filename,
            uid: e.uid,
            pgid: e.pgid,
            sid: e.sid,
            cgroup_id: Some(e.cgroup_id),
            origin: Origin::Fork,
            kernel_thread: e.ppid == KTHREADD,
            execs: 0,
            exit: None,
            orphaned: None,
            signals: Vec::new(),
            pdeath_signal: 0,
            interpreter: None,
            class: Classification::default(),
            links: Links {
                lineage_parent: parent,
                ..Links::default()
            },
        });
        if parent.is_none() && e.caller_pid != e.ppid && self.recent_exit_set.contains(&parent_key)
        {
            self.orphan_born_under_dead_parent(index, parent_key, caller, e.ts, derived);
        }
    }

    /// A `CLONE_PARENT` child made while its parent (the caller's parent) was exiting: the
    /// kernel linked it under the dying parent, whose exit, already applied here, then
    /// reparented it with the caller. It is orphaned as the caller was, by the same exit.
    fn orphan_born_under_dead_parent(
        &mut self,
        index: ProcessIndex,
        dead_parent: ProcessKey,
        caller: Option<ProcessIndex>,
        ts: u64,
        derived: &mut Vec<Event>,
    ) {
        let orphaned_with_caller = caller.and_then(|c| {
            let caller = self.get(c);
            let orphaning = caller
                .orphaned
                .as_ref()
                .filter(|o| o.parent == dead_parent)?;
            let tombstone = caller
                .links
                .lineage_parent
                .filter(|&p| self.get(p).key == dead_parent);
            Some((orphaning.new_ppid, orphaning.parent_comm.clone(), tombstone))
        });
        // Without the caller's orphaning the adopter is unknown: the next event says.
        let (new_ppid, parent_comm, tombstone) =
            orphaned_with_caller.unwrap_or((UNKNOWN_PARENT, String::new(), None));
        if let Some(tombstone) = tombstone {
            self.link_lineage(index, tombstone);
        }
        self.set_parent(index, new_ppid);
        let process = self.get_mut(index);
        process.orphaned = Some(Orphaning {
            ts,
            parent: dead_parent,
            parent_comm,
            new_ppid,
        });
        let key = process.key;
        self.stats.reparents += 1;
        derived.push(Event::Reparent(Reparent {
            ts,
            pid: key.pid,
            start_time: key.start_time,
            old_ppid: dead_parent.pid,
            new_ppid,
            source: ReparentSource::Exit,
        }));
    }

    fn on_exec(&mut self, e: &Exec) {
        let key = ProcessKey {
            pid: e.pid,
            start_time: e.start_time,
        };
        let Some(index) = self.infer(key, e.ppid, &e.comm) else {
            return;
        };
        self.resync_parent(index, e.ppid);
        let process = self.get_mut(index);
        process.comm.clone_from(&e.comm);
        process.cmdline.clone_from(&e.cmdline);
        process.env.clone_from(&e.env);
        process.title_source = TitleSource::Exec;
        process.filename = Some(e.filename.clone());
        process.uid = e.uid;
        process.pgid = e.pgid;
        process.sid = e.sid;
        process.kernel_thread = false;
        process.execs += 1;
        // A new program: what its interpreter said is void.
        process.interpreter = None;
    }

    fn on_interpreter(&mut self, e: &InterpreterRead) {
        let key = ProcessKey {
            pid: e.pid,
            start_time: e.start_time,
        };
        if let Some(index) = self.find(key)
            && self.get(index).execs == e.execs
        {
            self.get_mut(index).interpreter = Some(e.clone());
        }
    }

    fn on_rename(&mut self, e: &Rename) {
        let key = ProcessKey {
            pid: e.pid,
            start_time: e.start_time,
        };
        let Some(index) = self.find(key) else {
            return; // renames carry no parent: a process first seen here waits for better news
        };
        let process = self.get_mut(index);
        process.comm.clone_from(&e.comm);
        process.pgid = e.pgid;
        process.sid = e.sid;
        if let Some(cmdline) = &e.cmdline {
            process.cmdline.clone_from(cmdline);
            process.title_source = TitleSource::Rename;
        }
    }

    fn on_signal(&mut self, e: &Signal) {
        let key = ProcessKey {
            pid: e.pid,
            start_time: e.start_time,
        };
        if let Some(index) = self.find(key) {
            let signals = &mut self.get_mut(index).signals;
            if signals.len() == SIGNAL_HISTORY {
                signals.remove(0);
            }
            signals.push(SignalInfo {
                ts: e.ts,
                sig: e.sig,
                code: e.code,
                sender: ProcessKey {
                    pid: e.sender_pid,
                    start_time: e.sender_start_time,
                },
                sender_comm: e.sender_comm.clone(),
                result: e.result,
                sender_tid: e.sender_tid,
                parent_death: e.target_pdeath_signal == e.sig && e.sender_exiting,
                sender_group_exiting: e.sender_group_exiting,
            });
        }
    }

    fn on_exit(&mut self, e: &Exit, derived: &mut Vec<Event>) {
        let key = ProcessKey {
            pid: e.pid,
            start_time: e.start_time,
        };
        let Some(index) = self.infer(key, e.ppid, &e.comm) else {
            return;
        };
        // Reparent first: the orphans' lineage must hold this process before it may be
        // collected.
        let reaper = if e.reaper_pid == 0 { 1 } else { e.reaper_pid };
        if reaper != e.pid {
            let orphans = self.children.remove(&e.pid).unwrap_or_default();
            let parent_comm = self.get(index).comm.clone();
            for child in orphans {
                if child == index {
                    continue;
                }
                let child_key = {
                    let process = self.get_mut(child);
                    process.ppid = reaper;
                    process.orphaned = Some(Orphaning {
                        ts: e.ts,
                        parent: key,
                        parent_comm: parent_comm.clone(),
                        new_ppid: reaper,
                    });
                    process.key
                };
                self.link_lineage(child, index);
                self.link_child(reaper, child);
                self.stats.reparents += 1;
                derived.push(Event::Reparent(Reparent {
                    ts: e.ts,
                    pid: child_key.pid,
                    start_time: child_key.start_time,
                    old_ppid: e.pid,
                    new_ppid: reaper,
                    source: ReparentSource::Exit,
                }));
            }
        }
        // Else it was the init of a pid namespace: the kernel kills what is left inside.
        let process = self.get_mut(index);
        process.pgid = e.pgid;
        process.sid = e.sid;
        self.retire(
            index,
            ExitInfo {
                ts: e.ts,
                exit_code: e.exit_code,
                signal: e.signal,
                core_dumped: e.core_dumped,
                observed: !e.inferred,
                oom_killed: e.oom_killed,
                memory_cgroup: e.memory_cgroup.clone(),
            },
        );
    }

    fn on_reparent(&mut self, e: &Reparent) {
        // Reparents from exits are this model's own output; only /proc observations are news.
        if e.source != ReparentSource::Procfs {
            return;
        }
        let key = ProcessKey {
            pid: e.pid,
            start_time: e.start_time,
        };
        if let Some(index) = self.find(key) {
            self.set_parent(index, e.new_ppid);
            // The adopter the model guessed for an orphan was wrong: say who really has it.
            if let Some(orphaning) = self.get_mut(index).orphaned.as_mut()
                && orphaning.new_ppid == e.old_ppid
            {
                orphaning.new_ppid = e.new_ppid;
            }
        }
    }

    fn view_of(&self, index: ProcessIndex) -> ProcessView {
        ProcessView {
            process: self.get(index).clone(),
            lineage: self.lineage(index).map(|(_, a)| a.key).collect(),
        }
    }

    /// Every retained process (live and tombstones) as rows sorted by identity: two models
    /// that saw the same history have equal views.
    pub fn view(&self) -> Vec<ProcessView> {
        let mut rows: Vec<ProcessView> = self.processes().map(|(i, _)| self.view_of(i)).collect();
        rows.sort_by_key(|row| row.process.key);
        rows
    }

    /// The view of one process, live or tombstone.
    pub fn view_process(&self, index: ProcessIndex) -> ProcessView {
        self.view_of(index)
    }
}

#[cfg(test)]
impl Model {
    /// Panics unless every structure of the model agrees with every other.
    fn check_invariants(&self) {
        for (&pid, &index) in &self.by_pid {
            let process = self.slots[index]
                .as_ref()
                .expect("by_pid names a freed slot");
            assert!(process.is_alive() && process.key.pid == pid, "by_pid {pid}");
        }
        for (&ppid, list) in &self.children {
            assert!(!list.is_empty(), "empty children list kept for {ppid}");
            for (slot, &index) in list.iter().enumerate() {
                let process = self.slots[index]
                    .as_ref()
                    .expect("children names a freed slot");
                assert!(process.is_alive(), "dead child listed under {ppid}");
                assert_eq!(process.ppid, ppid);
                assert_eq!(process.links.child_slot, slot);
            }
        }
        let mut refs = vec![0u32; self.slots.len()];
        for (index, process) in self.processes() {
            if process.is_alive() {
                assert_eq!(self.by_pid.get(&process.key.pid), Some(&index));
                let siblings = &self.children[&process.ppid];
                assert_eq!(siblings[process.links.child_slot], index);
            }
            if let Some(parent) = process.links.lineage_parent {
                assert!(self.slots[parent].is_some(), "lineage names a freed slot");
                refs[parent] += 1;
            }
            assert!(
                self.lineage(index).all(|(ancestor, _)| ancestor != index),
                "cycle"
            );
            assert!(self.lineage(index).count() < self.slots.len().max(1));
        }
        for (index, process) in self.processes() {
            assert_eq!(process.links.lineage_refs, refs[index], "refs of {index}");
            assert!(
                process.is_alive() || refs[index] > 0,
                "uncollected tombstone"
            );
        }
        for &free in &self.free {
            assert!(self.slots[free].is_none());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: u64 = 10_000_000;

    use crate::fixtures::key;

    fn snapshot(pid: u32, ppid: u32, start_time: u64, comm: &str) -> Event {
        crate::fixtures::snapshot(1, key(pid, start_time), ppid, comm)
    }

    fn fork(ts: u64, pid: u32, start: u64, parent: ProcessKey) -> Event {
        crate::fixtures::fork(ts, key(pid, start), parent, "worker")
    }

    fn exec(ts: u64, pid: u32, start: u64, ppid: u32, program: &str) -> Event {
        let filename = format!("/bin/{program}");
        crate::fixtures::exec(ts, key(pid, start), ppid, &filename, &[program, "--flag"])
    }

    fn exit(ts: u64, process: ProcessKey, ppid: u32, reaper: u32) -> Event {
        crate::fixtures::exit(ts, process, ppid, (Some(0), None), reaper)
    }

    fn apply_all(model: &mut Model, events: &[Event]) -> Vec<Event> {
        let mut derived = Vec::new();
        for event in events {
            model.apply(event, &mut derived);
        }
        derived
    }

    #[test]
    fn a_new_pid_holder_seen_after_its_child_keeps_that_child() {
        const S: u64 = 1_000_000_000;
        let mut model = Model::new(TICK);
        let init = key(1, 0);
        let (old, new) = (key(300, S), key(300, 5 * S));
        apply_all(
            &mut model,
            &[
                snapshot(1, 0, 0, "init"),
                fork(S, 300, S, init),
                // The old holder's child; then the old holder's exit is lost.
                fork(2 * S, 400, 2 * S, old),
                // The new holder's child is seen before the new holder itself.
                fork(6 * S, 401, 6 * S, new),
                exec(7 * S, 300, 5 * S, 1, "worker"),
            ],
        );
        model.check_invariants();
        let ppid_of = |pid: u32| model.live(pid).unwrap().ppid;
        assert_eq!(ppid_of(401), 300, "the new holder's child stays with it");
        assert_eq!(
            ppid_of(400),
            UNKNOWN_PARENT,
            "the old holder's waits for news"
        );
        let lineage: Vec<u64> = model
            .lineage(model.live_index(400).unwrap())
            .map(|(_, p)| p.key.start_time)
            .collect();
        assert_eq!(lineage.first(), Some(&S), "its lineage is the old holder");
    }

    #[test]
    fn a_clone_parent_child_made_while_its_parent_exits_is_orphaned_with_the_caller() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        let parent = key(300, 30 * TICK);
        let caller = key(301, 31 * TICK);
        apply_all(
            &mut model,
            &[
                fork(30 * TICK, parent.pid, parent.start_time, shell),
                fork(31 * TICK, caller.pid, caller.start_time, parent),
                // The parent's exit probe fires before the kernel reparents its children; a
                // CLONE_PARENT fork in between is linked under it and reported after its exit.
                exit(40 * TICK, parent, 100, 1),
            ],
        );
        let Event::ProcessStart(mut start) = fork(41 * TICK, 302, 40 * TICK, parent) else {
            unreachable!()
        };
        start.caller_pid = caller.pid;
        let derived = apply_all(&mut model, &[Event::ProcessStart(start)]);
        model.check_invariants();
        let child = model.live(302).unwrap();
        assert_eq!(child.ppid, 1, "adopted as its caller was");
        let orphaning = child
            .orphaned
            .as_ref()
            .expect("orphaned by the parent's exit");
        assert_eq!(orphaning.parent, parent);
        assert_eq!(orphaning.new_ppid, 1);
        assert!(
            matches!(&derived[..], [Event::Reparent(r)] if r.pid == 302 && r.old_ppid == 300),
            "the orphaning is announced: {derived:?}"
        );
        let lineage: Vec<ProcessKey> = model
            .lineage(model.live_index(302).unwrap())
            .map(|(_, p)| p.key)
            .collect();
        assert_eq!(
            lineage.first(),
            Some(&parent),
            "its lineage keeps the dead parent"
        );
        assert!(
            model.children_of(300).is_empty(),
            "nothing is left under the dead pid"
        );
    }

    /// init (1) → shell (100), as found at start.
    fn host() -> Model {
        let mut model = Model::new(TICK);
        apply_all(
            &mut model,
            &[
                snapshot(100, 1, 5 * TICK, "bash"),
                snapshot(1, 0, 0, "init"),
            ],
        );
        model
    }

    #[test]
    fn snapshot_order_does_not_matter_for_parents() {
        let model = host();
        assert_eq!(model.roots().len(), 1);
        assert_eq!(model.get(model.roots()[0]).key.pid, 1);
        assert_eq!(model.children_of(1).len(), 1);
    }

    #[test]
    fn fork_exec_exit_and_inherited_title() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        apply_all(&mut model, &[fork(10, 200, 9 * TICK + 3, shell)]);
        let child = model.live(200).unwrap();
        assert_eq!(
            child.cmdline,
            ["bash"],
            "a fork inherits the parent's arguments"
        );
        assert_eq!(child.origin, Origin::Fork);

        apply_all(&mut model, &[exec(11, 200, 9 * TICK + 3, 100, "sleep")]);
        assert_eq!(model.live(200).unwrap().title(), "sleep --flag");
        assert_eq!(model.live(200).unwrap().execs, 1);

        let derived = apply_all(&mut model, &[exit(12, key(200, 9 * TICK + 3), 100, 1)]);
        assert!(derived.is_empty());
        assert!(model.live(200).is_none());
        assert_eq!(
            model.retained_count(),
            2,
            "a childless exited process is collected"
        );
    }

    #[test]
    fn pid_reuse_never_merges_two_processes() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        let first = key(300, 20 * TICK + 1);
        let second = key(300, 90 * TICK + 7);
        // The first 300 forks a child, exits (its exit is lost), and 300 comes back.
        apply_all(
            &mut model,
            &[
                fork(20, first.pid, first.start_time, shell),
                fork(21, 301, 21 * TICK, first),
                fork(90, second.pid, second.start_time, shell),
            ],
        );
        let holder = model.live(300).unwrap();
        assert_eq!(holder.key, second);
        assert_eq!(model.stats.vanished, 1);
        // The old 300 is a tombstone: its child still lives and names it in its lineage.
        let child = model.live_index(301).unwrap();
        let lineage: Vec<ProcessKey> = model.lineage(child).map(|(_, p)| p.key).collect();
        assert_eq!(lineage, [first, shell]);
        assert!(
            model
                .get(model.lineage(child).next().unwrap().0)
                .exit
                .is_some()
        );

        // An event for the old identity is stale and changes nothing.
        apply_all(
            &mut model,
            &[exec(95, first.pid, first.start_time, 100, "ghost")],
        );
        assert_eq!(model.live(300).unwrap().comm, "worker");
        assert_eq!(model.stats.stale, 1);

        // The old 300's child was reparented by the lost exit: its parent is unknown until its
        // next event, and the new 300's exit does not touch it.
        assert_eq!(model.live(301).unwrap().ppid, UNKNOWN_PARENT);
        let derived = apply_all(&mut model, &[exit(96, second, 100, 1)]);
        assert!(derived.is_empty());
        apply_all(&mut model, &[exec(97, 301, 21 * TICK, 1, "sleep")]);
        assert_eq!(model.live(301).unwrap().ppid, 1);
        let waiting = model.children_of(UNKNOWN_PARENT);
        assert!(waiting.iter().all(|&i| model.get(i).key.pid != 301));
    }

    #[test]
    fn snapshot_start_times_match_kernel_nanoseconds_at_tick_precision() {
        let mut model = host();
        // The shell's exec arrives with its exact start time.
        apply_all(&mut model, &[exec(30, 100, 5 * TICK + 4_321, 1, "zsh")]);
        let shell = model.live(100).unwrap();
        assert_eq!(shell.comm, "zsh");
        assert_eq!(shell.key.start_time, 5 * TICK + 4_321);
        assert_eq!(model.stats.inferred, 0);
    }

    #[test]
    fn a_procfs_correction_names_the_orphans_real_adopter() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        let middle = key(400, 40 * TICK);
        apply_all(
            &mut model,
            &[
                fork(40, middle.pid, middle.start_time, shell),
                fork(41, 401, 41 * TICK, middle),
                // The probe could not name the reaper: the model guesses init.
                exit(42, middle, 100, 1),
                Event::Reparent(Reparent {
                    ts: 43,
                    pid: 401,
                    start_time: 41 * TICK,
                    old_ppid: 1,
                    new_ppid: 100,
                    source: ReparentSource::Procfs,
                }),
            ],
        );
        let orphan = model.live(401).unwrap();
        assert_eq!(orphan.ppid, 100);
        let orphaning = orphan.orphaned.as_ref().unwrap();
        assert_eq!((orphaning.parent, orphaning.new_ppid), (middle, 100));
    }

    #[test]
    fn pid_reuse_within_one_tick_is_two_processes_when_both_times_are_exact() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        let first = key(300, 20 * TICK + 1_000);
        // The same tick, 2 ms later: the first 300's exit was lost and its pid came back.
        let second = key(300, 20 * TICK + 2_001_000);
        apply_all(
            &mut model,
            &[
                fork(20, first.pid, first.start_time, shell),
                fork(21, second.pid, second.start_time, shell),
            ],
        );
        assert_eq!(model.live(300).unwrap().key, second);
        assert_eq!(model.stats.vanished, 1);
        assert_eq!(model.stats.stale, 0);
        // The old identity is gone for good: an event about it is stale, not the new 300's.
        apply_all(
            &mut model,
            &[exec(22, first.pid, first.start_time, 100, "ghost")],
        );
        assert_eq!(model.live(300).unwrap().comm, "worker");
        assert_eq!(model.live(300).unwrap().execs, 0);
        assert_eq!(model.stats.stale, 1);
        model.check_invariants();
    }

    #[test]
    fn a_snapshot_time_matches_kernel_times_within_its_tick_until_refined() {
        let mut model = host();
        apply_all(&mut model, &[snapshot(300, 100, 20 * TICK, "python3")]);
        // A kernel event's nanoseconds fall within the tick /proc gave: the same process.
        let exact = 20 * TICK + 4_321;
        let index = model.find(key(300, exact)).expect("within the tick");
        apply_all(&mut model, &[exec(21, 300, exact, 100, "celery")]);
        assert_eq!(model.live_index(300), Some(index));
        assert_eq!(model.live(300).unwrap().key.start_time, exact);
        assert_eq!((model.stats.inferred, model.stats.vanished), (0, 0));

        // Exact now: another time in that tick is another process...
        assert_eq!(model.find(key(300, exact + 1)), None);
        // ... but a /proc time still matches it, at tick precision: a later scan is no news.
        apply_all(&mut model, &[snapshot(300, 100, 20 * TICK, "python3")]);
        assert_eq!(model.live_index(300), Some(index));
        assert_eq!(model.live(300).unwrap().key.start_time, exact);
        assert_eq!((model.stats.vanished, model.stats.stale), (0, 0));

        // A fork that raced the scan finds the /proc-timed process within its tick.
        apply_all(&mut model, &[snapshot(400, 100, 30 * TICK, "python3")]);
        apply_all(
            &mut model,
            &[fork(31, 400, 30 * TICK + 7, key(100, 5 * TICK))],
        );
        assert_eq!(model.stats.vanished, 0, "the fork matched the snapshot");
        assert_eq!(model.live(400).unwrap().key.start_time, 30 * TICK + 7);
        model.check_invariants();
    }

    #[test]
    fn orphans_are_reparented_and_keep_their_lineage_until_collected() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        let middle = key(400, 40 * TICK);
        let grandchild = key(401, 41 * TICK);
        apply_all(
            &mut model,
            &[
                fork(40, middle.pid, middle.start_time, shell),
                fork(41, grandchild.pid, grandchild.start_time, middle),
            ],
        );
        // The middle process exits; a subreaper (the shell) adopts the grandchild.
        let derived = apply_all(&mut model, &[exit(42, middle, 100, 100)]);
        assert_eq!(
            derived,
            [Event::Reparent(Reparent {
                ts: 42,
                pid: 401,
                start_time: 41 * TICK,
                old_ppid: 400,
                new_ppid: 100,
                source: ReparentSource::Exit,
            })]
        );
        let orphan = model.live(401).unwrap();
        assert_eq!((orphan.ppid, orphan.original_ppid), (100, 400));
        let orphaning = orphan.orphaned.as_ref().unwrap();
        assert_eq!((orphaning.parent, orphaning.new_ppid), (middle, 100));
        assert_eq!(model.children_of(100).len(), 1);
        assert_eq!(
            model.retained_count(),
            4,
            "the exited middle process is a tombstone"
        );

        // When the orphan exits, the tombstone has no live descendant and is collected.
        apply_all(&mut model, &[exit(43, grandchild, 100, 1)]);
        assert_eq!(model.retained_count(), 2);
        assert!(model.processes().all(|(_, p)| p.is_alive()));
    }

    #[test]
    fn tombstone_chains_are_collected_from_the_bottom() {
        let mut model = host();
        let mut parent = key(100, 5 * TICK);
        let mut chain = Vec::new();
        for depth in 0..5u32 {
            let child = key(500 + depth, (50 + depth as u64) * TICK);
            apply_all(
                &mut model,
                &[fork(50 + depth as u64, child.pid, child.start_time, parent)],
            );
            chain.push(child);
            parent = child;
        }
        // Every process but the deepest exits, top first.
        for (i, process) in chain[..4].iter().enumerate() {
            let ppid = if i == 0 { 100 } else { chain[i - 1].pid };
            apply_all(&mut model, &[exit(60 + i as u64, *process, ppid, 1)]);
        }
        let deepest = model.live_index(504).unwrap();
        assert_eq!(
            model.lineage(deepest).count(),
            5,
            "four tombstones and the shell"
        );
        assert_eq!(model.live(504).unwrap().ppid, 1);
        apply_all(&mut model, &[exit(70, chain[4], 1, 1)]);
        assert_eq!(model.retained_count(), 2, "the whole chain is collected");
    }

    #[test]
    fn a_batch_ingested_out_of_order_gives_the_tree_of_the_ordered_history() {
        use crate::analysis::Analyzer;
        use crate::ingest::NullSink;
        use crate::ingest::Pipeline;
        use crate::roles::Rules;

        let shell = key(100, 5 * TICK);
        let child = key(600, 60 * TICK);
        let grandchild = key(601, 61 * TICK);
        let in_order = [
            fork(60, child.pid, child.start_time, shell),
            exec(61, child.pid, child.start_time, 100, "python3"),
            fork(62, grandchild.pid, grandchild.start_time, child),
            exit(63, child, 100, 1),
        ];
        let mut reference = host();
        let derived = apply_all(&mut reference, &in_order);
        assert_eq!(derived.len(), 1, "the grandchild is orphaned");

        // As the ring may hand them over: the exit first, the fork that started it all last.
        let mut batch = vec![
            in_order[3].clone(),
            in_order[2].clone(),
            in_order[1].clone(),
            in_order[0].clone(),
        ];
        let mut pipeline = Pipeline::new(host(), Analyzer::new(Rules::builtin()), NullSink);
        pipeline.apply_batch(&mut batch).unwrap();
        assert!(batch.is_empty());
        let model = &pipeline.model;
        assert_eq!(model.view(), reference.view());
        assert_eq!(
            (
                model.stats.inferred,
                model.stats.stale,
                model.stats.vanished
            ),
            (0, 0, 0)
        );
        assert_eq!(model.stats.reparents, 1);
        assert_eq!(pipeline.events, 5, "four events and the derived reparent");
        let orphan = model.live(grandchild.pid).unwrap();
        assert_eq!((orphan.ppid, orphan.original_ppid), (1, 600));
        assert_eq!(orphan.orphaned.as_ref().unwrap().parent, child);
        let index = model.live_index(grandchild.pid).unwrap();
        let lineage: Vec<(ProcessKey, String)> = model
            .lineage(index)
            .map(|(_, p)| (p.key, p.comm.clone()))
            .collect();
        assert_eq!(
            lineage,
            [(child, "python3".to_owned()), (shell, "bash".to_owned())]
        );

        // The same batch applied as it arrived is a different, wrong history: the ordering
        // is what the test above relies on.
        let mut unordered = host();
        apply_all(
            &mut unordered,
            &[
                in_order[3].clone(),
                in_order[2].clone(),
                in_order[1].clone(),
                in_order[0].clone(),
            ],
        );
        assert_ne!(unordered.view(), reference.view());
    }

    #[test]
    fn an_event_after_its_process_exited_leaves_no_ghost() {
        // A lost fork: the exit alone creates and retires the process. A fork or exec of that
        // identity arriving later must not bring it back as a live process forever.
        let mut model = host();
        let shell = key(100, 5 * TICK);
        let child = key(700, 70 * TICK);
        apply_all(&mut model, &[exit(72, child, 100, 1)]);
        assert_eq!(model.stats.inferred, 1);
        assert!(model.live(700).is_none());
        apply_all(
            &mut model,
            &[
                fork(70, child.pid, child.start_time, shell),
                exec(71, child.pid, child.start_time, 100, "late"),
            ],
        );
        assert!(model.live(700).is_none());
        assert_eq!(model.stats.stale, 2);
        assert_eq!(model.retained_count(), 2);
    }

    #[test]
    fn events_resync_a_parent_the_model_got_wrong() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        apply_all(&mut model, &[fork(80, 800, 80 * TICK, shell)]);
        // The model missed a reparent; the next event from the process says where it is.
        apply_all(&mut model, &[exec(81, 800, 80 * TICK, 1, "true")]);
        assert_eq!(model.live(800).unwrap().ppid, 1);
        assert_eq!(model.stats.parent_resyncs, 1);
        assert_eq!(model.children_of(1).len(), 2);
        assert!(model.children_of(100).is_empty());
    }

    #[test]
    fn wide_fans_keep_their_children_lists_exact() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        let fan: Vec<ProcessKey> = (0..1000u32)
            .map(|i| key(2000 + i, (200 + i as u64) * TICK))
            .collect();
        for (i, child) in fan.iter().enumerate() {
            apply_all(
                &mut model,
                &[fork(200 + i as u64, child.pid, child.start_time, shell)],
            );
        }
        assert_eq!(model.children_of(100).len(), 1000);
        // Exits in an order that moves entries around inside the list.
        for (i, child) in fan.iter().enumerate().filter(|(i, _)| i % 3 != 1) {
            apply_all(&mut model, &[exit(2000 + i as u64, *child, 100, 1)]);
        }
        let mut left: Vec<u32> = model
            .children_of(100)
            .iter()
            .map(|&c| model.get(c).key.pid)
            .collect();
        left.sort_unstable();
        let expected: Vec<u32> = (0..1000u32)
            .filter(|i| i % 3 == 1)
            .map(|i| 2000 + i)
            .collect();
        assert_eq!(left, expected);
        // The shell dies: every remaining child moves to init in one step.
        let derived = apply_all(&mut model, &[exit(5000, shell, 1, 1)]);
        assert_eq!(derived.len(), expected.len());
        assert!(model.children_of(100).is_empty());
        assert_eq!(model.children_of(1).len(), expected.len());
    }

    #[test]
    fn namespace_init_exit_reparents_nobody() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        let init = key(900, 90 * TICK);
        apply_all(
            &mut model,
            &[
                fork(90, init.pid, init.start_time, shell),
                fork(91, 901, 91 * TICK, init),
            ],
        );
        let derived = apply_all(&mut model, &[exit(92, init, 100, init.pid)]);
        assert!(derived.is_empty());
        assert_eq!(model.live(901).unwrap().ppid, 900);
    }

    #[test]
    fn reparent_lines_from_a_recording_are_recomputed_not_applied() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        apply_all(&mut model, &[fork(80, 800, 80 * TICK, shell)]);
        let recorded = |source| {
            Event::Reparent(Reparent {
                ts: 81,
                pid: 800,
                start_time: 80 * TICK,
                old_ppid: 100,
                new_ppid: 1,
                source,
            })
        };
        apply_all(&mut model, &[recorded(ReparentSource::Exit)]);
        assert_eq!(model.live(800).unwrap().ppid, 100);
        apply_all(&mut model, &[recorded(ReparentSource::Procfs)]);
        assert_eq!(model.live(800).unwrap().ppid, 1);
    }

    /// Arbitrary histories over a tiny pid space (constant pid reuse, start times colliding at
    /// tick precision, impossible events, events out of order): no panic, no hang, and every
    /// structure of the model stays consistent.
    #[test]
    fn random_histories_keep_every_invariant() {
        // MODEL_FUZZ_SEED and MODEL_FUZZ_HISTORIES run other or longer sweeps by hand.
        let setting = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let mut state = setting("MODEL_FUZZ_SEED", 0x9e37_79b9_7f4a_7c15) | 1;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for _history in 0..setting("MODEL_FUZZ_HISTORIES", 40) {
            let mut model = Model::new(TICK);
            let mut derived = Vec::new();
            for step in 0..2_000u64 {
                let ts = step * 1_000 + next(5_000);
                let pid = next(10) as u32;
                let ppid = next(10) as u32;
                let start = next(6) * TICK / 2 + next(3);
                let parent = key(ppid, next(6) * TICK / 2);
                let event = match next(9) {
                    0 => snapshot(pid, ppid, start, "snap"),
                    1 | 2 => fork(ts, pid, start, parent),
                    3 => exec(ts, pid, start, ppid, "prog"),
                    4 | 5 => exit(ts, key(pid, start), ppid, next(10) as u32),
                    6 => crate::fixtures::rename(ts, key(pid, start), "title"),
                    7 => Event::Reparent(Reparent {
                        ts,
                        pid,
                        start_time: start,
                        old_ppid: ppid,
                        new_ppid: next(10) as u32,
                        source: ReparentSource::Procfs,
                    }),
                    _ => crate::fixtures::signal(ts, key(pid, start), key(ppid, 0), 9),
                };
                model.apply(&event, &mut derived);
                model.check_invariants();
                let _ = model.view();
            }
        }
    }

    #[test]
    fn impossible_events_are_rejected() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        // Its own parent: from a crafted trace only. Must not loop or link to itself.
        apply_all(
            &mut model,
            &[
                snapshot(7, 7, 9 * TICK, "loop"),
                exit(20, key(7, 9 * TICK), 7, 1),
            ],
        );
        // pid 0 is the idle task, never a process.
        apply_all(&mut model, &[fork(21, 0, 21 * TICK, shell)]);
        assert_eq!(model.stats.rejected, 3);
        assert_eq!(model.retained_count(), 2);
        model.check_invariants();
    }

    #[test]
    fn a_fork_that_raced_the_scan_takes_the_fork_parent_then_follows_the_events() {
        // The scan read the child after its parent had exited: the snapshot says init.
        let mut model = host();
        let shell = key(100, 5 * TICK);
        let parent = key(300, 30 * TICK);
        let child = key(301, 31 * TICK + 5);
        apply_all(&mut model, &[snapshot(301, 1, 31 * TICK, "child")]);
        // Then the buffered events, in order: the parent's fork, the child's, the parent's exit.
        let derived = apply_all(
            &mut model,
            &[
                fork(30, parent.pid, parent.start_time, shell),
                fork(31, child.pid, child.start_time, parent),
                exit(32, parent, 100, 1),
            ],
        );
        let orphan = model.live(301).unwrap();
        assert_eq!((orphan.ppid, orphan.original_ppid), (1, 300));
        assert_eq!(orphan.orphaned.as_ref().unwrap().parent, parent);
        assert_eq!(derived.len(), 1);
        model.check_invariants();
    }

    #[test]
    fn an_exec_racing_its_parents_exit_does_not_bring_the_dead_parent_back() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        let parent = key(300, 30 * TICK);
        let child = key(301, 31 * TICK);
        apply_all(
            &mut model,
            &[
                fork(30, parent.pid, parent.start_time, shell),
                fork(31, child.pid, child.start_time, parent),
                exit(32, parent, 100, 1),
                // Exec'd after the exit probe, before the kernel reparented it.
                exec(33, child.pid, child.start_time, parent.pid, "sh"),
            ],
        );
        assert_eq!(model.live(301).unwrap().ppid, 1);
        assert_eq!(model.stats.parent_resyncs, 0);
    }

    #[test]
    fn a_clone_parent_child_copies_its_caller_not_its_parent() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        let caller = key(300, 30 * TICK);
        apply_all(
            &mut model,
            &[
                fork(30, caller.pid, caller.start_time, shell),
                exec(31, caller.pid, caller.start_time, 100, "runner"),
            ],
        );
        let Event::ProcessStart(mut start) = fork(32, 301, 32 * TICK, shell) else {
            unreachable!()
        };
        start.caller_pid = caller.pid;
        apply_all(&mut model, &[Event::ProcessStart(start)]);
        let child = model.live(301).unwrap();
        assert_eq!(
            child.ppid, 100,
            "CLONE_PARENT: the caller's parent is the parent"
        );
        assert_eq!(
            child.cmdline,
            ["runner", "--flag"],
            "but it is a copy of the caller"
        );
    }

    #[test]
    fn a_new_holder_of_a_pid_does_not_inherit_its_predecessors_children() {
        let mut model = host();
        let shell = key(100, 5 * TICK);
        // A pid-namespace init exits: its children stay listed under its pid (they die with
        // the namespace). Its pid is then reused before they are gone.
        let init = key(900, 90 * TICK);
        apply_all(
            &mut model,
            &[
                fork(90, init.pid, init.start_time, shell),
                fork(91, 901, 91 * TICK, init),
                exit(92, init, 100, init.pid),
                fork(93, init.pid, 93 * TICK, shell),
            ],
        );
        assert_eq!(model.live(901).unwrap().ppid, UNKNOWN_PARENT);
        assert!(model.children_of(900).is_empty());
        model.check_invariants();
    }
}
