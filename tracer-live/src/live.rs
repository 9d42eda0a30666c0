//! Live capture: probes → ingest → model → sink, until told to stop.
//!
//! Bootstrap order matters. Every process's parent is noted ([`BeforeAttach`]), the probes
//! attach, then `/proc` is scanned while the ring buffer keeps being drained; the snapshot is
//! applied (with the processes that exited in between put back), then every event that raced
//! the scan.
//! The model applies events idempotently by identity, so a process seen both in the snapshot
//! and in an event is one process, and the events, being newer, win.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use tracer_core::event::{Event, Exit, InterpreterRead, Lost, LostCounts, ProcessKey, Reparent};
use tracer_core::ingest::{Pipeline, Sink, Status, order};
use tracer_core::privacy::Privacy;
use tracer_core::trace::TraceHeader;

use crate::host;
use crate::latency::Latency;
use crate::preflight::kernel_release;
use crate::privileges::{self, Dropped};
use crate::procfs::{self, ProcFs};
use crate::python::{self, Inspector};
use crate::window::BeforeAttach;
use crate::{ProbeOptions, Probes};
use caps::Capability;

/// The biggest record in the ring buffer: an exec with a full path and argument tail, plus
/// the ring's own record header.
const MAX_RECORD_BYTES: usize =
    std::mem::size_of::<tracer_common::ExecRecord>() + tracer_common::EXEC_TAIL_CAP + 8;

/// How long a burst of records gathers before it is read, by default: the p99 latency from
/// probe to trace stays well under 10 ms, and a busy host pays one wakeup per 5 ms.
pub const DEFAULT_BATCH_DELAY_MS: u64 = 5;

/// How long checking processes against /proc may read the ring before it judges them, and
/// in what batches.
const RECONCILE_DRAIN_BUDGET: Duration = Duration::from_millis(50);
const RECONCILE_DRAIN_BATCH: usize = 4096;

/// How far behind the clock the analysis is moved on an idle tick.
const QUIET_MARGIN_NS: u64 = 100_000_000;

/// Processes checked against /proc per tick after a loss: a few milliseconds of reads.
const SWEEP_PER_TICK: usize = 2048;

/// How long the drain after a stop may take: SIGTERM from a service manager is followed by
/// SIGKILL within seconds, and the final findings and summary must be written before it.
const STOP_DRAIN_BUDGET: Duration = Duration::from_millis(200);

/// Under a flood, how long the reader goes on before it lets the runtime park for a
/// millisecond (a 4% pause, only while it never catches up).
const FLOOD_PAUSE_EVERY: Duration = Duration::from_millis(25);

#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub probes: ProbeOptions,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Most records taken from the ring buffer before they are ingested.
    pub batch_max: usize,
    /// While records flow, how often the reader reads the ring: one wakeup per interval
    /// rather than one per record, and at most this much added latency. Zero reads each
    /// record as it comes.
    pub coalesce: Duration,
    /// How often lost-record counters are read and the sink flushed.
    pub tick: Duration,
    /// Redaction and the environment allowlist, applied before events reach the pipeline.
    pub privacy: Privacy,
    /// Read Python interpreters' daemonic flags (`--python-inspect`), at most this many
    /// processes a second; none when off.
    pub python_reads_per_second: Option<u32>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            probes: ProbeOptions::default(),
            duration: None,
            batch_max: 4096,
            coalesce: Duration::from_millis(DEFAULT_BATCH_DELAY_MS),
            tick: Duration::from_millis(250),
            privacy: Privacy::default(),
            python_reads_per_second: Some(python::DEFAULT_READS_PER_SECOND),
        }
    }
}

/// How the kernel's reparent decisions compared with `/proc`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReparentChecks {
    pub agreed: u64,
    /// `/proc` still showed the old parent, or the process was gone.
    pub inconclusive: u64,
    /// `/proc` showed another parent; the model took it.
    pub corrected: u64,
}

