//! Where events end up: a trace file, or a terminal.

use std::io::{BufWriter, IsTerminal, Stdout, Write};

use anyhow::{Context as _, Result};

use crate::event::Event;
use crate::ingest::{Sink, Status};
use crate::model::Model;
use crate::render::{event_line, status_line};
use crate::trace::{TraceHeader, TraceWriter};

/// Records every event to a trace file.
pub struct RecordSink {
    writer: TraceWriter,
}

impl RecordSink {
    pub fn new(writer: TraceWriter) -> Self {
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
        self.writer.finish()
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
    fn header(&mut self, _header: &TraceHeader) -> Result<()> {
        Ok(())
    }

    fn event(&mut self, event: &Event, _model: &Model) -> Result<()> {
        // The bootstrap snapshot is the starting state, not news.
        if !matches!(event, Event::Snapshot(_)) {
            writeln!(self.out, "{}", event_line(event, self.color))
                .context("cannot write to standard output")?;
        }
        Ok(())
    }

    fn flush(&mut self, _model: &Model, _status: &Status) -> Result<()> {
        self.out.flush().context("cannot write to standard output")
    }

    fn finish(&mut self, model: &Model, status: &Status) -> Result<()> {
        writeln!(self.out, "tracer watch: {}", status_line(model, status))?;
        self.out.flush()?;
        Ok(())
    }
}

/// Discards events: for callers that only want the model.
pub struct NullSink;

impl Sink for NullSink {
    fn header(&mut self, _header: &TraceHeader) -> Result<()> {
        Ok(())
    }

    fn event(&mut self, _event: &Event, _model: &Model) -> Result<()> {
        Ok(())
    }

    fn flush(&mut self, _model: &Model, _status: &Status) -> Result<()> {
        Ok(())
    }

    fn finish(&mut self, _model: &Model, _status: &Status) -> Result<()> {
        Ok(())
    }
}
