//! Draws one frame: status line, process tree, details of the selected process, findings,
//! legend. Everything shown that a process controls is sanitized before it gets here or here.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row as TableRow, Table, Wrap};

use tracer_core::event::Finding;
use tracer_core::model::Model;
use tracer_core::sanitize::sanitize;
use tracer_core::words::{duration, signal_name};

use super::feed::Feed;
use super::view::{Mode, Row, View};

pub const DAEMONIC: Style = Style::new().fg(Color::Magenta);
pub const ORPHAN: Style = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
pub const EXITED: Style = Style::new()
    .fg(Color::DarkGray)
    .add_modifier(Modifier::CROSSED_OUT);
pub const MATCH: Style = Style::new()
    .fg(Color::Cyan)
    .add_modifier(Modifier::UNDERLINED);
const FINDING: Style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
const HEADER: Style = Style::new().add_modifier(Modifier::BOLD);
const DIM: Style = Style::new().fg(Color::DarkGray);

/// What a frame shows besides the view.
pub struct Screen<'a> {
    /// `tracer watch`, `tracer replay trace.jsonl`.
    pub name: &'a str,
    /// Counters: processes, events/s, lost, uptime.
    pub status: String,
    pub model: &'a Model,
    pub feed: &'a Feed,
    /// Now, in ns since boot: ages are measured to it.
    pub now: u64,
    /// When capture (or the trace) started: finding times are shown from it.
    pub started: u64,
    /// Replay: where the time cursor is, and the keys that move it.
    pub timeline: Option<String>,
}

/// The style of a row: exited over orphan over daemonic, so each stands out from the next.
pub fn row_style(row: &Row) -> Style {
    let mut style = if row.exited {
        EXITED
    } else if row.orphan {
        ORPHAN
    } else if row.daemonic {
        DAEMONIC
    } else {
        Style::new()
    };
    if row.matched {
        style = style.patch(MATCH);
    }
    style
}

pub fn draw(frame: &mut Frame, view: &mut View, screen: &Screen) {
    let area = frame.area();
    let timeline_height = u16::from(screen.timeline.is_some());
    let [status, timeline, body, legend] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(timeline_height),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_status(frame, status, view, screen);
    if let Some(text) = &screen.timeline {
        frame.render_widget(
            Paragraph::new(text.as_str()).style(Style::new().fg(Color::Cyan)),
            timeline,
        );
    }
    if body.width >= 100 {
        let [tree, side] =
            Layout::horizontal([Constraint::Percentage(62), Constraint::Percentage(38)])
                .areas(body);
        let [details, findings] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(side);
        draw_tree(frame, tree, view);
        draw_details(frame, details, view, screen);
        draw_findings(frame, findings, screen);
    } else {
        let [tree, findings] =
            Layout::vertical([Constraint::Min(3), Constraint::Length(8)]).areas(body);
        draw_tree(frame, tree, view);
        draw_findings(frame, findings, screen);
    }
    draw_legend(frame, legend, view);
    if view.mode == Mode::Help {
        draw_help(frame, area);
    }
}

