//! Where the app's events end up: a trace file, or a terminal.

use std::io::{BufWriter, IsTerminal, Result, Stdout, Write};

use tracer_core::event::Event;
use tracer_core::ingest::{Sink, Status};
use tracer_core::model::Model;
use tracer_core::trace::TraceHeader;

use crate::files::{TraceFile, finish_trace};
use crate::render::{event_line, orphan_lines, status_line};

/// Records every event to a trace file, synced to disk when capture ends.
pub struct RecordSink {
    writer: TraceFile,
}

impl RecordSink {
    pub fn new(writer: TraceFile) -> Self {
        RecordSink { writer }
    }

    pub fn lines(&self) -> u64 {
        self.writer.lines
    }
}

impl Sink for RecordSink {
    fn header(&mut self, header: &TraceHeader) -> Result<()> {
        self.writer.write_header(header)
    }

    fn event(&mut self, event: &Event, _model: &Model) -> Result<()> {
        self.writer.write_event(event)
    }

    fn flush(&mut self, _model: &Model, _status: &Status) -> Result<()> {
        self.writer.flush()
    }

    fn finish(&mut self, _model: &Model, _status: &Status) -> Result<()> {
        finish_trace(&mut self.writer)
    }
}

/// How `watch` shows the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchMode {
    /// The full-screen tree (a terminal): see [`crate::tui`].
    Tree,
    /// One line per event (a pipe, a file, or `--plain`).
    Lines,
}

impl WatchMode {
    pub fn detect(plain: bool) -> WatchMode {
        if plain || !std::io::stdout().is_terminal() {
            WatchMode::Lines
        } else {
            WatchMode::Tree
        }
    }
}

/// `watch --plain`: one line per event, and the status at the end.
pub struct TerminalSink {
    color: bool,
    /// Flushed at each batch: one write per batch, not per event.
    out: BufWriter<Stdout>,
}

impl Default for TerminalSink {
    fn default() -> Self {
        TerminalSink {
            color: std::io::stdout().is_terminal(),
            out: BufWriter::with_capacity(64 << 10, std::io::stdout()),
        }
    }
}

impl Sink for TerminalSink {
    fn event(&mut self, event: &Event, _model: &Model) -> Result<()> {
        // The bootstrap snapshot is the starting state, not news.
        if !matches!(event, Event::Snapshot(_)) {
            writeln!(self.out, "{}", event_line(event, self.color))?;
        }
        Ok(())
    }

    fn flush(&mut self, _model: &Model, _status: &Status) -> Result<()> {
        self.out.flush()
    }

    fn finish(&mut self, model: &Model, status: &Status) -> Result<()> {
        for line in closing_lines(model, status) {
            writeln!(self.out, "{line}")?;
        }
        self.out.flush()?;
        Ok(())
    }
}

/// What `watch --plain` says as it stops: the orphans still alive, then the status.
fn closing_lines(model: &Model, status: &Status) -> Vec<String> {
    orphan_lines(model, MAX_ORPHAN_LINES, None)
        .into_iter()
        .chain([status_line(model, status)])
        .map(|line| format!("tracer watch: {line}"))
        .collect()
}

/// Live orphans `watch --plain` lists as it stops; the rest are counted.
const MAX_ORPHAN_LINES: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_core::analysis::Analyzer;
    use tracer_core::fixtures::{self, key};
    use tracer_core::ingest::{NullSink, Pipeline};
    use tracer_core::roles::Rules;

    #[test]
    fn watch_lists_the_live_orphans_as_it_stops() {
        const S: u64 = 1_000_000_000;
        let mut pipeline = Pipeline::new(
            Model::new(10_000_000),
            Analyzer::new(Rules::builtin()),
            NullSink,
        );
        let (parent, child) = (key(20, 2 * S), key(21, 3 * S));
        for event in [
            fixtures::snapshot(S, key(1, 0), 0, "/sbin/init"),
            fixtures::fork(2 * S, parent, key(1, 0), "sh"),
            fixtures::fork(3 * S, child, parent, "sh"),
            fixtures::exit(4 * S, parent, 1, (Some(0), None), 1),
        ] {
            pipeline.apply(&event).unwrap();
        }
        let lines = closing_lines(&pipeline.model, &Status::default());
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(
            lines[0],
            "tracer watch: orphan 21 /sbin/init under 1, parent 20 [sh] died 0ms ago"
        );
        assert!(lines[1].starts_with("tracer watch: 2 processes, 0 daemonic, 1 orphaned"));
    }
}