#[derive(Clone, Debug, Default)]
pub struct LiveSummary {
    pub snapshot: usize,
    pub events: u64,
    pub lost: LostCounts,
    pub reparent_checks: ReparentChecks,
    /// What the tracer kept of its privileges after attaching.
    pub privileges: Dropped,
    /// From each kernel record's timestamp to its event having reached the sink (those
    /// that raced the bootstrap scan excluded).
    pub latency: Latency,
    /// Processes found gone from /proc without their exit record, and ended so.
    pub inferred_exits: u64,
}

struct Capture<'a, S> {
    pipeline: &'a mut Pipeline<S>,
    procfs: ProcFs,
    privacy: &'a Privacy,
    checks: ReparentChecks,
    lost: LostCounts,
    /// Records left in the ring when the stop's drain ran out of time.
    unread: LostCounts,
    /// Live processes still to check against /proc after a loss of records.
    sweep: Vec<ProcessKey>,
    /// Exits inferred because a process was found gone from /proc.
    inferred_exits: u64,
    /// When the lost-record counters were last read.
    lost_checked: u64,
    status: Status,
    rate_mark: (Instant, u64),
    latency: Latency,
    /// Timestamps of the batch being ingested: its latencies are known once it is through.
    batch_ts: Vec<u64>,
    /// The interpreter reader's thread, with `--python-inspect on`.
    inspector: Option<Inspector>,
    /// The latest time the analysis was moved to on a quiet tick.
    settled: u64,
}

