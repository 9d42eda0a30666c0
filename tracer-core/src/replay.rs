//! Offline replay: a trace through the same ingest step and model as live capture.

use std::io::BufRead;

use crate::analysis::Analyzer;
use crate::error::{Error, Result};
use crate::ingest::{Pipeline, Sink, Status};
use crate::model::Model;
use crate::roles::Rules;
use crate::trace::{Skipped, TraceHeader, TraceReader};

#[derive(Clone, Debug, Default)]
pub struct ReplaySummary {
    /// The trace's name, as its reader had it.
    pub name: String,
    pub events: u64,
    /// Events after `until`, not applied.
    pub skipped: u64,
    /// Recorded reparents and findings: derived again, not read.
    pub derived: u64,
    /// Bytes of a torn last line (the recorder was killed mid-write).
    pub trailing_bytes: usize,
    /// Lines a lenient read skipped.
    pub bad_lines: Skipped,
    pub last_ts: u64,
}

impl ReplaySummary {
    /// What the replay could not use: a torn last line, skipped bad lines.
    pub fn read_notes(&self) -> Vec<String> {
        read_notes(&self.name, self.trailing_bytes, &self.bad_lines)
    }
}

/// What a read of trace `name` left out, in words.
pub fn read_notes(name: &str, trailing_bytes: usize, bad_lines: &Skipped) -> Vec<String> {
    let mut notes = Vec::new();
    if trailing_bytes > 0 {
        notes.push(format!(
            "ignored {trailing_bytes} bytes of a torn last line in {name} (the recorder stopped mid-write)"
        ));
    }
    if let Some(first) = &bad_lines.first {
        notes.push(format!(
            "skipped {} bad lines of {name} (the first: {first})",
            bad_lines.lines
        ));
    }
    notes
}

/// The rules a trace was recorded with, unless `rules` overrides them.
pub fn rules_for(header: &TraceHeader, name: &str, rules: Option<Rules>) -> Result<Rules> {
    match (rules, &header.rules) {
        (Some(rules), _) => Ok(rules),
        (None, Some(text)) => Rules::with_user_text(&format!("{name} (recorded rules)"), text)
            .map_err(|e| Error::RecordedRules(e.to_string())),
        (None, None) => Ok(Rules::builtin()),
    }
}

/// Replays a trace into a fresh model and analysis, applying events up to `until` (ns since
/// boot), in file order: the order live capture applied them in. The analysis uses the rules
/// the trace was recorded with, unless `rules` overrides them.
pub fn replay<R: BufRead, S: Sink>(
    mut reader: TraceReader<R>,
    until: Option<u64>,
    rules: Option<Rules>,
    sink: S,
) -> Result<(Pipeline<S>, TraceHeader, ReplaySummary)> {
    let header = reader.header().clone();
    let rules = rules_for(&header, reader.name(), rules)?;
    let mut pipeline = Pipeline::new(Model::new(header.clock_tick_ns), Analyzer::new(rules), sink);
    pipeline.header(&header)?;
    let mut summary = ReplaySummary {
        name: reader.name().to_owned(),
        ..ReplaySummary::default()
    };
    for event in &mut reader {
        let event = event?;
        if event.is_derived() {
            summary.derived += 1;
            continue;
        }
        if until.is_some_and(|until| event.ts() > until) {
            summary.skipped += 1;
            continue;
        }
        summary.last_ts = summary.last_ts.max(event.ts());
        summary.events += 1;
        pipeline.apply(&event)?;
    }
    summary.trailing_bytes = reader.trailing_bytes;
    summary.bad_lines = reader.skipped.clone();
    pipeline.finish_analysis()?;
    let status = Status {
        started_ts: header.ts,
        now_ts: summary.last_ts,
        events: pipeline.events,
        lost: pipeline.model.stats.lost,
        rate: 0.0,
    };
    pipeline.sink.finish(&pipeline.model, &status)?;
    Ok((pipeline, header, summary))
}
