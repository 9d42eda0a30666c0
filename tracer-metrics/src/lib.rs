//! The tracer's Prometheus metrics. [`Metrics`] holds them (cheap to clone: every handle
//! shares the same values); [`MetricsSink`] feeds them from the pipeline, counting events,
//! lost records and findings as they pass and reading the tree's gauges from the model at each
//! flush; [`Metrics::encode`] writes the text exposition a scrape gets.
//!
//! Labels stay low-cardinality: an event or finding kind, an exporter's name, a result. Never
//! a pid, a title or a command line.

use std::fmt::Write as _;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracer_core::event::{Event, FindingKind, LostCounts};
use tracer_core::ingest::{Sink, Status};
use tracer_core::model::Model;

/// The content type of [`Metrics::encode`]'s text (OpenMetrics, which Prometheus negotiates).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExportLabels {
    exporter: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExporterLabel {
    exporter: &'static str,
}

/// What an exporter did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportResult {
    /// The receiver accepted it.
    Sent,
    /// The receiver refused it for good (a 4xx answer): it is not retried.
    Rejected,
    /// Sending failed after every retry, or the queue was full: it is gone.
    Dropped,
}

impl ExportResult {
    fn label(self) -> &'static str {
        match self {
            ExportResult::Sent => "sent",
            ExportResult::Rejected => "rejected",
            ExportResult::Dropped => "dropped",
        }
    }
}

/// Every metric of a running tracer.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Arc<Registry>,
    events: Family<KindLabel, Counter>,
    lost: Family<KindLabel, Counter>,
    processes: Gauge,
    daemonic: Gauge,
    orphans: Gauge,
    findings: Family<KindLabel, Counter>,
    findings_uncertain: Family<KindLabel, Counter>,
    export_records: Family<ExportLabels, Counter>,
    export_dropped: Family<ExporterLabel, Counter>,
    latency: Histogram,
    trace_bytes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tracer");
        let events = Family::<KindLabel, Counter>::default();
        registry.register(
            "events",
            "Events ingested, by kind (those the tree derives included)",
            events.clone(),
        );
        let lost = Family::<KindLabel, Counter>::default();
        registry.register(
            "kernel_records_lost",
            "Kernel records lost (ring buffer full) or undecodable, by kind",
            lost.clone(),
        );
        let processes = Gauge::default();
        registry.register("processes", "Live processes in the tree", processes.clone());
        let daemonic = Gauge::default();
        registry.register(
            "daemonic_processes",
            "Live processes found daemonic",
            daemonic.clone(),
        );
        let orphans = Gauge::default();
        registry.register(
            "orphans",
            "Live processes whose parent died while they lived",
            orphans.clone(),
        );
        let findings = Family::<KindLabel, Counter>::default();
        registry.register("findings", "Findings, by kind", findings.clone());
        let findings_uncertain = Family::<KindLabel, Counter>::default();
        registry.register(
            "findings_uncertain",
            "Findings that rest on lost records or processes first seen late, by kind",
            findings_uncertain.clone(),
        );
        let export_records = Family::<ExportLabels, Counter>::default();
        registry.register(
            "export_records",
            "Records exporters handled, by exporter and result (sent, rejected, dropped)",
            export_records.clone(),
        );
        let export_dropped = Family::<ExporterLabel, Counter>::default();
        registry.register(
            "export_queue_dropped",
            "Records dropped because an exporter's queue was full",
            export_dropped.clone(),
        );
        // 1 ms to about 16 s: the batch delay is milliseconds, a stall is seconds.
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "kernel_to_trace_latency_seconds",
            "Time from a kernel event to its ingestion",
            latency.clone(),
        );
        let trace_bytes = Counter::default();
        registry.register(
            "trace_bytes_written",
            "Bytes written to trace files",
            trace_bytes.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            events,
            lost,
            processes,
            daemonic,
            orphans,
            findings,
            findings_uncertain,
            export_records,
            export_dropped,
            latency,
            trace_bytes,
        }
    }

    /// The text exposition of every metric, as a scrape gets it.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if encode(&mut text, &self.registry).is_err() {
            // Writing to a String cannot fail; should a metric refuse, say so in the scrape.
            text.clear();
            let _ = writeln!(text, "# the metrics could not be encoded\n# EOF");
        }
        text
    }

    pub fn count_export(&self, exporter: &'static str, result: ExportResult, records: u64) {
        self.export_records
            .get_or_create(&ExportLabels {
                exporter,
                result: result.label(),
            })
            .inc_by(records);
    }

    pub fn count_queue_dropped(&self, exporter: &'static str, records: u64) {
        self.export_dropped
            .get_or_create(&ExporterLabel { exporter })
            .inc_by(records);
        self.count_export(exporter, ExportResult::Dropped, records);
    }

    pub fn count_trace_bytes(&self, bytes: u64) {
        self.trace_bytes.inc_by(bytes);
    }
}

