//! The full-screen terminal UI of `watch` and `replay --tui`: a collapsible process tree with
//! details, findings, status and legend, drawn with ratatui from the model at a bounded frame
//! rate, never per event.

pub mod draw;
pub mod feed;
pub mod view;

use std::io::Stdout;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use crossterm::event::{self as term_event, Event as TermEvent, KeyEventKind};
use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::{Backend, CrosstermBackend};
use tokio::sync::Notify;

use tracer_core::event::Event;
use tracer_core::ingest::{Sink, Status};
use tracer_core::model::Model;
use tracer_core::trace::TraceHeader;
use tracer_core::words::duration;

use crate::render::status_line;

use draw::Screen;
use feed::Feed;
use view::{Action, View};

/// A trace replayed once, with the TUI's feed at each checkpoint.
pub type Timeline = tracer_core::history::Timeline<Feed>;
pub type State = tracer_core::history::State<Feed>;

/// The status line of a replayed moment.
pub fn replayed_status(state: &State) -> String {
    format!(
        "{} processes, {} daemonic, {} orphaned | {} events | lost {}",
        state.model.live_count(),
        state.model.daemonic_count(),
        state.model.orphan_count(),
        state.events,
        state.model.stats.lost.total()
    )
}

/// Draws at most this often, however fast events arrive.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(100);

/// What the command line asked the view to start with.
#[derive(Clone, Debug, Default)]
pub struct ViewOptions {
    pub pid: Option<u32>,
    pub role: Option<String>,
    pub orphans: bool,
    pub kernel_threads: bool,
}

impl ViewOptions {
    pub fn view(&self) -> View {
        View {
            focus: self.pid,
            role_filter: self.role.clone(),
            orphans_only: self.orphans,
            kernel_threads: self.kernel_threads,
            ..View::default()
        }
    }
}