impl<S: Sink> Capture<'_, S> {
    /// Fills in command lines the probes had to cut, from `/proc`, while the process lives;
    /// reads the allowlisted environment after an exec; redacts.
    fn enrich(&self, batch: &mut [Event]) {
        for event in batch {
            match event {
                Event::Exec(exec) => {
                    let key = ProcessKey {
                        pid: exec.pid,
                        start_time: exec.start_time,
                    };
                    if exec.cmdline_truncated
                        && let Some((full, truncated)) = self.procfs.cmdline_of(key)
                    {
                        exec.cmdline = full;
                        exec.cmdline_truncated = truncated;
                    }
                    if let Some(env) = self.procfs.allowlisted_env(key, self.privacy) {
                        exec.env = env;
                    }
                }
                // An OOM victim's memory cgroup by name, while its directory exists.
                Event::Exit(exit) => {
                    if let Some(cgroup) = &mut exit.memory_cgroup
                        && cgroup.path.is_none()
                    {
                        cgroup.path = procfs::memory_cgroup_path(cgroup.id);
                    }
                }
                Event::Rename(rename) if rename.cmdline.is_none() || rename.cmdline_truncated => {
                    let key = ProcessKey {
                        pid: rename.pid,
                        start_time: rename.start_time,
                    };
                    if let Some((full, truncated)) = self.procfs.cmdline_of(key) {
                        rename.cmdline = Some(full);
                        rename.cmdline_truncated = truncated;
                    }
                }
                _ => {}
            }
            self.privacy.apply(event);
        }
    }

    /// Compares a reparent the model derived with what `/proc` shows now.
    fn check(&mut self, reparent: &Reparent) -> Option<Event> {
        let key = ProcessKey {
            pid: reparent.pid,
            start_time: reparent.start_time,
        };
        match self.procfs.ppid_of(key) {
            Some(ppid) if ppid == reparent.new_ppid => {
                self.checks.agreed += 1;
                None
            }
            None => {
                self.checks.inconclusive += 1;
                None
            }
            Some(ppid) if ppid == reparent.old_ppid => {
                self.checks.inconclusive += 1;
                None
            }
            Some(ppid) => {
                self.checks.corrected += 1;
                Some(Event::Reparent(Reparent::observed(
                    host::boottime_ns(),
                    key,
                    reparent.new_ppid,
                    ppid,
                )))
            }
        }
    }

    /// Ingests a batch fresh from the ring buffer, and measures how long its records took to
    /// get through.
    fn ingest_timed(&mut self, batch: &mut Vec<Event>) -> Result<()> {
        self.batch_ts.clear();
        self.batch_ts.extend(batch.iter().map(Event::ts));
        self.ingest(batch)?;
        self.flush()?;
        let now = host::boottime_ns();
        for &ts in &self.batch_ts {
            self.latency.record(now.saturating_sub(ts));
        }
        Ok(())
    }

    fn ingest(&mut self, batch: &mut Vec<Event>) -> Result<()> {
        self.enrich(batch);
        order(batch);
        for event in batch.drain(..) {
            let derived = self.pipeline.apply(&event)?.to_vec();
            for derived in derived {
                if let Event::Reparent(reparent) = &derived
                    && let Some(correction) = self.check(reparent)
                {
                    self.pipeline.apply(&correction)?;
                }
            }
        }
        self.ask_interpreters()
    }

    /// Hands the reads the analysis wants to the reader thread; a request it cannot queue is
    /// answered at once.
    fn ask_interpreters(&mut self) -> Result<()> {
        let wanted = self.pipeline.analyzer.take_wanted();
        let Some(inspector) = &self.inspector else {
            return Ok(());
        };
        let refused: Vec<InterpreterRead> = wanted
            .into_iter()
            .filter_map(|key| inspector.request(key))
            .collect();
        for read in refused {
            self.apply_read(read)?;
        }
        Ok(())
    }

    /// A read from the reader thread, in the trace at the time it is applied: the events
    /// before it were applied before it, on replay too.
    fn apply_read(&mut self, mut read: InterpreterRead) -> Result<()> {
        // Not before a time the analysis was moved to on a quiet tick: replay, which has no
        // ticks, must see the read after whatever that tick settled.
        read.ts = read.ts.max(self.pipeline.model.now()).max(self.settled);
        self.pipeline.apply(&Event::Interpreter(read))?;
        self.ask_interpreters()
    }

    /// Reads the lost-record counters; a loss since the last check becomes a `lost` event,
    /// applied before whatever is ingested next, so the analysis knows of the gap before it
    /// judges events that came after it.
    fn poll_lost(&mut self, probes: &Probes) -> Result<()> {
        let now = host::boottime_ns();
        let total = probes.lost_counts();
        let delta = total.since(&self.lost);
        if delta.total() > 0 {
            self.lost = total;
            self.pipeline
                .apply(&Event::Lost(Lost::new(now, delta, self.lost_checked)))?;
            // Lost exits leave processes alive in the model; lost starts, parents wrong.
            // Every live process is checked against /proc again, a bounded number per tick.
            self.sweep = self
                .pipeline
                .model
                .processes()
                .filter(|(_, p)| p.exit.is_none() && !p.kernel_thread)
                .map(|(_, p)| p.key)
                .collect();
        }
        self.lost_checked = now;
        Ok(())
    }

    /// Checks processes the model believes alive against `/proc`: a parent that differs is
    /// corrected; a process that is gone gets an exit of its own (`inferred`, code unknown)
    /// unless its real exit shows up in the ring first, which is read before judging.
    fn reconcile(&mut self, probes: &mut Probes, keys: &[ProcessKey]) -> Result<()> {
        let mut gone = Vec::new();
        for &key in keys {
            let Some(index) = self.pipeline.model.find(key) else {
                continue;
            };
            let believed = self.pipeline.model.get(index).ppid;
            match self.procfs.ppid_of(key) {
                Some(ppid) if ppid != believed => {
                    let correction = Reparent::observed(host::boottime_ns(), key, believed, ppid);
                    self.checks.corrected += 1;
                    self.pipeline.apply(&Event::Reparent(correction))?;
                }
                Some(_) => {}
                None => gone.push(key),
            }
        }
        if gone.is_empty() {
            return Ok(());
        }
        // A process leaves /proc only once reaped, after its exit record was written: what
        // the ring holds now is read before any exit is inferred. Within a budget: behind a
        // backlog, the reading would keep the loop from its stop and ticks; those processes
        // are judged again at a later tick, once the ring has been read to its end.
        let mut batch = Vec::new();
        let deadline = Instant::now() + RECONCILE_DRAIN_BUDGET;
        loop {
            let read = probes.drain_now(&mut batch, RECONCILE_DRAIN_BATCH);
            if read > 0 {
                self.ingest(&mut batch)?;
            }
            if read < RECONCILE_DRAIN_BATCH {
                break;
            }
            if Instant::now() >= deadline {
                self.sweep.extend(gone);
                return Ok(());
            }
        }
        let now = host::boottime_ns();
        for key in gone {
            let Some(index) = self.pipeline.model.find(key) else {
                continue;
            };
            let process = self.pipeline.model.get(index);
            let exit = Exit::inferred(now, key, process.ppid, &process.comm);
            self.inferred_exits += 1;
            self.pipeline.apply(&Event::Exit(exit))?;
        }
        Ok(())
    }

    /// The next slice of the sweep a loss of records asked for.
    fn sweep_some(&mut self, probes: &mut Probes) -> Result<()> {
        if self.sweep.is_empty() {
            return Ok(());
        }
        let rest = self
            .sweep
            .split_off(self.sweep.len().saturating_sub(SWEEP_PER_TICK));
        self.reconcile(probes, &rest)
    }

    fn flush(&mut self) -> Result<()> {
        let now = Instant::now();
        let elapsed = now.duration_since(self.rate_mark.0).as_secs_f64();
        if elapsed >= 1.0 {
            self.status.rate = (self.pipeline.events - self.rate_mark.1) as f64 / elapsed;
            self.rate_mark = (now, self.pipeline.events);
        }
        self.status.now_ts = host::boottime_ns();
        self.status.events = self.pipeline.events;
        self.status.lost = self.lost;
        self.pipeline
            .sink
            .flush(&self.pipeline.model, &self.status)?;
        Ok(())
    }
}

