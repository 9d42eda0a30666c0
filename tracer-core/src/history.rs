//! A recording as a whole: read once into memory ([`Recording`]), then replayed once into a
//! [`Timeline`], which holds the life of every process ([`History`]), the findings in order
//! ([`FindingIndex`], what `finding:N` counts) and checkpoints of the model, so that the tree
//! at any time is a copy of the nearest earlier checkpoint plus the events after it, not a
//! replay from the start.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, Result};

use crate::analysis::Analyzer;
use crate::event::{Event, Finding, ProcessKey};
use crate::ingest::{Pipeline, Sink, Tee};
use crate::model::{Model, Origin};
use crate::replay::{read_notes, rules_for};
use crate::roles::Rules;
use crate::trace::{Skipped, TraceHeader, TraceReader};
use crate::words::{exit_description, signal_name};

/// The findings of a recording in trace order, numbered from 1: `replay --findings` lists
/// them, `finding:N` names them, the TUI jumps between them.
#[derive(Clone, Debug, Default)]
pub struct FindingIndex {
    findings: Vec<Finding>,
}

impl FindingIndex {
    pub fn push(&mut self, finding: &Finding) {
        self.findings.push(finding.clone());
    }

    pub fn len(&self) -> usize {
        self.findings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn as_slice(&self) -> &[Finding] {
        &self.findings
    }

    /// The Nth finding, counted from 1.
    pub fn nth(&self, n: usize) -> Option<&Finding> {
        n.checked_sub(1).and_then(|i| self.findings.get(i))
    }

    /// When each finding came, in order.
    pub fn times(&self) -> Vec<u64> {
        self.findings.iter().map(|f| f.ts).collect()
    }

    /// The first finding after `ts`, or the last before it.
    pub fn next_time(&self, ts: u64, forward: bool) -> Option<u64> {
        if forward {
            self.findings.iter().map(|f| f.ts).find(|&t| t > ts)
        } else {
            self.findings.iter().rev().map(|f| f.ts).find(|&t| t < ts)
        }
    }
}

/// Collects the findings of a replay.
impl Sink for FindingIndex {
    fn event(&mut self, event: &Event, _model: &Model) -> Result<()> {
        if let Event::Finding(finding) = event {
            self.push(finding);
        }
        Ok(())
    }
}

/// Something that happened to a process at one moment.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Mark {
    pub ts: u64,
    /// `exec`, `rename`, `signal`, `orphaned`, `finding`.
    pub kind: &'static str,
    pub text: String,
}

/// One process over the whole recording.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Life {
    pub key: ProcessKey,
    /// The process that created it, when the recording saw it.
    pub creator: Option<ProcessKey>,
    pub title: String,
    pub role: Option<String>,
    pub daemonic: bool,
    /// When it was orphaned, and who adopted it.
    pub orphaned: Option<(u64, u32)>,
    /// Its start, or the trace start for processes older than the trace.
    pub start: u64,
    pub end: Option<u64>,
    pub how: Option<String>,
    pub marks: Vec<Mark>,
}

/// Every process of a recording, with what happened to it.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub header: Option<TraceHeader>,
    pub lives: Vec<Life>,
    index: HashMap<ProcessKey, usize>,
    pub findings: FindingIndex,
    /// The latest event time.
    pub end: u64,
}

impl History {
    pub fn life(&self, key: ProcessKey) -> Option<&Life> {
        self.index.get(&key).map(|&i| &self.lives[i])
    }

    /// When the trace started (ns since boot).
    pub fn start(&self) -> u64 {
        self.header.as_ref().map_or(0, |h| h.ts)
    }

    fn touch(&mut self, key: ProcessKey, model: &Model) -> Option<usize> {
        let index = model.find(key)?;
        let process = model.get(index);
        let start = self.start();
        let slot = match self.index.get(&process.key) {
            Some(&slot) => slot,
            None => {
                self.lives.push(Life {
                    key: process.key,
                    // A process from the snapshot was not seen being created: its parent then
                    // stands in for its creator.
                    creator: model
                        .creator(index)
                        .or_else(|| {
                            (process.origin == Origin::Snapshot)
                                .then(|| model.live_index(process.original_ppid))
                                .flatten()
                        })
                        .map(|c| model.get(c).key)
                        .filter(|&c| c != process.key),
                    title: String::new(),
                    role: None,
                    daemonic: false,
                    orphaned: None,
                    start: process.key.start_time.max(start),
                    end: None,
                    how: None,
                    marks: Vec::new(),
                });
                self.index.insert(process.key, self.lives.len() - 1);
                self.lives.len() - 1
            }
        };
        let life = &mut self.lives[slot];
        life.title = process.title();
        life.role = process.class.role.as_ref().map(|r| r.label.clone());
        life.daemonic = process.class.is_daemonic();
        if let Some(orphaning) = &process.orphaned {
            life.orphaned = Some((orphaning.ts, orphaning.new_ppid));
        }
        Some(slot)
    }