fn draw_status(frame: &mut Frame, area: Rect, view: &View, screen: &Screen) {
    let mut spans = vec![
        Span::styled(format!("{} ", screen.name), HEADER),
        Span::raw(screen.status.clone()),
    ];
    if view.paused {
        spans.push(Span::styled(
            "  PAUSED",
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
    }
    if let Some(pid) = view.focus {
        spans.push(Span::styled(format!("  focus {pid}"), HEADER));
    }
    if let Some(role) = &view.role_filter {
        spans.push(Span::styled(format!("  role {}", sanitize(role)), HEADER));
    }
    if view.orphans_only {
        spans.push(Span::styled("  live orphans only", HEADER));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_tree(frame: &mut Frame, area: Rect, view: &mut View) {
    let block = Block::bordered().title(" processes ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // One line for the column header.
    let height = inner.height.saturating_sub(1) as usize;
    view.scroll(height);
    let rows = view
        .rows
        .iter()
        .enumerate()
        .skip(view.offset)
        .take(height)
        .map(|(i, row)| {
            let marker = match (row.children, row.collapsed) {
                (0, _) => "",
                (_, true) => "▸ ",
                (_, false) => "▾ ",
            };
            let hidden = if row.collapsed {
                format!("  [+{}]", row.children)
            } else {
                String::new()
            };
            let mut style = row_style(row);
            if i == view.cursor {
                style = style.add_modifier(Modifier::REVERSED);
            }
            TableRow::new([
                Cell::from(row.key.pid.to_string()),
                Cell::from(row.role.clone()),
                Cell::from(format!("{}{marker}{}{hidden}", row.prefix, row.title)),
                Cell::from(duration(row.age_ns)),
                Cell::from(row.state.clone()),
                Cell::from(row.flags()),
            ])
            .style(style)
        });
    let table = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(16),
            Constraint::Fill(1),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Length(4),
        ],
    )
    .header(TableRow::new(["PID", "ROLE", "TITLE", "AGE", "STATE", "FLAG"]).style(HEADER));
    frame.render_widget(table, inner);
}

fn labelled<'a>(label: &'a str, value: String) -> Line<'a> {
    Line::from(vec![
        Span::styled(format!("{label:<9}"), HEADER),
        Span::raw(value),
    ])
}

fn draw_details(frame: &mut Frame, area: Rect, view: &View, screen: &Screen) {
    let block = Block::bordered().title(" selected ");
    let mut lines: Vec<Line> = Vec::new();
    let model = screen.model;
    if let Some(row) = view.selected_row() {
        lines.push(Line::styled(
            format!("{} {}", row.key.pid, row.title),
            row_style(row).add_modifier(Modifier::BOLD),
        ));
        if !row.role.is_empty() {
            lines.push(labelled("role", row.role.clone()));
        }
        lines.push(labelled("state", row.state.clone()));
        match model.find(row.key).filter(|_| !row.exited) {
            Some(index) => {
                let process = model.get(index);
                let asked = process
                    .class
                    .started_by
                    .map(|by| format!(", at the request of {by}"))
                    .unwrap_or_default();
                lines.push(labelled(
                    "parent",
                    format!(
                        "{} (created by {}{asked})",
                        process.ppid, process.original_ppid
                    ),
                ));
                if let Some(orphaning) = &process.orphaned {
                    lines.push(Line::styled(
                        format!(
                            "orphaned {} ago: parent {} [{}] exited, adopted by {}",
                            duration(screen.now.saturating_sub(orphaning.ts)),
                            orphaning.parent.pid,
                            sanitize(&orphaning.parent_comm),
                            orphaning.new_ppid
                        ),
                        ORPHAN,
                    ));
                }
                if let Some(why) = process.class.explain_daemonic() {
                    lines.push(Line::styled(
                        format!("daemonic: {}", sanitize(&why)),
                        DAEMONIC,
                    ));
                }
                if let Some(conflict) = &process.class.conflict {
                    lines.push(labelled("conflict", sanitize(conflict).into_owned()));
                }
                if let Some(read) = &process.interpreter {
                    lines.push(labelled("python", sanitize(&read.describe()).into_owned()));
                }
                for (name, value) in &process.class.identity {
                    lines.push(labelled("identity", format!("{name}={}", sanitize(value))));
                }
                for signal in &process.signals {
                    lines.push(labelled(
                        "signal",
                        format!(
                            "{} from {} [{}] {} ago",
                            signal_name(signal.sig),
                            signal.sender.pid,
                            sanitize(&signal.sender_comm),
                            duration(screen.now.saturating_sub(signal.ts))
                        ),
                    ));
                }
                let lineage: Vec<_> = model.lineage(index).collect();
                if !lineage.is_empty() {
                    lines.push(Line::styled("lineage (who created whom)", HEADER));
                    for (_, ancestor) in lineage {
                        let gone = if ancestor.is_alive() { "" } else { " (exited)" };
                        let style = if ancestor.is_alive() {
                            Style::new()
                        } else {
                            EXITED.remove_modifier(Modifier::CROSSED_OUT)
                        };
                        let asked = ancestor
                            .class
                            .started_by
                            .map(|by| format!(" (at the request of {by})"))
                            .unwrap_or_default();
                        lines.push(Line::styled(
                            format!(
                                "  ← {} {}{gone}{asked}",
                                ancestor.key.pid,
                                sanitize(&ancestor.title())
                            ),
                            style,
                        ));
                    }
                }
            }
            None if row.exited => {
                lines.push(Line::styled("exited: its record is kept a while", DIM));
            }
            None => {}
        }
        for finding in screen.feed.findings().filter(|f| {
            f.pid == row.key.pid && f.start_time == row.key.start_time
                || f.parent_pid == Some(row.key.pid)
        }) {
            lines.push(Line::styled(
                format!("finding: {}", sanitize(&finding.summary)),
                FINDING,
            ));
        }
    } else {
        lines.push(Line::styled("no process selected", DIM));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn finding_lines<'a>(finding: &Finding, started: u64) -> Vec<Line<'a>> {
    let mut lines = vec![Line::from(vec![
        Span::styled(
            format!(
                "+{} {} ",
                duration(finding.ts.saturating_sub(started)),
                serde_json::to_value(finding.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            ),
            FINDING,
        ),
        Span::raw(sanitize(&finding.summary).into_owned()),
    ])];
    for evidence in &finding.evidence {
        lines.push(Line::styled(
            format!(
                "  because {} {}: {}",
                evidence.pid,
                sanitize(&evidence.title),
                sanitize(&evidence.reason)
            ),
            DAEMONIC,
        ));
    }
    if let Some(death) = &finding.death {
        lines.push(Line::styled(
            format!("  died: {}", sanitize(&death.description)),
            DIM,
        ));
    }
    lines
}

fn draw_findings(frame: &mut Frame, area: Rect, screen: &Screen) {
    let block = Block::bordered().title(format!(
        " findings ({}, newest first) ",
        screen.feed.findings_total
    ));
    let room = area.height.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = Vec::new();
    for finding in screen.feed.findings().rev() {
        if lines.len() >= room {
            break;
        }
        lines.extend(finding_lines(finding, screen.started));
    }
    if lines.is_empty() {
        lines.push(Line::styled("none yet", DIM));
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn draw_legend(frame: &mut Frame, area: Rect, view: &View) {
    let spans = if view.mode == Mode::Search {
        vec![
            Span::styled("search: ", HEADER),
            Span::raw(sanitize(&view.search).into_owned()),
            Span::styled("▏ Enter finds, Esc cancels", DIM),
        ]
    } else {
        let mut spans = vec![
            Span::styled("daemonic", DAEMONIC),
            Span::raw(" "),
            Span::styled("orphan", ORPHAN),
            Span::raw(" "),
            Span::styled("exited", EXITED),
            Span::raw(" "),
            Span::styled("match", MATCH),
            Span::styled(
                "  flags D daemonic O orphan X exited K killed | ? help  q quit",
                DIM,
            ),
        ];
        if !view.search.is_empty() {
            spans.push(Span::styled(
                format!("  /{} (n next)", sanitize(&view.search)),
                MATCH,
            ));
        }
        spans
    };
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub const HELP: &[(&str, &str)] = &[
    ("↑ ↓  j k", "move"),
    ("PgUp PgDn  g G", "page, top, bottom"),
    ("← →  h l", "collapse (or go to parent), expand"),
    ("c  e", "toggle the subtree, expand all"),
    ("/  n N", "search title, pid or role; next, previous match"),
    (
        "o  O",
        "next orphan; show only the live orphans (or all again)",
    ),
    ("r  R", "filter by the next role, clear the filter"),
    ("f  F", "focus the selected subtree, unfocus"),
    ("p  space", "pause the view (capture goes on)"),
    ("[ ]", "replay: step back, forward"),
    ("- +", "replay: smaller, bigger steps"),
    ("{ }", "replay: previous, next finding"),
    ("0 $", "replay: start, end of the trace"),
    ("?", "this help"),
    ("q  Ctrl-C", "quit"),
];

fn draw_help(frame: &mut Frame, area: Rect) {
    let width = 64.min(area.width);
    let height = (HELP.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::styled(format!("{keys:<16}"), HEADER),
                Span::raw(*what),
            ])
        })
        .collect();
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(" keys (any key closes) ")),
        popup,
    );
}
