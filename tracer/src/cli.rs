//! The `tracer` command line.

use std::future::Future;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tracer_common::DEFAULT_RING_BYTES;

use crate::analysis::Analyzer;
use crate::doctor::{self, Outcome};
use crate::export::{self, Selection};
use crate::host;
use crate::ingest::Pipeline;
use crate::kernel::ProbeOptions;
use crate::live::{self, LiveOptions, LiveSummary, ReparentChecks};
use crate::model::Model;
use crate::privacy::Privacy;
use crate::render::{TreeStyle, duration, orphan_lines, tree_lines};
use crate::replay::{self, Anchors, needs_whole_trace, parse_at};
use crate::roles::Rules;
use crate::sanitize::{escape_json_for_terminal, sanitize};
use crate::sink::{NullSink, RecordSink, TerminalSink, WatchMode};
use crate::trace::{TraceReader, TraceWriter};
use crate::tui::timeline::Timeline;
use crate::tui::{self, TuiSink, ViewOptions};

#[derive(Parser, Debug)]
#[command(
    name = "tracer",
    version,
    about = "Process lineage tracer: the live process tree of this host, with the history `ps` loses",
    long_about = None
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check that this host can run the tracer; exits non-zero if it cannot.
    Doctor,
    /// A postmortem of a trace: what each Celery worker and Airflow task started while
    /// daemonic, the orphans it left, and who killed what.
    Report {
        file: PathBuf,
        /// Rules file to classify with (default: the rules the trace was recorded with).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// The report as JSON, for machines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Print the effective role rules (built-in, after those of --rules FILE).
    Rules {
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
    /// Show the live process tree (one line per event when not on a terminal).
    Watch {
        #[command(flatten)]
        capture: CaptureArgs,
        /// One line per event, even on a terminal.
        #[arg(long)]
        plain: bool,
        /// Also show kernel threads.
        #[arg(long)]
        kernel_threads: bool,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Record a trace (JSON Lines) until the duration ends, or SIGINT/SIGTERM.
    Record {
        /// The trace file to write (created with mode 0600).
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        capture: CaptureArgs,
    },
    /// Rebuild the process tree from a trace, as it was at the end or at --at.
    Replay {
        file: PathBuf,
        /// Rules file to classify with (default: the rules the trace was recorded with).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// A time: nanoseconds since boot, +DURATION from the trace start (+30s, +250ms),
        /// -DURATION before its end (-5s), or from the Nth finding (finding:2, finding:2-5s).
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
        /// Scrub through the trace in the full-screen TUI (starting at --at, or the end).
        #[arg(long, conflicts_with_all = ["json", "findings"])]
        tui: bool,
        /// List the findings, numbered as finding:N counts them.
        #[arg(long, conflicts_with = "json")]
        findings: bool,
        #[command(flatten)]
        view: ViewArgs,
        /// Print one TUI frame of COLSxROWS cells as JSON (for screenshots and tests).
        #[arg(long, value_name = "COLSxROWS", hide = true, conflicts_with_all = ["json", "tui"])]
        frame: Option<String>,
        /// Also show kernel threads.
        #[arg(long)]
        kernel_threads: bool,
        /// Print every process the model holds (live and exited ancestors) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Export a recording: a Perfetto trace, a Graphviz lineage graph, or a smaller trace.
    Export {
        file: PathBuf,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Only this pid's ancestors (by lineage) and every process it created, directly or not.
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
        /// From this time (the forms of replay --at).
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        from: Option<String>,
        /// Up to this time (the forms of replay --at).
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        to: Option<String>,
        /// Write here (atomically, mode 0600) instead of to standard output.
        #[arg(long, short, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Rules file to classify with (default: the rules the trace was recorded with).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ExportFormat {
    /// Chrome JSON trace events: open it in the Perfetto UI (ui.perfetto.dev).
    Perfetto,
    /// Graphviz: render with `dot -Tpng`.
    Dot,
    /// A trace file (JSON Lines) that `replay` and `report` read.
    Jsonl,
}

/// Where the TUI starts.
#[derive(Args, Debug, Clone)]
struct ViewArgs {
    /// Show only this process's subtree (the TUI's focus).
    #[arg(long, value_name = "PID")]
    pid: Option<u32>,
    /// Show only processes with this role (id or label) and their ancestors.
    #[arg(long, value_name = "ROLE")]
    role: Option<String>,
    /// Show only the live orphans, under the processes that adopted them.
    #[arg(long)]
    orphans: bool,
}

#[derive(Args, Debug, Clone, Copy)]
struct ReadArgs {
    /// Skip the lines of the trace that are not valid events (and say how many), instead of
    /// stopping at the first.
    #[arg(long)]
    lenient: bool,
}

#[derive(Args, Debug)]
struct CaptureArgs {
    /// Rules file with roles to add (tried before the built-in ones): see `tracer rules`.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    duration: Option<Duration>,
    /// Kernel ring buffer size: bytes, or with K/M (a power of two, at least 4K).
    #[arg(long, value_name = "SIZE", default_value_t = format!("{}M", DEFAULT_RING_BYTES >> 20), value_parser = parse_size)]
    ring_buffer: String,
    /// Replace what REGEX matches in command lines and titles with [REDACTED] before anything
    /// is shown or recorded; with capture groups, only the groups (repeatable). Matched
    /// against the arguments joined by spaces, e.g. '--password[= ](\S+)'.
    #[arg(long, value_name = "REGEX", allow_hyphen_values = true)]
    redact: Vec<String>,
    /// Record this environment variable of each process (repeatable; NAME* for a prefix,
    /// e.g. 'AIRFLOW_CTX_*'). No variable is read unless named here.
    #[arg(long, value_name = "NAME")]
    capture_env: Vec<String>,
    /// How long a burst of kernel records may gather before the tracer reads it, in
    /// milliseconds: longer costs less CPU per event and adds that much latency; 0 reads
    /// each record as it comes.
    #[arg(long, value_name = "MS", default_value_t = live::DEFAULT_BATCH_DELAY_MS, value_parser = clap::value_parser!(u64).range(0..=1000))]
    batch_delay: u64,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|secs| *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{text:?} is not a positive number of seconds"))
}

fn ring_bytes(text: &str) -> Result<u32, String> {
    let upper = text.to_ascii_uppercase();
    let (number, scale) = match upper.strip_suffix('K') {
        Some(number) => (number, 1u64 << 10),
        None => match upper.strip_suffix('M') {
            Some(number) => (number, 1 << 20),
            None => (upper.as_str(), 1),
        },
    };
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&b| (4096..=1 << 30).contains(&b) && b.is_power_of_two())
        .ok_or_else(|| {
            format!("{text:?} is not a ring buffer size: give a power of two from 4K to 1024M")
        })?;
    Ok(bytes as u32)
}

fn parse_size(text: &str) -> Result<String, String> {
    ring_bytes(text).map(|_| text.to_owned())
}

impl CaptureArgs {
    fn options(&self) -> Result<LiveOptions> {
        Ok(LiveOptions {
            probes: ProbeOptions {
                ring_bytes: ring_bytes(&self.ring_buffer).unwrap_or(DEFAULT_RING_BYTES),
                ..ProbeOptions::default()
            },
            duration: self.duration,
            coalesce: Duration::from_millis(self.batch_delay),
            privacy: Privacy::new(&self.redact, &self.capture_env)?,
            ..LiveOptions::default()
        })
    }
}

/// Resolves when the tracer is asked to stop: SIGINT, SIGTERM or SIGHUP.
fn termination() -> Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
            _ = hangup.recv() => {}
        }
    })
}