    fn mark(&mut self, slot: Option<usize>, ts: u64, kind: &'static str, text: String) {
        if let Some(slot) = slot {
            self.lives[slot].marks.push(Mark { ts, kind, text });
        }
    }

    /// The lives `pid` names (every process that held it), their lineage ancestors and all
    /// they created, directly or not.
    pub fn around(&self, pid: u32) -> HashSet<ProcessKey> {
        let mut created: HashMap<ProcessKey, Vec<ProcessKey>> = HashMap::new();
        for life in &self.lives {
            if let Some(creator) = life.creator {
                created.entry(creator).or_default().push(life.key);
            }
        }
        let mut selected = HashSet::new();
        let mut stack: Vec<ProcessKey> = Vec::new();
        for life in self.lives.iter().filter(|l| l.key.pid == pid) {
            stack.push(life.key);
            let mut ancestor = life.creator;
            while let Some(key) = ancestor {
                if !selected.insert(key) {
                    break;
                }
                ancestor = self.life(key).and_then(|l| l.creator);
            }
        }
        while let Some(key) = stack.pop() {
            if selected.insert(key) || self.life(key).is_some_and(|l| l.key.pid == pid) {
                stack.extend(created.get(&key).into_iter().flatten().copied());
            }
        }
        selected
    }
}

impl Sink for History {
    fn header(&mut self, header: &TraceHeader) -> Result<()> {
        self.header = Some(header.clone());
        Ok(())
    }

    fn event(&mut self, event: &Event, model: &Model) -> Result<()> {
        self.end = self.end.max(event.ts());
        let key = event.key();
        match event {
            Event::Snapshot(_) | Event::ProcessStart(_) => {
                self.touch(key, model);
            }
            Event::Exec(exec) => {
                let slot = self.touch(key, model);
                self.mark(slot, exec.ts, "exec", exec.filename.clone());
            }
            Event::Rename(rename) => {
                let slot = self.touch(key, model);
                let title = slot
                    .map(|s| self.lives[s].title.clone())
                    .unwrap_or_else(|| rename.comm.clone());
                self.mark(slot, rename.ts, "rename", title);
            }
            Event::Signal(signal) => {
                let slot = self
                    .touch(key, model)
                    .or_else(|| self.index.get(&key).copied());
                let text = format!(
                    "{} from {} [{}]",
                    signal_name(signal.sig),
                    signal.sender_pid,
                    signal.sender_comm
                );
                self.mark(slot, signal.ts, "signal", text);
            }
            Event::Reparent(reparent) => {
                let slot = self.touch(key, model);
                let text = format!(
                    "parent {} exited, adopted by {}",
                    reparent.old_ppid, reparent.new_ppid
                );
                self.mark(slot, reparent.ts, "orphaned", text);
            }
            Event::Exit(exit) => {
                if let Some(&slot) = self.index.get(&key) {
                    let life = &mut self.lives[slot];
                    life.end = Some(exit.ts);
                    life.how = Some(exit_description(
                        exit.exit_code,
                        exit.signal,
                        exit.core_dumped,
                    ));
                }
            }
            Event::Finding(finding) => {
                let slot = self.index.get(&key).copied();
                self.mark(slot, finding.ts, "finding", finding.summary.clone());
                self.findings.push(finding);
            }
            Event::Interpreter(read) => {
                let slot = self.touch(key, model);
                self.mark(slot, read.ts, "interpreter", read.describe());
            }
            Event::Lost(_) => {}
        }
        Ok(())
    }
}

/// A trace read once into memory: its header and observed events in file order (recorded
/// findings and derived reparents are left out: whoever replays the events derives them
/// again).
#[derive(Clone, Debug)]
pub struct Recording {
    pub header: TraceHeader,
    pub events: Vec<Event>,
    pub name: String,
    /// Recorded lines derived again rather than read.
    pub derived: u64,
    pub trailing_bytes: usize,
    pub skipped: Skipped,
}

