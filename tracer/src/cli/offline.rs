//! The commands that read a recording: `replay`, `report`, `export`, and `rules`. Each opens
//! its trace once and replays it once: a time counted from the end or from a finding is
//! resolved on the same [`Timeline`] that then answers the command.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use tracer_core::export::{self, Selection};
use tracer_core::history::{FindingIndex, Recording, Timeline};
use tracer_core::ingest::{NullSink, Sink};
use tracer_core::model::Model;
use tracer_core::replay::replay;
use tracer_core::report;
use tracer_core::roles::Rules;
use tracer_core::sanitize::{escape_json_for_terminal, sanitize};
use tracer_core::trace::TraceHeader;
use tracer_core::words::duration;

use super::args::{ExportFormat, ReadArgs, ViewArgs};
use super::inputs::{display, histories, one_history};
use super::time::{Anchors, needs_whole_trace, parse_at};
use crate::files::{load_rules, write_atomic};
use crate::render::{TreeStyle, orphan_lines, tree_lines};
use crate::tui::{self, replayed_status};

/// The optional `--rules FILE` of an offline command.
fn rules_from(path: Option<&Path>) -> Result<Option<Rules>> {
    path.map(|path| load_rules(Some(path))).transpose()
}

/// Reads a history whole and replays it once.
fn timeline<S: Sink + Clone + Default>(
    files: &[PathBuf],
    read: ReadArgs,
    rules: Option<Rules>,
) -> Result<Timeline<S>> {
    let recording = Recording::read(one_history(files)?.open(read.lenient)?)?;
    Ok(Timeline::build(recording, rules)?)
}

/// A time given on the command line, counted on `timeline`.
fn time_on<S>(timeline: &Timeline<S>, text: &str) -> Result<u64> {
    let findings = timeline.findings().times();
    let anchors = Anchors {
        start: timeline.start(),
        end: Some(timeline.history().end),
        findings: Some(&findings),
    };
    parse_at(text, &anchors).map_err(|e| anyhow!(e))
}

fn print_read_notes(notes: &[String]) {
    for note in notes {
        eprintln!("tracer: {}", sanitize(note));
    }
}

fn frame_size(text: &str) -> Result<(u16, u16)> {
    text.split_once('x')
        .and_then(|(c, r)| Some((c.parse().ok()?, r.parse().ok()?)))
        .filter(|&(c, r): &(u16, u16)| (20..=1000).contains(&c) && (5..=1000).contains(&r))
        .ok_or_else(|| anyhow!("--frame {text:?}: give COLSxROWS, like 160x48"))
}

pub(super) struct ReplayArgs<'a> {
    pub(super) files: &'a [PathBuf],
    pub(super) rules: Option<&'a Path>,
    pub(super) at: Option<&'a str>,
    pub(super) kernel_threads: bool,
    pub(super) json: bool,
    pub(super) read: ReadArgs,
    pub(super) tui: bool,
    pub(super) findings: bool,
    pub(super) view: &'a ViewArgs,
    pub(super) frame: Option<&'a str>,
}

/// `replay --findings`: the findings, numbered as `finding:N` counts them.
fn list_findings(files: &[PathBuf], read: ReadArgs, rules: Option<Rules>) -> Result<()> {
    let reader = one_history(files)?.open(read.lenient)?;
    let (pipeline, header, _) = replay(reader, None, rules, FindingIndex::default())?;
    let findings = &pipeline.sink;
    for (i, finding) in findings.as_slice().iter().enumerate() {
        println!(
            "finding:{} +{} {} {}",
            i + 1,
            duration(finding.ts.saturating_sub(header.ts)),
            finding.pid,
            sanitize(&finding.summary)
        );
    }
    if findings.is_empty() {
        println!("no findings");
    }
    Ok(())
}