fn finding_kind(kind: FindingKind) -> &'static str {
    match kind {
        FindingKind::DaemonicSpawn => "daemonic_spawn",
        FindingKind::Orphaned => "orphaned",
        FindingKind::OrphanExited => "orphan_exited",
        FindingKind::Killed => "killed",
        _ => "other",
    }
}

const LOST_KINDS: [&str; 6] = [
    "process_start",
    "exec",
    "exit",
    "rename",
    "signal",
    "malformed",
];

fn lost_by_kind(lost: &LostCounts) -> [u64; 6] {
    [
        lost.process_start,
        lost.exec,
        lost.exit,
        lost.rename,
        lost.signal,
        lost.malformed,
    ]
}

/// Feeds [`Metrics`] from the pipeline. `clock` reads the kernel's clock (`CLOCK_BOOTTIME`,
/// ns), the one event timestamps use, for the latency histogram.
pub struct MetricsSink {
    metrics: Metrics,
    clock: fn() -> u64,
    /// Timestamps of the batch's kernel events, observed at the flush that ends it.
    batch_ts: Vec<u64>,
    /// The lost counts already added: the status carries totals.
    lost_seen: [u64; 6],
    /// Events of the batch by kind, added to the counters at the flush that ends it: a
    /// labelled counter costs a lock and a hash, an array slot costs nothing.
    batch_events: [u64; EVENT_KINDS.len()],
}

/// The `"event"` names of trace lines, as [`Event::name`] gives them.
const EVENT_KINDS: [&str; 9] = [
    "snapshot",
    "process_start",
    "exec",
    "exit",
    "rename",
    "signal",
    "reparent",
    "lost",
    "finding",
];

impl MetricsSink {
    pub fn new(metrics: Metrics, clock: fn() -> u64) -> MetricsSink {
        MetricsSink {
            metrics,
            clock,
            batch_ts: Vec::new(),
            lost_seen: [0; 6],
            batch_events: [0; EVENT_KINDS.len()],
        }
    }

    fn update_gauges(&mut self, model: &Model, status: &Status) {
        let metrics = &self.metrics;
        metrics.processes.set(model.live_count() as i64);
        metrics.daemonic.set(model.daemonic_count() as i64);
        metrics.orphans.set(model.orphan_count() as i64);
        let totals = lost_by_kind(&status.lost);
        for ((kind, total), seen) in LOST_KINDS.iter().zip(totals).zip(&mut self.lost_seen) {
            if total > *seen {
                metrics
                    .lost
                    .get_or_create(&KindLabel { kind })
                    .inc_by(total - *seen);
                *seen = total;
            }
        }
        for (kind, count) in EVENT_KINDS.iter().zip(&mut self.batch_events) {
            if *count > 0 {
                metrics
                    .events
                    .get_or_create(&KindLabel { kind })
                    .inc_by(*count);
                *count = 0;
            }
        }
        let now = (self.clock)();
        for ts in self.batch_ts.drain(..) {
            metrics.latency.observe(now.saturating_sub(ts) as f64 / 1e9);
        }
    }
}