fn lost_note(summary: &LiveSummary) -> String {
    let lost = summary.lost.total();
    if lost == 0 {
        "no kernel records lost".into()
    } else {
        let lost_kinds = &summary.lost;
        let malformed = if lost_kinds.malformed > 0 {
            format!(", {} undecodable", lost_kinds.malformed)
        } else {
            String::new()
        };
        format!(
            "{lost} KERNEL RECORDS LOST (start {}, exec {}, exit {}, rename {}, signal {}{malformed}): use a bigger --ring-buffer",
            lost_kinds.process_start,
            lost_kinds.exec,
            lost_kinds.exit,
            lost_kinds.rename,
            lost_kinds.signal
        )
    }
}

async fn record(output: &Path, capture: &CaptureArgs) -> Result<()> {
    let options = capture.options()?;
    let analyzer = Analyzer::new(Rules::load(capture.rules.as_deref())?);
    let writer = TraceWriter::create(output)?;
    let mut pipeline = Pipeline::new(
        Model::new(host::clock_tick_ns()),
        analyzer,
        RecordSink::new(writer),
    );
    let stop = termination()?;
    let result = live::run(&options, &mut pipeline, stop, |ready| {
        eprintln!(
            "tracer: recording to {}: {} processes in the snapshot, {}; SIGINT or SIGTERM stops",
            sanitize(&output.display().to_string()),
            ready.snapshot,
            ready.privileges
        );
    })
    .await;
    let summary = match result {
        Ok(summary) => summary,
        Err(error) => {
            if pipeline.sink.lines() == 0 {
                let _ = std::fs::remove_file(output);
            }
            return Err(error);
        }
    };
    eprintln!(
        "tracer: recorded {} lines to {} ({} events, {}); kernel-to-trace latency {}{}",
        pipeline.sink.lines(),
        output.display(),
        summary.events,
        lost_note(&summary),
        summary.latency,
        reparent_note(&summary.reparent_checks)
    );
    Ok(())
}