/// The terminal in raw mode on the alternate screen; restored when dropped, also on errors.
struct Term {
    terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl Term {
    fn enter() -> Result<Term> {
        terminal::enable_raw_mode().context("cannot set up the terminal")?;
        let mut stdout = std::io::stdout();
        if let Err(error) = execute!(stdout, terminal::EnterAlternateScreen, cursor::Hide) {
            let _ = terminal::disable_raw_mode();
            return Err(error).context("cannot set up the terminal");
        }
        let terminal =
            Terminal::new(CrosstermBackend::new(stdout)).context("cannot set up the terminal")?;
        Ok(Term { terminal })
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        let _ = terminal::disable_raw_mode();
        let backend = self.terminal.backend_mut();
        let _ = execute!(backend, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = std::io::Write::flush(backend);
    }
}

/// Draws one frame on any backend: the terminal, or a test buffer.
pub fn render<B: Backend>(
    terminal: &mut Terminal<B>,
    view: &mut View,
    screen: &Screen,
) -> Result<()> {
    view.refresh(screen.model, screen.feed, screen.now);
    terminal
        .draw(|frame| draw::draw(frame, view, screen))
        .map_err(|e| anyhow::anyhow!("cannot draw: {e:?}"))?;
    Ok(())
}

/// Keys waiting on the terminal, without blocking.
fn pending_keys(mut wait: Duration) -> Result<Vec<TermEvent>> {
    let mut events = Vec::new();
    while term_event::poll(wait).context("cannot read the terminal")? {
        events.push(term_event::read().context("cannot read the terminal")?);
        wait = Duration::ZERO;
    }
    Ok(events)
}

/// The live TUI of `watch`: a sink that remembers what the tree needs, answers keys at each
/// flush, and redraws at most every [`FRAME_INTERVAL`].
pub struct TuiSink {
    term: Option<Term>,
    view: View,
    feed: Feed,
    started: u64,
    last_draw: Option<Instant>,
    dirty: bool,
    /// Notified when the operator quits: capture stops as on SIGINT.
    quit: Rc<Notify>,
}

impl TuiSink {
    pub fn new(options: &ViewOptions, quit: Rc<Notify>) -> TuiSink {
        TuiSink {
            term: None,
            view: options.view(),
            feed: Feed::default(),
            started: 0,
            last_draw: None,
            dirty: true,
            quit,
        }
    }
}

impl Sink for TuiSink {
    fn header(&mut self, header: &TraceHeader) -> std::io::Result<()> {
        self.started = header.ts;
        self.term = Some(Term::enter().map_err(std::io::Error::other)?);
        Ok(())
    }

    fn event(&mut self, event: &Event, model: &Model) -> std::io::Result<()> {
        self.feed.observe(event, model);
        self.dirty = true;
        Ok(())
    }

    fn flush(&mut self, model: &Model, status: &Status) -> std::io::Result<()> {
        self.redraw(model, status).map_err(std::io::Error::other)
    }

    fn finish(&mut self, model: &Model, status: &Status) -> std::io::Result<()> {
        self.term = None;
        println!("tracer watch: {}", status_line(model, status));
        Ok(())
    }
}

impl TuiSink {
    /// Answers the keys waiting, and redraws when they or the model asked for it.
    fn redraw(&mut self, model: &Model, status: &Status) -> Result<()> {
        let Some(term) = &mut self.term else {
            return Ok(());
        };
        let mut touched = false;
        for input in pending_keys(Duration::ZERO)? {
            match input {
                TermEvent::Key(key) if key.kind != KeyEventKind::Release => {
                    touched = true;
                    if self.view.key(key) == Action::Quit {
                        self.quit.notify_one();
                    }
                }
                TermEvent::Resize(..) => touched = true,
                _ => {}
            }
        }
        let due = self
            .last_draw
            .is_none_or(|last| last.elapsed() >= FRAME_INTERVAL);
        if touched || (self.dirty && due) {
            let screen = Screen {
                name: "tracer watch",
                status: status_line(model, status),
                model,
                feed: &self.feed,
                now: status.now_ts.max(model.now()),
                started: self.started,
                timeline: None,
            };
            render(&mut term.terminal, &mut self.view, &screen)?;
            self.dirty = false;
            self.last_draw = Some(Instant::now());
        }
        Ok(())
    }
}

/// `replay --tui`: the same view over a trace, with a time cursor to scrub.
pub fn replay(name: &str, timeline: &Timeline, start_at: u64, options: &ViewOptions) -> Result<()> {
    let mut term = Term::enter()?;
    let mut view = options.view();
    let mut at = start_at;
    let mut step: u64 = 1_000_000_000;
    let mut state = timeline.at(at)?;
    loop {
        let status = replayed_status(&state);
        let position = format!(
            "at +{} of {} ({at} ns since boot) | step {} | [ ] step  - + step size  {{ }} findings ({})  0 $ start, end",
            duration(at.saturating_sub(timeline.start())),
            duration(timeline.end().saturating_sub(timeline.start())),
            duration(step),
            timeline.findings().len()
        );
        let screen = Screen {
            name,
            status,
            model: &state.model,
            feed: &state.sink,
            now: at,
            started: timeline.start(),
            timeline: Some(position),
        };
        render(&mut term.terminal, &mut view, &screen)?;
        let TermEvent::Key(key) = term_event::read().context("cannot read the terminal")? else {
            continue;
        };
        if key.kind == KeyEventKind::Release {
            continue;
        }
        let target = match view.key(key) {
            Action::Quit => break,
            Action::None => continue,
            Action::Step(n) if n < 0 => at.saturating_sub(step),
            Action::Step(_) => at.saturating_add(step),
            Action::StepScale(up) => {
                step = if up {
                    (step * 10).min(3_600_000_000_000)
                } else {
                    (step / 10).max(1_000_000)
                };
                continue;
            }
            Action::Finding(forward) => timeline.findings().next_time(at, forward).unwrap_or(at),
            Action::Edge(end) => {
                if end {
                    timeline.end()
                } else {
                    timeline.start()
                }
            }
        };
        let target = target.clamp(timeline.start(), timeline.end());
        if target != at {
            at = target;
            state = timeline.at(at)?;
        }
    }
    Ok(())
}

/// A drawn frame as JSON: per row, runs of text with one style each (colours by name). What
/// the screenshot script turns into a PNG.
pub fn frame_json(buffer: &ratatui::buffer::Buffer) -> serde_json::Value {
    use ratatui::style::Modifier;
    let area = buffer.area;
    let mut rows = Vec::new();
    for y in area.top()..area.bottom() {
        let mut runs: Vec<serde_json::Value> = Vec::new();
        let mut current: Option<(String, String, String, u16)> = None;
        for x in area.left()..area.right() {
            let cell = &buffer[(x, y)];
            let style = (
                format!("{:?}", cell.fg),
                format!("{:?}", cell.bg),
                cell.modifier.bits(),
            );
            match &mut current {
                Some((text, fg, bg, bits))
                    if *fg == style.0 && *bg == style.1 && *bits == style.2 =>
                {
                    text.push_str(cell.symbol());
                }
                _ => {
                    if let Some(run) = current.take() {
                        runs.push(run_json(run));
                    }
                    current = Some((cell.symbol().to_owned(), style.0, style.1, style.2));
                }
            }
        }
        runs.extend(current.map(run_json));
        rows.push(serde_json::Value::Array(runs));
    }
    fn run_json((text, fg, bg, bits): (String, String, String, u16)) -> serde_json::Value {
        let modifier = Modifier::from_bits_truncate(bits);
        serde_json::json!({
            "text": text,
            "fg": fg,
            "bg": bg,
            "bold": modifier.contains(Modifier::BOLD),
            "reversed": modifier.contains(Modifier::REVERSED),
            "crossed_out": modifier.contains(Modifier::CROSSED_OUT),
            "underlined": modifier.contains(Modifier::UNDERLINED),
        })
    }
    serde_json::json!({ "width": area.width, "height": area.height, "rows": rows })
}

#[cfg(test)]
mod tests;