impl Sink for MetricsSink {
    fn event(&mut self, event: &Event, _model: &Model) -> std::io::Result<()> {
        let name = event.name();
        if let Some(slot) = EVENT_KINDS.iter().position(|kind| *kind == name) {
            self.batch_events[slot] += 1;
        }
        let metrics = &self.metrics;
        match event {
            Event::Finding(finding) => {
                let kind = finding_kind(finding.kind);
                metrics.findings.get_or_create(&KindLabel { kind }).inc();
                if finding.uncertain.is_some() {
                    metrics
                        .findings_uncertain
                        .get_or_create(&KindLabel { kind })
                        .inc();
                }
            }
            Event::ProcessStart(_)
            | Event::Exec(_)
            | Event::Exit(_)
            | Event::Rename(_)
            | Event::Signal(_) => self.batch_ts.push(event.ts()),
            _ => {}
        }
        Ok(())
    }

    fn flush(&mut self, model: &Model, status: &Status) -> std::io::Result<()> {
        self.update_gauges(model, status);
        Ok(())
    }

    fn finish(&mut self, model: &Model, status: &Status) -> std::io::Result<()> {
        self.update_gauges(model, status);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_core::analysis::Analyzer;
    use tracer_core::fixtures;
    use tracer_core::ingest::Pipeline;
    use tracer_core::roles::Rules;

    fn clock() -> u64 {
        3_000_000_000
    }

    fn value<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn events_findings_and_the_tree_are_counted() {
        let metrics = Metrics::new();
        let mut pipeline = Pipeline::new(
            Model::new(10_000_000),
            Analyzer::new(Rules::builtin()),
            MetricsSink::new(metrics.clone(), clock),
        );
        let (init, worker, child) = (
            fixtures::key(1, 0),
            fixtures::key(200, 10),
            fixtures::key(300, 2_000_000_000),
        );
        let events = [
            fixtures::snapshot(1, init, 0, "init"),
            fixtures::snapshot(1, worker, 1, "[celeryd: w@h:ForkPoolWorker-1]"),
            // A daemonic pool worker forks (a finding), then dies: its child is orphaned.
            fixtures::fork(2_000_000_000, child, worker, "celery"),
            fixtures::exec(2_050_000_000, child, 200, "/bin/sleep", &["sleep", "9"]),
            fixtures::signal(2_100_000_000, worker, init, 9),
            fixtures::exit(2_200_000_000, worker, 1, (None, Some(9)), 1),
        ];
        for event in &events {
            pipeline.apply(event).unwrap();
        }
        let mut lost = LostCounts::default();
        lost.exit = 2;
        let status = Status {
            lost,
            ..Status::default()
        };
        pipeline.sink.flush(&pipeline.model, &status).unwrap();
        // Totals: a second flush adds nothing.
        pipeline.sink.flush(&pipeline.model, &status).unwrap();
        metrics.count_export("otlp", ExportResult::Sent, 5);
        metrics.count_queue_dropped("otlp", 2);
        metrics.count_trace_bytes(1234);

        let text = metrics.encode();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert_eq!(
            value(&text, r#"tracer_events_total{kind="snapshot"}"#),
            Some("2")
        );
        assert_eq!(
            value(&text, r#"tracer_events_total{kind="exec"}"#),
            Some("1")
        );
        assert_eq!(
            value(&text, r#"tracer_events_total{kind="process_start"}"#),
            Some("1")
        );
        assert_eq!(
            value(&text, r#"tracer_findings_total{kind="daemonic_spawn"}"#),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            value(&text, r#"tracer_findings_total{kind="orphaned"}"#),
            Some("1")
        );
        assert_eq!(
            value(&text, r#"tracer_kernel_records_lost_total{kind="exit"}"#),
            Some("2")
        );
        assert_eq!(value(&text, "tracer_processes"), Some("2"), "{text}");
        assert_eq!(value(&text, "tracer_orphans"), Some("1"));
        assert_eq!(
            value(
                &text,
                r#"tracer_export_records_total{exporter="otlp",result="sent"}"#
            ),
            Some("5")
        );
        assert_eq!(
            value(
                &text,
                r#"tracer_export_queue_dropped_total{exporter="otlp"}"#
            ),
            Some("2")
        );
        assert_eq!(
            value(&text, "tracer_trace_bytes_written_total"),
            Some("1234")
        );
        assert!(
            value(&text, "tracer_kernel_to_trace_latency_seconds_count")
                .is_some_and(|count| count != "0"),
            "{text}"
        );
    }
}