/// The reader's half of the probes' wakeup policy. While records flow, it reads the ring
/// every `coalesce` on its own timer and the probes wake nobody; when a read finds the ring
/// empty, it asks the probes for a wakeup and sleeps until the next record. One wakeup per
/// batch rather than one per record: on a busy host the wakeups, not the records, cost most.
struct Reader {
    coalesce: Duration,
    /// The last read stopped at its limit: more is waiting, read it without delay.
    ring_full: bool,
}

impl Reader {
    /// Waits for records and decodes up to `max` of them into `batch`. Cancel-safe: whatever
    /// is not read stays in the ring.
    async fn next(
        &mut self,
        probes: &mut Probes,
        batch: &mut Vec<Event>,
        max: usize,
    ) -> Result<usize> {
        loop {
            if !self.ring_full && !self.coalesce.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(self.coalesce) => {}
                    // The ring is filling: read it now.
                    woken = probes.wait_for_wakeup() => woken?,
                }
            }
            let mut read = probes.drain_now(batch, max);
            if read == 0 {
                probes.request_wakeup();
                // Records committed before the probes saw the request came without a wakeup.
                read = probes.drain_now(batch, max);
            }
            if read > 0 {
                self.ring_full = read >= max;
                return Ok(read);
            }
            self.ring_full = false;
            probes.wait_for_wakeup().await?;
        }
    }
}

/// The next read from the reader thread; never, without one.
async fn next_read(inspector: &mut Option<Inspector>) -> Option<InterpreterRead> {
    match inspector {
        Some(inspector) => inspector.results.recv().await,
        None => std::future::pending().await,
    }
}