/// How the reparents the model derived compared with `/proc`; empty when there were none.
fn reparent_note(checks: &ReparentChecks) -> String {
    let checked = checks.agreed + checks.inconclusive + checks.corrected;
    if checked == 0 {
        return String::new();
    }
    format!(
        "; reparents checked in /proc: {} agreed, {} inconclusive, {} corrected",
        checks.agreed, checks.inconclusive, checks.corrected
    )
}

async fn watch(
    capture: &CaptureArgs,
    plain: bool,
    kernel_threads: bool,
    view: &ViewArgs,
) -> Result<()> {
    let options = capture.options()?;
    let mode = WatchMode::detect(plain);
    if mode == WatchMode::Tree {
        return watch_tui(capture, options, view.options(kernel_threads)).await;
    }
    let mut pipeline = Pipeline::new(
        Model::new(host::clock_tick_ns()),
        Analyzer::new(Rules::load(capture.rules.as_deref())?),
        TerminalSink::default(),
    );
    let stop = termination()?;
    let summary = live::run(&options, &mut pipeline, stop, |ready| {
        if mode == WatchMode::Lines {
            eprintln!(
                "tracer: watching {} processes, {}; SIGINT or SIGTERM stops",
                ready.snapshot, ready.privileges
            );
        }
    })
    .await?;
    if summary.lost.total() > 0 {
        eprintln!("tracer: {}", lost_note(&summary));
    }
    Ok(())
}

impl ViewArgs {
    fn options(&self, kernel_threads: bool) -> ViewOptions {
        ViewOptions {
            pid: self.pid,
            role: self.role.clone(),
            orphans: self.orphans,
            kernel_threads,
        }
    }
}

async fn watch_tui(
    capture: &CaptureArgs,
    live_options: LiveOptions,
    options: ViewOptions,
) -> Result<()> {
    let quit = Rc::new(Notify::new());
    let mut pipeline = Pipeline::new(
        Model::new(host::clock_tick_ns()),
        Analyzer::new(Rules::load(capture.rules.as_deref())?),
        TuiSink::new(&options, quit.clone()),
    );
    let terminated = termination()?;
    let stop = async move {
        tokio::select! {
            () = terminated => {}
            () = quit.notified() => {}
        }
    };
    let live_options = LiveOptions {
        // Keys are read at each tick: this bounds how long a key waits on a quiet host.
        tick: Duration::from_millis(50),
        ..live_options
    };
    let summary = live::run(&live_options, &mut pipeline, stop, |_| {}).await?;
    if summary.lost.total() > 0 {
        eprintln!("tracer: {}", lost_note(&summary));
    }
    Ok(())
}

