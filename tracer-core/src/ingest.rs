//! The one step between the event sources and the model: events are put in kernel time order,
//! applied to the model, and handed with what the model derived from them to a sink. Live
//! capture and replay both go through here.

use std::io::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

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

/// Where ingested events go: a recorder, a terminal, an exporter. Only `event` must be
/// written; the rest do nothing unless a sink has a use for them.
pub trait Sink {
    /// The trace's header, before any event.
    fn header(&mut self, _header: &TraceHeader) -> Result<()> {
        Ok(())
    }
    /// One event, after the model applied it.
    fn event(&mut self, event: &Event, model: &Model) -> Result<()>;
    /// End of a batch or a timer tick: a chance to flush or redraw.
    fn flush(&mut self, _model: &Model, _status: &Status) -> Result<()> {
        Ok(())
    }
    /// Capture or replay is over.
    fn finish(&mut self, _model: &Model, _status: &Status) -> Result<()> {
        Ok(())
    }
}

/// Discards events: for callers that only want the model.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullSink;

impl Sink for NullSink {
    fn event(&mut self, _event: &Event, _model: &Model) -> Result<()> {
        Ok(())
    }
}

/// Two sinks fed the same, the first first.
#[derive(Clone, Debug, Default)]
pub struct Tee<A, B>(pub A, pub B);

impl<A: Sink, B: Sink> Sink for Tee<A, B> {
    fn header(&mut self, header: &TraceHeader) -> Result<()> {
        self.0.header(header)?;
        self.1.header(header)
    }

    fn event(&mut self, event: &Event, model: &Model) -> Result<()> {
        self.0.event(event, model)?;
        self.1.event(event, model)
    }

    fn flush(&mut self, model: &Model, status: &Status) -> Result<()> {
        self.0.flush(model, status)?;
        self.1.flush(model, status)
    }

    fn finish(&mut self, model: &Model, status: &Status) -> Result<()> {
        self.0.finish(model, status)?;
        self.1.finish(model, status)
    }
}

/// Hands events to another thread (an exporter) over a bounded channel, never blocking the
/// pipeline: when the receiver lags and the channel is full, or is gone, the event is
/// dropped and counted, so that a slow consumer costs events of its own, never kernel
/// records.
pub struct ChannelSink {
    sender: SyncSender<Event>,
    dropped: Arc<AtomicU64>,
}

impl ChannelSink {
    /// A sink and the receiving end of its channel, which holds up to `capacity` events.
    pub fn new(capacity: usize) -> (ChannelSink, Receiver<Event>) {
        let (sender, receiver) = sync_channel(capacity);
        let sink = ChannelSink {
            sender,
            dropped: Arc::new(AtomicU64::new(0)),
        };
        (sink, receiver)
    }

    /// Events dropped so far; the counter stays readable after the sink is moved.
    pub fn dropped(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }
}

impl Sink for ChannelSink {
    fn event(&mut self, event: &Event, _model: &Model) -> Result<()> {
        match self.sender.try_send(event.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
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

    /// The trace's header, before any event: the analysis learns the host, the sink the rest.
    pub fn header(&mut self, header: &TraceHeader) -> Result<()> {
        self.analyzer.set_host(&header.host);
        self.analyzer.set_inspecting(header.python_inspect);
        self.sink.header(header)
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

    /// Time has passed (`now`, kernel time) with no event to say so: the analysis reports what
    /// was waiting only on time. On a quiet host a daemonic spawn would otherwise wait for the
    /// next event to be reported.
    pub fn advance(&mut self, now: u64) -> Result<()> {
        self.findings.clear();
        self.analyzer
            .settle_until(&self.model, now, &mut self.findings);
        if self.findings.is_empty() {
            return Ok(());
        }
        self.analyzer.qualify(&self.model, &mut self.findings);
        for finding in &self.findings {
            self.sink.event(finding, &self.model)?;
        }
        self.events += self.findings.len() as u64;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, key};
    use crate::roles::Rules;

    /// What a sink saw, by event name.
    #[derive(Default)]
    struct Names(Vec<&'static str>);

    impl Sink for Names {
        fn event(&mut self, event: &Event, _model: &Model) -> Result<()> {
            self.0.push(event.name());
            Ok(())
        }
    }

    fn pipeline<S: Sink>(sink: S) -> Pipeline<S> {
        Pipeline::new(
            Model::new(10_000_000),
            Analyzer::new(Rules::builtin()),
            sink,
        )
    }

    #[test]
    fn time_passing_without_events_settles_a_daemonic_spawn() {
        let mut pipeline = pipeline(Names::default());
        let (worker, child) = (key(200, 10), key(300, 2_000_000_000));
        pipeline
            .apply(&fixtures::snapshot(
                1,
                worker,
                1,
                "[celeryd: w@h:ForkPoolWorker-1]",
            ))
            .unwrap();
        pipeline
            .apply(&fixtures::fork(2_000_000_000, child, worker, "celery"))
            .unwrap();
        let findings = |p: &Pipeline<Names>| p.sink.0.iter().filter(|n| **n == "finding").count();
        // Not yet: it may still exec.
        pipeline.advance(2_500_000_000).unwrap();
        assert_eq!(findings(&pipeline), 0);
        // A quiet host: no event comes, but the time does.
        pipeline.advance(3_100_000_000).unwrap();
        assert_eq!(findings(&pipeline), 1, "{:?}", pipeline.sink.0);
    }

    #[test]
    fn a_tee_feeds_both_sinks_the_same_events_and_what_the_model_derived() {
        let mut pipeline = pipeline(Tee(Names::default(), Names::default()));
        let (parent, child) = (key(20, 2), key(21, 3));
        for event in [
            fixtures::snapshot(1, key(1, 0), 0, "/sbin/init"),
            fixtures::fork(2, parent, key(1, 0), "sh"),
            fixtures::fork(3, child, parent, "sh"),
            fixtures::exit(4, parent, 1, (Some(0), None), 1),
        ] {
            pipeline.apply(&event).unwrap();
        }
        let Tee(first, second) = &pipeline.sink;
        assert_eq!(first.0, second.0);
        assert_eq!(
            first.0,
            [
                "snapshot",
                "process_start",
                "process_start",
                "exit",
                "reparent"
            ]
        );
    }

    #[test]
    fn a_full_channel_drops_and_counts_instead_of_blocking() {
        let (sink, receiver) = ChannelSink::new(2);
        let dropped = sink.dropped();
        let mut pipeline = pipeline(sink);
        for ts in 1..=5 {
            pipeline.apply(&fixtures::lost(ts)).unwrap();
        }
        assert_eq!(dropped.load(Ordering::Relaxed), 3);
        let received: Vec<u64> = receiver.try_iter().map(|e| e.ts()).collect();
        assert_eq!(received, [1, 2], "the first two, in order");
        drop(receiver);
        pipeline.apply(&fixtures::lost(6)).unwrap();
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            4,
            "a gone receiver drops too"
        );
    }
}
