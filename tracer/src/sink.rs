//! Where events end up: a trace file, or a terminal.

use std::io::{BufWriter, IsTerminal, Stdout, Write};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use crossterm::{cursor, execute, queue, terminal};

use crate::event::Event;
use crate::ingest::{Sink, Status};
use crate::model::Model;
use crate::render::{TreeStyle, event_line, orphan_lines, status_line, tree_lines};
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
    /// The tree, redrawn in place (a terminal).
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

/// The terminal view of `watch`.
pub struct TerminalSink {
    mode: WatchMode,
    style: TreeStyle,
    /// Flushed at each batch: one write per batch, not per event.
    out: BufWriter<Stdout>,
    last_draw: Option<Instant>,
    dirty: bool,
    on_screen: bool,
}

/// Redraws at most this often, however fast events arrive.
const REDRAW_INTERVAL: Duration = Duration::from_millis(250);

impl TerminalSink {
    pub fn new(mode: WatchMode, kernel_threads: bool) -> Self {
        TerminalSink {
            mode,
            style: TreeStyle {
                color: std::io::stdout().is_terminal(),
                kernel_threads,
                width: None,
            },
            out: BufWriter::with_capacity(64 << 10, std::io::stdout()),
            last_draw: None,
            dirty: true,
            on_screen: false,
        }
    }

    fn draw(&mut self, model: &Model, status: &Status) -> Result<()> {
        let (columns, rows) = terminal::size().unwrap_or((120, 40));
        self.style.width = Some(columns as usize);
        let mut frame = String::new();
        let mut header = format!(
            "tracer watch | {} | Ctrl-C quits",
            status_line(model, status)
        );
        header.truncate(
            header
                .char_indices()
                .nth(columns as usize)
                .map_or(header.len(), |(i, _)| i),
        );
        frame.push_str(&header);
        frame.push_str("\r\n");
        // Orphans first: on a busy host the tree puts them out of sight.
        let orphans = orphan_lines(model, 5, self.style.width);
        for line in &orphans {
            if self.style.color {
                frame.push_str("\x1b[33m");
                frame.push_str(line);
                frame.push_str("\x1b[0m\x1b[K\r\n");
            } else {
                frame.push_str(line);
                frame.push_str("\x1b[K\r\n");
            }
        }
        let lines = tree_lines(model, &self.style);
        let room = (rows as usize).saturating_sub(2 + orphans.len());
        for line in lines.iter().take(room) {
            frame.push_str(line);
            frame.push_str("\x1b[K\r\n");
        }
        if lines.len() > room {
            frame.push_str(&format!("... {} more", lines.len() - room));
        }
        queue!(
            self.out,
            cursor::MoveTo(0, 0),
            terminal::Clear(terminal::ClearType::All)
        )?;
        self.out.write_all(frame.as_bytes())?;
        self.out.flush()?;
        Ok(())
    }
}

impl Sink for TerminalSink {
    fn header(&mut self, _header: &TraceHeader) -> Result<()> {
        if self.mode == WatchMode::Tree {
            execute!(self.out, terminal::EnterAlternateScreen, cursor::Hide)
                .context("cannot set up the terminal")?;
            self.on_screen = true;
        }
        Ok(())
    }

    fn event(&mut self, event: &Event, _model: &Model) -> Result<()> {
        match self.mode {
            WatchMode::Tree => self.dirty = true,
            // The bootstrap snapshot is the starting state, not news.
            WatchMode::Lines if matches!(event, Event::Snapshot(_)) => {}
            WatchMode::Lines => {
                writeln!(self.out, "{}", event_line(event, self.style.color))
                    .context("cannot write to standard output")?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, model: &Model, status: &Status) -> Result<()> {
        match self.mode {
            WatchMode::Lines => self.out.flush().context("cannot write to standard output"),
            WatchMode::Tree => {
                let due = self
                    .last_draw
                    .is_none_or(|last| last.elapsed() >= REDRAW_INTERVAL);
                if self.dirty && due {
                    self.draw(model, status)?;
                    self.dirty = false;
                    self.last_draw = Some(Instant::now());
                }
                Ok(())
            }
        }
    }

    fn finish(&mut self, model: &Model, status: &Status) -> Result<()> {
        if self.on_screen {
            execute!(self.out, cursor::Show, terminal::LeaveAlternateScreen)?;
            self.on_screen = false;
        }
        writeln!(self.out, "tracer watch: {}", status_line(model, status))?;
        self.out.flush()?;
        Ok(())
    }
}

impl Drop for TerminalSink {
    fn drop(&mut self) {
        if self.on_screen {
            let _ = execute!(self.out, cursor::Show, terminal::LeaveAlternateScreen);
        }
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