/// Resolves a time given on the command line, replaying the whole trace first when it
/// counts from the end or from a finding.
fn resolve_time(file: &Path, text: &str, lenient: bool, rules: Option<Rules>) -> Result<u64> {
    let (header, _) = TraceReader::open(file)?;
    let mut anchors = Anchors {
        start: header.ts,
        ..Anchors::default()
    };
    let times: Vec<u64>;
    if needs_whole_trace(text) {
        let history = export::history(file, lenient, rules)?;
        times = history.findings.iter().map(|f| f.ts).collect();
        anchors.end = Some(history.end);
        anchors.findings = Some(&times);
    }
    parse_at(text, &anchors).map_err(|e| anyhow!(e))
}

fn frame_size(text: &str) -> Result<(u16, u16)> {
    text.split_once('x')
        .and_then(|(c, r)| Some((c.parse().ok()?, r.parse().ok()?)))
        .filter(|&(c, r): &(u16, u16)| (20..=1000).contains(&c) && (5..=1000).contains(&r))
        .ok_or_else(|| anyhow!("--frame {text:?}: give COLSxROWS, like 160x48"))
}

struct ReplayArgs<'a> {
    file: &'a Path,
    rules: Option<&'a Path>,
    at: Option<&'a str>,
    kernel_threads: bool,
    json: bool,
    read: ReadArgs,
    tui: bool,
    findings: bool,
    view: &'a ViewArgs,
    frame: Option<&'a str>,
}

fn list_findings(file: &Path, lenient: bool, rules: Option<Rules>) -> Result<()> {
    let history = export::history(file, lenient, rules)?;
    let start = history.header.as_ref().map_or(0, |h| h.ts);
    for (i, finding) in history.findings.iter().enumerate() {
        println!(
            "finding:{} +{} {} {}",
            i + 1,
            duration(finding.ts.saturating_sub(start)),
            finding.pid,
            sanitize(&finding.summary)
        );
    }
    if history.findings.is_empty() {
        println!("no findings");
    }
    Ok(())
}

