//! A trace held in memory with checkpoints, so that the tree at any time is a copy of the
//! nearest earlier checkpoint plus the events after it, not a replay from the start.

use std::path::Path;

use anyhow::Result;

use crate::analysis::Analyzer;
use crate::event::Event;
use crate::ingest::{Pipeline, Sink, Status};
use crate::model::Model;
use crate::replay::rules_for;
use crate::roles::Rules;
use crate::trace::{TraceHeader, TraceReader};

use super::feed::Feed;

/// What the TUI needs of events: the feed, and when each finding came.
#[derive(Clone, Default)]
pub struct FeedSink {
    pub feed: Feed,
}

impl Sink for FeedSink {
    fn header(&mut self, _header: &TraceHeader) -> Result<()> {
        Ok(())
    }

    fn event(&mut self, event: &Event, model: &Model) -> Result<()> {
        self.feed.observe(event, model);
        Ok(())
    }

    fn flush(&mut self, _model: &Model, _status: &Status) -> Result<()> {
        Ok(())
    }

    fn finish(&mut self, _model: &Model, _status: &Status) -> Result<()> {
        Ok(())
    }
}

/// The tree at one time.
pub struct State {
    pub model: Model,
    pub feed: Feed,
    pub events: u64,
}

impl State {
    /// The status line of a replayed moment.
    pub fn status(&self) -> String {
        format!(
            "{} processes, {} daemonic, {} orphaned | {} events | lost {}",
            self.model.live_count(),
            self.model.daemonic_count(),
            self.model.orphan_count(),
            self.events,
            self.model.stats.lost.total()
        )
    }
}

struct Checkpoint {
    /// Events (of `Timeline::events`) applied.
    applied: usize,
    /// The latest time among them: the checkpoint serves times from here on.
    max_ts: u64,
    model: Model,
    analyzer: Analyzer,
    sink: FeedSink,
    events: u64,
}

pub struct Timeline {
    header: TraceHeader,
    /// Observed events in file order (derived ones are derived again).
    events: Vec<Event>,
    checkpoints: Vec<Checkpoint>,
    end: u64,
    findings: Vec<u64>,
}

/// Most checkpoints kept: each is a copy of the model.
const CHECKPOINTS: usize = 64;
/// Fewest events between checkpoints: copying is not free either.
const MIN_SPACING: usize = 2_000;

impl Timeline {
    pub fn load(path: &Path, lenient: bool, rules: Option<Rules>) -> Result<Timeline> {
        let (header, reader) = TraceReader::open(path)?;
        let reader = reader.lenient(lenient);
        let rules = rules_for(&header, path, rules)?;
        let mut events = Vec::new();
        for event in reader {
            let event = event?;
            if !event.is_derived() {
                events.push(event);
            }
        }
        let spacing = (events.len() / CHECKPOINTS).max(MIN_SPACING);
        let mut pipeline = Pipeline::new(
            Model::new(header.clock_tick_ns),
            Analyzer::new(rules),
            FeedSink::default(),
        );
        let mut checkpoints = Vec::new();
        let mut max_ts = header.ts;
        let mut findings = Vec::new();
        for (i, event) in events.iter().enumerate() {
            if i % spacing == 0 {
                checkpoints.push(Checkpoint {
                    applied: i,
                    max_ts,
                    model: pipeline.model.clone(),
                    analyzer: pipeline.analyzer.clone(),
                    sink: pipeline.sink.clone(),
                    events: pipeline.events,
                });
            }
            max_ts = max_ts.max(event.ts());
            let before = pipeline.sink.feed.findings_total;
            pipeline.apply(event)?;
            if pipeline.sink.feed.findings_total > before {
                findings.push(event.ts());
            }
        }
        pipeline.finish_analysis()?;
        findings.dedup();
        Ok(Timeline {
            header,
            events,
            checkpoints,
            end: max_ts,
            findings,
        })
    }

    pub fn start(&self) -> u64 {
        self.header.ts
    }

    pub fn end(&self) -> u64 {
        self.end
    }

    pub fn header(&self) -> &TraceHeader {
        &self.header
    }

    /// When findings came, in order (one entry per event that brought any).
    pub fn finding_times(&self) -> &[u64] {
        &self.findings
    }

    /// The tree as `replay --at TIME` rebuilds it: every event up to `at`, in file order.
    pub fn at(&self, at: u64) -> Result<State> {
        let checkpoint = self
            .checkpoints
            .iter()
            .rev()
            .find(|c| c.max_ts <= at)
            .or(self.checkpoints.first());
        let mut pipeline = match checkpoint {
            Some(c) => {
                let mut pipeline =
                    Pipeline::new(c.model.clone(), c.analyzer.clone(), c.sink.clone());
                pipeline.events = c.events;
                pipeline
            }
            None => {
                return Ok(State {
                    model: Model::new(self.header.clock_tick_ns),
                    feed: Feed::default(),
                    events: 0,
                });
            }
        };
        let from = checkpoint.map_or(0, |c| c.applied);
        for event in &self.events[from..] {
            if event.ts() <= at {
                pipeline.apply(event)?;
            }
        }
        pipeline.finish_analysis()?;
        Ok(State {
            model: pipeline.model,
            feed: pipeline.sink.feed,
            events: pipeline.events,
        })
    }
}