impl Recording {
    pub fn read<R: BufRead>(mut reader: TraceReader<R>) -> crate::Result<Recording> {
        let mut events = Vec::new();
        let mut derived = 0;
        for event in &mut reader {
            let event = event?;
            if event.is_derived() {
                derived += 1;
            } else {
                events.push(event);
            }
        }
        Ok(Recording {
            header: reader.header().clone(),
            events,
            name: reader.name().to_owned(),
            derived,
            trailing_bytes: reader.trailing_bytes,
            skipped: reader.skipped.clone(),
        })
    }

    /// What the read left out: a torn last line, lines a lenient read skipped.
    pub fn read_notes(&self) -> Vec<String> {
        read_notes(&self.name, self.trailing_bytes, &self.skipped)
    }
}

/// The tree at one time of a [`Timeline`], with the state of the timeline's sink.
pub struct State<S> {
    pub model: Model,
    pub sink: S,
    /// Events ingested, derived ones included (what a live status line counts).
    pub events: u64,
    /// Observed events applied, and the latest of their times.
    pub applied: u64,
    pub last_ts: u64,
}

struct Checkpoint<S> {
    /// Events (of `Recording::events`) applied: every one before this index.
    index: usize,
    /// The latest time among them: the checkpoint serves times from here on.
    max_ts: u64,
    model: Model,
    analyzer: Analyzer,
    sink: S,
    events: u64,
}

/// A recording replayed once: its [`History`], and checkpoints to rebuild the tree (and a
/// sink `S` of the caller's, such as the TUI's feed) at any time.
pub struct Timeline<S> {
    recording: Recording,
    checkpoints: Vec<Checkpoint<S>>,
    history: History,
    /// The latest observed event time (the trace start when there is none).
    end: u64,
}

/// Most checkpoints kept: each is a copy of the model.
const CHECKPOINTS: usize = 64;
/// Fewest events between checkpoints: copying is not free either.
const MIN_SPACING: usize = 2_000;

impl<S: Sink + Clone + Default> Timeline<S> {
    /// Replays `recording` once, with the rules it was recorded with unless `rules` says
    /// otherwise.
    pub fn build(recording: Recording, rules: Option<Rules>) -> crate::Result<Timeline<S>> {
        let header = &recording.header;
        let rules = rules_for(header, &recording.name, rules)?;
        let events = &recording.events;
        let spacing = (events.len() / CHECKPOINTS).max(MIN_SPACING);
        let mut pipeline = Pipeline::new(
            Model::new(header.clock_tick_ns),
            Analyzer::new(rules),
            Tee(History::default(), S::default()),
        );
        pipeline.header(header)?;
        let mut checkpoints = Vec::new();
        let mut max_ts = header.ts;
        for (i, event) in events.iter().enumerate() {
            if i % spacing == 0 {
                checkpoints.push(Checkpoint {
                    index: i,
                    max_ts,
                    model: pipeline.model.clone(),
                    analyzer: pipeline.analyzer.clone(),
                    sink: pipeline.sink.1.clone(),
                    events: pipeline.events,
                });
            }
            max_ts = max_ts.max(event.ts());
            pipeline.apply(event)?;
        }
        pipeline.finish_analysis()?;
        let history = pipeline.sink.0;
        Ok(Timeline {
            recording,
            checkpoints,
            history,
            end: max_ts,
        })
    }

    /// The tree as a replay up to `at` rebuilds it: every event up to `at`, in file order.
    pub fn at(&self, at: u64) -> Result<State<S>> {
        let checkpoint = self
            .checkpoints
            .iter()
            .rev()
            .find(|c| c.max_ts <= at)
            .or(self.checkpoints.first());
        let Some(checkpoint) = checkpoint else {
            let mut pipeline = Pipeline::new(
                Model::new(self.recording.header.clock_tick_ns),
                Analyzer::new(Rules::builtin()),
                S::default(),
            );
            pipeline.finish_analysis()?;
            return Ok(State {
                model: pipeline.model,
                sink: pipeline.sink,
                events: pipeline.events,
                applied: 0,
                last_ts: 0,
            });
        };
        let mut pipeline = Pipeline::new(
            checkpoint.model.clone(),
            checkpoint.analyzer.clone(),
            checkpoint.sink.clone(),
        );
        pipeline.events = checkpoint.events;
        let mut applied = checkpoint.index as u64;
        let mut last_ts = self.recording.events[..checkpoint.index]
            .iter()
            .map(Event::ts)
            .max()
            .unwrap_or(0);
        for event in &self.recording.events[checkpoint.index..] {
            if event.ts() <= at {
                pipeline.apply(event)?;
                applied += 1;
                last_ts = last_ts.max(event.ts());
            }
        }
        pipeline.finish_analysis()?;
        Ok(State {
            model: pipeline.model,
            sink: pipeline.sink,
            events: pipeline.events,
            applied,
            last_ts,
        })
    }
}