/// Captures until `stop` completes (or the duration ends), feeding `pipeline`. `ready` runs
/// once the probes are attached and the bootstrap is applied.
pub async fn run<S: Sink>(
    options: &LiveOptions,
    pipeline: &mut Pipeline<S>,
    stop: impl Future<Output = ()>,
    ready: impl FnOnce(&LiveSummary),
) -> Result<LiveSummary> {
    let tick_ns = host::clock_tick_ns();
    let procfs = ProcFs::host(tick_ns);
    let mut before_attach = BeforeAttach::default();
    let mut probes = Probes::load_then_attach(&options.probes, || {
        before_attach = BeforeAttach::read(&procfs);
    })?;
    // Before any other thread exists: every thread then inherits the reduced set.
    let hidepid = std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|mounts| privileges::proc_hides_pids(&mounts));
    let inspecting = options.python_reads_per_second.is_some();
    let keep = if options.privacy.captures_env() || hidepid || inspecting {
        &[Capability::CAP_SYS_PTRACE][..]
    } else {
        &[]
    };
    let mut privileges = privileges::drop_all_except(keep)?;
    if inspecting && privileges.kept.iter().any(|c| c == "CAP_SYS_PTRACE") {
        privileges
            .because
            .push("CAP_SYS_PTRACE to read Python interpreters; --python-inspect off drops it");
    }
    let inspector = match options.python_reads_per_second {
        Some(per_second) => Some(
            Inspector::start(procfs.clone(), per_second)
                .context("cannot start the Python interpreter reader")?,
        ),
        None => None,
    };
    let started = host::boottime_ns();

    // Keep draining the ring buffer while /proc is scanned: a big host takes a while.
    let mut reader = Reader {
        coalesce: options.coalesce,
        ring_full: false,
    };
    let mut pending = Vec::new();
    let scanner = procfs.clone();
    let privacy = options.privacy.clone();
    let scan = tokio::task::spawn_blocking(move || {
        let mut snapshot = scanner.snapshot(started);
        for process in &mut snapshot {
            let key = ProcessKey {
                pid: process.pid,
                start_time: process.start_time,
            };
            if let Some(env) = scanner.allowlisted_env(key, &privacy) {
                process.env = env;
            }
            privacy.redact_args(&mut process.cmdline);
        }
        snapshot
    });
    tokio::pin!(scan);
    let mut snapshot = loop {
        tokio::select! {
            result = &mut scan => break result.context("the /proc scan failed")?,
            read = reader.next(&mut probes, &mut pending, usize::MAX) => { read?; }
        }
    };

    let mut capture = Capture {
        pipeline,
        procfs,
        privacy: &options.privacy,
        checks: ReparentChecks::default(),
        lost: LostCounts::default(),
        unread: LostCounts::default(),
        sweep: Vec::new(),
        inferred_exits: 0,
        lost_checked: started,
        status: Status {
            started_ts: started,
            now_ts: started,
            ..Status::default()
        },
        rate_mark: (Instant::now(), 0),
        latency: Latency::default(),
        batch_ts: Vec::with_capacity(options.batch_max),
        inspector,
        settled: 0,
    };
    if capture.inspector.is_some() {
        capture.pipeline.analyzer.want_reads();
    }
    let mut header = TraceHeader::new(
        host::hostname(),
        kernel_release(),
        host::boot_id(),
        started,
        host::wall_clock_ns(),
        tick_ns,
    );
    header.rules = capture.pipeline.analyzer.rules().user_text.clone();
    header.python_inspect = inspecting;
    capture.pipeline.header(&header)?;
    before_attach.restore(&mut snapshot, &pending, started);
    let snapshot_len = snapshot.len();
    for process in snapshot {
        capture.pipeline.apply(&Event::Snapshot(process))?;
    }
    capture.poll_lost(&probes)?;
    // Processes the events that raced the scan speak of: /proc, read after them, is newer.
    let mut raced: Vec<ProcessKey> = pending.iter().map(Event::key).collect();
    raced.sort_unstable();
    raced.dedup();
    capture.ingest(&mut pending)?;
    capture.reconcile(&mut probes, &raced)?;
    capture.flush()?;
    ready(&LiveSummary {
        snapshot: snapshot_len,
        events: capture.pipeline.events,
        privileges: privileges.clone(),
        ..LiveSummary::default()
    });

    let deadline = async {
        match options.duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline, stop);
    let mut ticker = tokio::time::interval(options.tick);
    // After a stall (a descheduled tracer), one tick, not a burst of the missed ones.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(options.batch_max);
    let lost_check_batch = options
        .batch_max
        .min(options.probes.ring_bytes as usize / MAX_RECORD_BYTES)
        .max(1);
    // Since when the reader has been handed full batches without a pause.
    let mut busy_since: Option<Instant> = None;
    loop {
        let read = tokio::select! {
            biased;
            () = &mut stop => break,
            () = &mut deadline => break,
            // Before the reader: under a flood the reader is always ready, and the tick
            // (lost counters, flush) must still come.
            _ = ticker.tick() => {
                capture.poll_lost(&probes)?;
                capture.sweep_some(&mut probes)?;
                // A record committed just as the reader went to sleep may have come without
                // a wakeup: it waits at most one tick.
                let read = probes.drain_now(&mut batch, options.batch_max);
                if read > 0 {
                    capture.ingest_timed(&mut batch)?;
                } else {
                    // The ring is empty: what happened more than a moment ago has been read,
                    // so the analysis may act on the time that passed (a record is written
                    // microseconds after its timestamp; the margin is generous).
                    let settled = host::boottime_ns().saturating_sub(QUIET_MARGIN_NS);
                    capture.settled = capture.settled.max(settled);
                    capture.pipeline.advance(settled)?;
                    capture.flush()?;
                }
                read
            }
            Some(read) = next_read(&mut capture.inspector) => {
                capture.apply_read(read)?;
                capture.flush()?;
                0
            }
            read = reader.next(&mut probes, &mut batch, options.batch_max) => {
                let read = read?;
                // Records are lost only when the ring is full, and the batch after a full
                // ring reaches this size: check the counters before ingesting it.
                if read >= lost_check_batch {
                    capture.poll_lost(&probes)?;
                }
                capture.ingest_timed(&mut batch)?;
                read
            }
        };
        if read < options.batch_max {
            busy_since = None;
        } else if busy_since.get_or_insert_with(Instant::now).elapsed() >= FLOOD_PAUSE_EVERY {
            // Full batch after full batch never leaves the task pending, and the runtime
            // polls signals and timers (stop, --duration) only when it parks: a moment's
            // sleep lets it.
            tokio::time::sleep(Duration::from_millis(1)).await;
            busy_since = None;
        }
    }

    // What the kernel produced before the stop still belongs to the trace, within a bound:
    // a service manager's stop must take effect. What is left unread is counted as lost.
    let draining = Instant::now();
    loop {
        let read = probes.drain_now(&mut batch, options.batch_max);
        capture.poll_lost(&probes)?;
        capture.ingest_timed(&mut batch)?;
        if read < options.batch_max {
            break;
        }
        if draining.elapsed() >= STOP_DRAIN_BUDGET {
            let unread = probes.discard_now();
            if unread.total() > 0 {
                capture.unread.add(&unread);
                capture.pipeline.apply(&Event::Lost(Lost::new(
                    host::boottime_ns(),
                    unread,
                    capture.lost_checked,
                )))?;
            }
            break;
        }
    }
    capture.pipeline.finish_analysis()?;
    capture.flush()?;
    capture
        .pipeline
        .sink
        .finish(&capture.pipeline.model, &capture.status)?;
    Ok(LiveSummary {
        snapshot: snapshot_len,
        events: capture.pipeline.events,
        lost: {
            let mut lost = capture.lost;
            lost.add(&capture.unread);
            lost
        },
        reparent_checks: capture.checks,
        privileges,
        latency: capture.latency,
        inferred_exits: capture.inferred_exits,
    })
}
