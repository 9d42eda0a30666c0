//! Offline replay: a trace file through the same ingest step and model as live capture.

use std::path::Path;

use anyhow::{Result, anyhow};

use crate::analysis::Analyzer;
use crate::ingest::{Pipeline, Sink, Status};
use crate::model::Model;
use crate::roles::Rules;
use crate::trace::{Skipped, TraceHeader, TraceReader};

#[derive(Clone, Debug, Default)]
pub struct ReplaySummary {
    pub events: u64,
    /// Events after `--at`, not applied.
    pub skipped: u64,
    /// Recorded reparents and findings: derived again, not read.
    pub derived: u64,
    /// Bytes of a torn last line (the recorder was killed mid-write).
    pub trailing_bytes: usize,
    /// Lines a lenient read skipped.
    pub bad_lines: Skipped,
    pub last_ts: u64,
}

/// The rules a trace was recorded with, unless `rules` overrides them.
pub fn rules_for(header: &TraceHeader, path: &Path, rules: Option<Rules>) -> Result<Rules> {
    match (rules, &header.rules) {
        (Some(rules), _) => Ok(rules),
        (None, Some(text)) => {
            Rules::with_user_text(&format!("{} (recorded rules)", path.display()), text)
                .map_err(|e| anyhow!("{e}: pass --rules to use other rules"))
        }
        (None, None) => Ok(Rules::builtin()),
    }
}

/// Replays `path` into a fresh model and analysis, applying events up to `until` (ns since
/// boot), in file order: the order live capture applied them in. The analysis uses the rules
/// the trace was recorded with, unless `rules` overrides them.
pub fn replay<S: Sink>(
    path: &Path,
    until: Option<u64>,
    rules: Option<Rules>,
    sink: S,
) -> Result<(Pipeline<S>, TraceHeader, ReplaySummary)> {
    replay_with(path, until, false, rules, sink)
}

/// [`replay`], skipping (and counting) bad lines when `lenient`.
pub fn replay_with<S: Sink>(
    path: &Path,
    until: Option<u64>,
    lenient: bool,
    rules: Option<Rules>,
    sink: S,
) -> Result<(Pipeline<S>, TraceHeader, ReplaySummary)> {
    let (header, reader) = TraceReader::open(path)?;
    let mut reader = reader.lenient(lenient);
    let rules = rules_for(&header, path, rules)?;
    let mut pipeline = Pipeline::new(Model::new(header.clock_tick_ns), Analyzer::new(rules), sink);
    pipeline.sink.header(&header)?;
    let mut summary = ReplaySummary::default();
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

/// What a replay could not use, for stderr: a torn last line, skipped bad lines.
pub fn read_notes(path: &Path, summary: &ReplaySummary) -> Vec<String> {
    let mut notes = Vec::new();
    if summary.trailing_bytes > 0 {
        notes.push(format!(
            "ignored {} bytes of a torn last line in {} (the recorder stopped mid-write)",
            summary.trailing_bytes,
            path.display()
        ));
    }
    if let Some(first) = &summary.bad_lines.first {
        notes.push(format!(
            "skipped {} bad lines of {} (the first: {first})",
            summary.bad_lines.lines,
            path.display()
        ));
    }
    notes
}

/// Parses `--at`: nanoseconds since boot (`1234567890`), or a time from the start of the
/// trace (`+30s`, `+1.5s`, `+250ms`, `+2m`).
pub fn parse_at(text: &str, trace_start: u64) -> Result<u64, String> {
    let error = || {
        format!(
            "--at {text:?}: give nanoseconds since boot, or +DURATION from the trace start (+30s, +250ms)"
        )
    };
    if let Some(relative) = text.strip_prefix('+') {
        let (number, unit) = relative
            .find(|c: char| c.is_ascii_alphabetic())
            .map_or((relative, "s"), |i| relative.split_at(i));
        let value: f64 = number.parse().map_err(|_| error())?;
        let scale = match unit {
            "ns" => 1.0,
            "us" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(error()),
        };
        if !value.is_finite() || value < 0.0 {
            return Err(error());
        }
        Ok(trace_start.saturating_add((value * scale) as u64))
    } else {
        text.parse().map_err(|_| error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_times() {
        assert_eq!(parse_at("123", 0), Ok(123));
        assert_eq!(parse_at("+30s", 1_000), Ok(30_000_001_000));
        assert_eq!(parse_at("+1.5", 0), Ok(1_500_000_000));
        assert_eq!(parse_at("+250ms", 0), Ok(250_000_000));
        assert!(parse_at("+5 parsecs", 0).is_err());
        assert!(parse_at("-5s", 0).is_err());
        assert!(parse_at("yesterday", 0).unwrap_err().contains("--at"));
    }
}