fn replay_screen(args: &ReplayArgs, rules: Option<Rules>) -> Result<()> {
    let lenient = args.read.lenient;
    let timeline = Timeline::load(args.file, lenient, rules.clone())?;
    let at = match args.at {
        Some(text) => resolve_time(args.file, text, lenient, rules)?,
        None => timeline.end(),
    };
    let options = args.view.options(args.kernel_threads);
    let name = format!(
        "tracer replay {}",
        sanitize(&args.file.display().to_string())
    );
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
        status: state.status(),
        model: &state.model,
        feed: &state.feed,
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

fn replay_command(args: &ReplayArgs) -> Result<()> {
    let ReplayArgs {
        file,
        rules,
        at,
        kernel_threads,
        json,
        read,
        ..
    } = *args;
    let rules = rules.map(|path| Rules::load(Some(path))).transpose()?;
    if args.findings {
        return list_findings(file, read.lenient, rules);
    }
    if args.tui || args.frame.is_some() {
        if args.tui && !std::io::stdout().is_terminal() {
            bail!("replay --tui needs a terminal");
        }
        return replay_screen(args, rules);
    }
    let until = match at {
        Some(text) => Some(resolve_time(file, text, read.lenient, rules.clone())?),
        None => None,
    };
    let (pipeline, header, summary) =
        replay::replay_with(file, until, read.lenient, rules, NullSink)?;
    let model = &pipeline.model;
    for note in replay::read_notes(file, &summary) {
        eprintln!("tracer: {}", sanitize(&note));
    }
    if json {
        let out = serde_json::to_string_pretty(&model.view()).context("cannot encode the tree")?;
        println!("{}", escape_json_for_terminal(&out));
        return Ok(());
    }
    let terminal = std::io::stdout().is_terminal();
    let style = TreeStyle {
        color: terminal,
        kernel_threads,
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
        "-- {} at +{} ({} events): {} processes alive, {} orphaned, {} kernel records lost",
        sanitize(&header.host),
        duration(summary.last_ts.saturating_sub(header.ts)),
        summary.events,
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
struct ExportRequest<'a> {
    file: &'a Path,
    format: ExportFormat,
    pid: Option<u32>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    output: Option<&'a Path>,
    rules: Option<&'a Path>,
    read: ReadArgs,
}

fn export_command(request: &ExportRequest) -> Result<()> {
    let ExportRequest {
        file,
        format,
        pid,
        from,
        to,
        output,
        rules,
        read,
    } = *request;
    let lenient = read.lenient;
    let rules = rules.map(|path| Rules::load(Some(path))).transpose()?;
    let selection = Selection {
        pid,
        from: from
            .map(|text| resolve_time(file, text, lenient, rules.clone()))
            .transpose()
            .context("--from")?,
        to: to
            .map(|text| resolve_time(file, text, lenient, rules.clone()))
            .transpose()
            .context("--to")?,
    };
    if let (Some(from), Some(to)) = (selection.from, selection.to)
        && from > to
    {
        bail!("--from is after --to");
    }
    let history = export::history(file, lenient, rules.clone())?;
    for note in &history.read_notes {
        eprintln!("tracer: {}", sanitize(note));
    }
    let bytes = match format {
        ExportFormat::Perfetto => {
            let mut bytes = serde_json::to_vec(&export::perfetto(&history, &selection)?)
                .context("cannot encode the Perfetto trace")?;
            bytes.push(b'\n');
            bytes
        }
        ExportFormat::Dot => export::dot(&history, &selection)?.into_bytes(),
        ExportFormat::Jsonl => export::jsonl(file, &history, &selection, lenient, rules)?,
    };
    match output {
        Some(path) => {
            export::write_atomic(path, &bytes)?;
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

async fn doctor_command() -> Result<()> {
    let checks = doctor::checks();
    for check in &checks {
        println!("{check}");
    }
    if checks.iter().any(|c| c.outcome == Outcome::Missing) {
        bail!("this host cannot run the tracer: see the checks marked missing");
    }
    Ok(())
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Doctor => doctor_command().await,
        Command::Report {
            file,
            rules,
            json,
            read,
        } => {
            let rules = rules.map(|path| Rules::load(Some(&path))).transpose()?;
            let report = crate::report::build(&file, read.lenient, rules)?;
            for note in &report.read_notes {
                eprintln!("tracer: {}", sanitize(note));
            }
            if json {
                let out =
                    serde_json::to_string_pretty(&report).context("cannot encode the report")?;
                println!("{}", escape_json_for_terminal(&out));
            } else {
                print!("{}", crate::report::text(&report));
            }
            Ok(())
        }
        Command::Rules { rules } => {
            print!("{}", Rules::load(rules.as_deref())?.to_toml());
            Ok(())
        }
        Command::Watch {
            capture,
            plain,
            kernel_threads,
            view,
        } => watch(&capture, plain, kernel_threads, &view).await,
        Command::Record { output, capture } => record(&output, &capture).await,
        Command::Replay {
            file,
            rules,
            at,
            tui,
            findings,
            view,
            frame,
            kernel_threads,
            json,
            read,
        } => replay_command(&ReplayArgs {
            file: &file,
            rules: rules.as_deref(),
            at: at.as_deref(),
            kernel_threads,
            json,
            read,
            tui,
            findings,
            view: &view,
            frame: frame.as_deref(),
        }),
        Command::Export {
            file,
            format,
            pid,
            from,
            to,
            output,
            rules,
            read,
        } => export_command(&ExportRequest {
            file: &file,
            format,
            pid,
            from: from.as_deref(),
            to: to.as_deref(),
            output: output.as_deref(),
            rules: rules.as_deref(),
            read,
        }),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs the command line; errors are one line on stderr and a non-zero exit.
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("tracer: internal error{location}: {message} (please report this)");
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tracer: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tracer: error: {}", sanitize(&format!("{error:#}")));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(ring_bytes("32M"), Ok(32 << 20));
        assert_eq!(ring_bytes("4k"), Ok(4096));
        assert_eq!(ring_bytes("65536"), Ok(65536));
        assert!(ring_bytes("3M").is_err());
        assert!(ring_bytes("2048").is_err());
        assert!(ring_bytes("lots").is_err());
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("1e30").is_err());
    }

    #[test]
    fn command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["tracer", "record", "-o", "t.jsonl", "--duration", "2"]).unwrap();
        assert!(matches!(cli.command, Command::Record { .. }));
        assert!(Cli::try_parse_from(["tracer", "record"]).is_err());
        assert!(Cli::try_parse_from(["tracer", "watch", "--ring-buffer", "5K"]).is_err());
    }
}