/// `replay --tui`, and `replay --frame` (one frame as JSON, for screenshots and tests).
fn replay_screen(args: &ReplayArgs, rules: Option<Rules>) -> Result<()> {
    let timeline: tui::Timeline = timeline(args.files, args.read, rules)?;
    let at = match args.at {
        Some(text) => time_on(&timeline, text)?,
        None => timeline.end(),
    };
    let options = args.view.options(args.kernel_threads);
    let name = format!("tracer replay {}", sanitize(&display(args.files)));
    let Some(frame) = args.frame else {
        return tui::replay(&name, &timeline, at, &options);
    };
    let (columns, rows) = frame_size(frame)?;
    let state = timeline.at(at)?;
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(columns, rows))
        .map_err(|e| anyhow!("cannot draw: {e:?}"))?;
    let mut view = options.view();
    let screen = tui::draw::Screen {
        name: &name,
        status: replayed_status(&state),
        model: &state.model,
        feed: &state.sink,
        now: at,
        started: timeline.start(),
        timeline: Some(format!(
            "at +{} of {}",
            duration(at.saturating_sub(timeline.start())),
            duration(timeline.end().saturating_sub(timeline.start()))
        )),
    };
    tui::render(&mut terminal, &mut view, &screen)?;
    let out = serde_json::to_string(&tui::frame_json(terminal.backend().buffer()))
        .context("cannot encode the frame")?;
    println!("{}", escape_json_for_terminal(&out));
    Ok(())
}

/// What the text and JSON forms of `replay` print a tree from.
struct Replayed {
    model: Model,
    header: TraceHeader,
    /// Observed events applied, and the latest of their times.
    events: u64,
    last_ts: u64,
}

pub(super) fn replay_command(args: &ReplayArgs) -> Result<()> {
    let rules = rules_from(args.rules)?;
    if args.findings {
        return list_findings(args.files, args.read, rules);
    }
    if args.tui || args.frame.is_some() {
        if args.tui && !std::io::stdout().is_terminal() {
            bail!("replay --tui needs a terminal");
        }
        return replay_screen(args, rules);
    }
    let replayed = match args.at {
        // Counted from the end or a finding: those are known once the trace is replayed.
        Some(text) if needs_whole_trace(text) => {
            let timeline: Timeline<NullSink> = timeline(args.files, args.read, rules)?;
            let state = timeline.at(time_on(&timeline, text)?)?;
            print_read_notes(&timeline.recording().read_notes());
            Replayed {
                model: state.model,
                header: timeline.header().clone(),
                events: state.applied,
                last_ts: state.last_ts,
            }
        }
        at => {
            let reader = one_history(args.files)?.open(args.read.lenient)?;
            let anchors = Anchors {
                start: reader.header().ts,
                ..Anchors::default()
            };
            let until = at
                .map(|text| parse_at(text, &anchors).map_err(|e| anyhow!(e)))
                .transpose()?;
            let (pipeline, header, summary) = replay(reader, until, rules, NullSink)?;
            print_read_notes(&summary.read_notes());
            Replayed {
                model: pipeline.model,
                header,
                events: summary.events,
                last_ts: summary.last_ts,
            }
        }
    };
    print_tree(&replayed, args)
}

fn print_tree(replayed: &Replayed, args: &ReplayArgs) -> Result<()> {
    let Replayed {
        model,
        header,
        events,
        last_ts,
    } = replayed;
    if args.json {
        let out = serde_json::to_string_pretty(&model.view()).context("cannot encode the tree")?;
        println!("{}", escape_json_for_terminal(&out));
        return Ok(());
    }
    let terminal = std::io::stdout().is_terminal();
    let style = TreeStyle {
        color: terminal,
        kernel_threads: args.kernel_threads,
        width: terminal
            .then(|| crossterm::terminal::size().ok().map(|(w, _)| w as usize))
            .flatten(),
    };
    for line in tree_lines(model, &style) {
        println!("{line}");
    }
    // On a busy host the tree puts orphans out of sight: they are listed again here.
    for line in orphan_lines(model, 20, style.width) {
        println!("-- {line}");
    }
    println!(
        "-- {} at +{} ({events} events): {} processes alive, {} orphaned, {} kernel records lost",
        sanitize(&header.host),
        duration(last_ts.saturating_sub(header.ts)),
        model.live_count(),
        model.orphan_count(),
        model.stats.lost.total()
    );
    let stats = &model.stats;
    let gaps: Vec<String> = [
        (stats.inferred, "first seen after their start"),
        (stats.vanished, "gone without an exit event"),
        (stats.stale, "late events ignored"),
        (stats.parent_resyncs, "parents corrected by later events"),
        (stats.rejected, "impossible events rejected"),
    ]
    .into_iter()
    .filter(|(count, _)| *count > 0)
    .map(|(count, what)| format!("{count} {what}"))
    .collect();
    if !gaps.is_empty() {
        println!("-- gaps in the history: {}", gaps.join(", "));
    }
    Ok(())
}