impl<S> Timeline<S> {
    pub fn recording(&self) -> &Recording {
        &self.recording
    }

    pub fn header(&self) -> &TraceHeader {
        &self.recording.header
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    pub fn findings(&self) -> &FindingIndex {
        &self.history.findings
    }

    pub fn start(&self) -> u64 {
        self.recording.header.ts
    }

    /// The latest observed event time (the trace start for a trace without events).
    pub fn end(&self) -> u64 {
        self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, key};
    use crate::ingest::NullSink;
    use crate::replay::replay;
    use crate::trace::TraceWriter;

    const S: u64 = 1_000_000_000;

    /// A Celery pool worker forks children and is killed, then more hosts' churn: enough
    /// events for several checkpoints.
    fn trace() -> Vec<u8> {
        let mut writer = TraceWriter::new(Vec::new());
        let mut header = fixtures::header();
        header.ts = S;
        writer.write_header(&header).unwrap();
        let init = key(1, 0);
        let main = key(100, S);
        let worker = key(101, 2 * S);
        let mut events = vec![
            fixtures::snapshot(S, init, 0, "/sbin/init"),
            fixtures::snapshot(S, main, 1, "[celeryd: w1@host:MainProcess]"),
            fixtures::fork(2 * S, worker, main, "celery"),
            fixtures::rename(2 * S + 1, worker, "[celeryd: w1@host:ForkPoolWorker-1]"),
        ];
        for i in 0..5_000u64 {
            let ts = 3 * S + i * 1_000_000;
            let child = key(1_000 + (i % 20_000) as u32, ts);
            let parent = if i % 1_000 == 0 { worker } else { init };
            events.push(fixtures::fork(ts, child, parent, "sh"));
            events.push(fixtures::exit(
                ts + 500,
                child,
                parent.pid,
                (Some(0), None),
                1,
            ));
        }
        events.push(fixtures::signal(9 * S, worker, main, 9));
        events.push(fixtures::exit(
            9 * S + 1,
            worker,
            main.pid,
            (None, Some(9)),
            1,
        ));
        for event in &events {
            writer.write_event(event).unwrap();
        }
        writer.into_inner()
    }

    fn timeline(bytes: &[u8]) -> Timeline<FindingIndex> {
        let reader = TraceReader::new(bytes, "t".into()).unwrap();
        Timeline::build(Recording::read(reader).unwrap(), None).unwrap()
    }

    #[test]
    fn the_tree_at_any_time_is_the_replay_up_to_that_time() {
        let bytes = trace();
        let timeline = timeline(&bytes);
        assert!(timeline.checkpoints.len() > 1, "several checkpoints");
        for at in [
            0,
            S,
            2 * S + 1,
            3 * S + 1_234_567_890,
            6 * S,
            9 * S,
            u64::MAX,
        ] {
            let state = timeline.at(at).unwrap();
            let reader = TraceReader::new(bytes.as_slice(), "t".into()).unwrap();
            let (replayed, _, summary) =
                replay(reader, Some(at), None, FindingIndex::default()).unwrap();
            assert_eq!(state.model.view(), replayed.model.view(), "at {at}");
            assert_eq!(
                (state.applied, state.last_ts),
                (summary.events, summary.last_ts),
                "at {at}"
            );
            assert_eq!(state.sink.len(), replayed.sink.len(), "findings at {at}");
        }
    }

    #[test]
    fn one_finding_index_numbers_what_replay_finds() {
        let bytes = trace();
        let timeline = timeline(&bytes);
        let reader = TraceReader::new(bytes.as_slice(), "t".into()).unwrap();
        let (replayed, _, _) = replay(reader, None, None, FindingIndex::default()).unwrap();
        let index = timeline.findings();
        assert!(index.len() >= 6, "spawns and a kill: {}", index.len());
        assert_eq!(index.times(), replayed.sink.times());
        assert_eq!(index.nth(1).map(|f| f.ts), index.times().first().copied());
        assert!(index.nth(0).is_none() && index.nth(index.len() + 1).is_none());
        let first = index.times()[0];
        assert_eq!(index.next_time(first - 1, true), Some(first));
        assert_eq!(index.next_time(first, false), None);
        let _: Timeline<NullSink> = Timeline::build(timeline.recording().clone(), None).unwrap();
    }
}
