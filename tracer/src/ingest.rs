//! The one step between the event sources and the model: events are put in kernel time order,
//! applied to the model, and handed with what the model derived from them to a sink. Live
//! capture and replay both go through here.

use anyhow::Result;

use crate::analysis::Analyzer;
use crate::event::{Event, LostCounts};
use crate::model::Model;
use crate::trace::TraceHeader;

/// Orders a batch by kernel timestamp. The sort is stable, so events with equal timestamps
/// keep their arrival order.
///
/// Sorting by timestamp is safe for causality: a child's events happen after the fork that
/// created it returned, and the probes read the clock inside the tracepoint.
pub fn order(batch: &mut [Event]) {
    // The ring hands records over in reservation order, which is nearly always time order:
    // checking is cheaper than the sort's copying.
    if !batch.is_sorted_by_key(Event::ts) {
        batch.sort_by_key(Event::ts);
    }
}

/// Counters a sink may show next to the tree.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// `CLOCK_BOOTTIME` when capture (or the trace) started, and now (or the last event).
    pub started_ts: u64,
    pub now_ts: u64,
    /// Events ingested, derived ones included.
    pub events: u64,
    /// Kernel records lost so far.
    pub lost: LostCounts,
    /// Events per second over the last interval.
    pub rate: f64,
}

/// Where ingested events go: a recorder, a terminal.
pub trait Sink {
    fn header(&mut self, header: &TraceHeader) -> Result<()>;
    /// One event, after the model applied it.
    fn event(&mut self, event: &Event, model: &Model) -> Result<()>;
    /// End of a batch or a timer tick: a chance to flush or redraw.
    fn flush(&mut self, model: &Model, status: &Status) -> Result<()>;
    /// Capture or replay is over.
    fn finish(&mut self, model: &Model, status: &Status) -> Result<()>;
}

pub struct Pipeline<S> {
    pub model: Model,
    pub analyzer: Analyzer,
    pub sink: S,
    derived: Vec<Event>,
    findings: Vec<Event>,
    pub events: u64,
}

impl<S: Sink> Pipeline<S> {
    pub fn new(model: Model, analyzer: Analyzer, sink: S) -> Self {
        Pipeline {
            model,
            analyzer,
            sink,
            derived: Vec::new(),
            findings: Vec::new(),
            events: 0,
        }
    }

    /// Applies one event to the model and the analysis, then passes it, what the model
    /// derived from it (reparents) and what the analysis found to the sink. Returns the
    /// model's derived events.
    pub fn apply(&mut self, event: &Event) -> Result<&[Event]> {
        self.derived.clear();
        self.findings.clear();
        self.analyzer.before(event, &self.model, &mut self.findings);
        self.model.apply(event, &mut self.derived);
        self.analyzer
            .after(event, &mut self.model, &mut self.findings);
        for derived in &self.derived {
            self.analyzer
                .after(derived, &mut self.model, &mut self.findings);
        }
        self.analyzer.qualify(&self.model, &mut self.findings);
        self.sink.event(event, &self.model)?;
        for output in self.derived.iter().chain(&self.findings) {
            self.sink.event(output, &self.model)?;
        }
        self.events += 1 + (self.derived.len() + self.findings.len()) as u64;
        Ok(&self.derived)
    }

    /// The input is over: the analysis reports what it was still waiting on.
    pub fn finish_analysis(&mut self) -> Result<()> {
        self.findings.clear();
        self.analyzer.finish(&self.model, &mut self.findings);
        self.analyzer.qualify(&self.model, &mut self.findings);
        for finding in &self.findings {
            self.sink.event(finding, &self.model)?;
        }
        self.events += self.findings.len() as u64;
        Ok(())
    }

    /// Orders a batch and applies it; the batch is left empty.
    pub fn apply_batch(&mut self, batch: &mut Vec<Event>) -> Result<()> {
        order(batch);
        for event in batch.drain(..) {
            self.apply(&event)?;
        }
        Ok(())
    }
}