/// What part of which recording to export, and where to.
pub(super) struct ExportRequest<'a> {
    pub(super) files: &'a [PathBuf],
    pub(super) format: ExportFormat,
    pub(super) pid: Option<u32>,
    pub(super) from: Option<&'a str>,
    pub(super) to: Option<&'a str>,
    pub(super) output: Option<&'a Path>,
    pub(super) rules: Option<&'a Path>,
    pub(super) read: ReadArgs,
}

pub(super) fn export_command(request: &ExportRequest) -> Result<()> {
    let rules = rules_from(request.rules)?;
    let timeline: Timeline<NullSink> = timeline(request.files, request.read, rules)?;
    let time = |text: Option<&str>, flag: &'static str| {
        text.map(|text| time_on(&timeline, text))
            .transpose()
            .context(flag)
    };
    let selection = Selection {
        pid: request.pid,
        from: time(request.from, "--from")?,
        to: time(request.to, "--to")?,
    };
    if let (Some(from), Some(to)) = (selection.from, selection.to)
        && from > to
    {
        bail!("--from is after --to");
    }
    print_read_notes(&timeline.recording().read_notes());
    let bytes = match request.format {
        ExportFormat::Perfetto => {
            let mut bytes = serde_json::to_vec(&export::perfetto(timeline.history(), &selection)?)
                .context("cannot encode the Perfetto trace")?;
            bytes.push(b'\n');
            bytes
        }
        ExportFormat::Dot => export::dot(timeline.history(), &selection)?.into_bytes(),
        ExportFormat::Jsonl => export::jsonl(&timeline, &selection, Vec::new())?,
    };
    match request.output {
        Some(path) => {
            write_atomic(path, &bytes)?;
            eprintln!("tracer: wrote {} bytes to {}", bytes.len(), path.display());
        }
        None => {
            // The text is JSON or DOT built from sanitized or JSON-escaped strings; this makes
            // what JSON escapes lets through (C1 controls, bidi overrides) visible too.
            let text = String::from_utf8_lossy(&bytes);
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(escape_json_for_terminal(&text).as_bytes())
                .context("cannot write to standard output")?;
        }
    }
    Ok(())
}

/// `report`: one postmortem per history, several hosts (or captures) side by side.
pub(super) fn report_command(
    files: &[PathBuf],
    rules: Option<&Path>,
    json: bool,
    read: ReadArgs,
) -> Result<()> {
    let rules = rules_from(rules)?;
    let histories = histories(files)?;
    let mut reports = Vec::with_capacity(histories.len());
    for history in &histories {
        let report = report::build(history.open(read.lenient)?, rules.clone())?;
        print_read_notes(&report.read_notes);
        reports.push(report);
    }
    if let [report] = reports.as_slice() {
        if json {
            let out = serde_json::to_string_pretty(report).context("cannot encode the report")?;
            println!("{}", escape_json_for_terminal(&out));
        } else {
            print!("{}", report::text(report));
        }
        return Ok(());
    }
    if json {
        let fleet: Vec<serde_json::Value> = histories
            .iter()
            .zip(&reports)
            .map(|(history, report)| {
                serde_json::json!({
                    "host": history.header.host,
                    "boot_id": history.header.boot_id,
                    "files": history.files,
                    "report": report,
                })
            })
            .collect();
        let out = serde_json::to_string_pretty(&fleet).context("cannot encode the report")?;
        println!("{}", escape_json_for_terminal(&out));
        return Ok(());
    }
    println!("{} histories: {}", histories.len(), fleet_totals(&reports));
    for (history, report) in histories.iter().zip(&reports) {
        println!();
        println!("== {}", sanitize(&history.title()));
        print!("{}", report::text(report));
    }
    Ok(())
}

fn fleet_totals(reports: &[report::Report]) -> String {
    let hosts: std::collections::BTreeSet<&str> = reports.iter().map(|r| r.host.as_str()).collect();
    let (orphans, killed) = reports.iter().fold((0, 0), |(orphans, killed), r| {
        (orphans + r.totals.orphans, killed + r.totals.killed)
    });
    format!(
        "{} hosts, {orphans} orphans, {killed} kills in all",
        hosts.len()
    )
}

pub(super) fn rules_command(rules: Option<&Path>) -> Result<()> {
    print!("{}", load_rules(rules)?.to_toml());
    Ok(())
}
