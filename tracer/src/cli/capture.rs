//! The commands that capture from the kernel: `watch`, `record`, and `doctor`'s checks.

use std::future::Future;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Notify;
use tracer_core::analysis::Analyzer;
use tracer_core::ingest::Pipeline;
use tracer_core::model::Model;
use tracer_core::sanitize::sanitize;
use tracer_live::doctor::{self, Outcome};
use tracer_live::host;
use tracer_live::live::{self, LiveOptions, LiveSummary, ReparentChecks};

use super::args::{AgentArgs, CaptureArgs, ViewArgs};
use crate::agent::config::{AgentConfig, AgentFlags, ConfigFile};
use crate::files::{create_trace, load_rules};
use crate::sinks::{RecordSink, TerminalSink, WatchMode};
use crate::tui::{TuiSink, ViewOptions};

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

pub(crate) fn lost_note(summary: &LiveSummary) -> String {
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

pub(super) async fn record(output: &Path, capture: &CaptureArgs) -> Result<()> {
    let options = capture.options()?;
    let analyzer = Analyzer::new(load_rules(capture.rules.as_deref())?);
    let writer = create_trace(output)?;
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
        "tracer: recorded {} lines to {} ({} events, {}); kernel-to-trace latency {}{}{}",
        pipeline.sink.lines(),
        output.display(),
        summary.events,
        lost_note(&summary),
        summary.latency,
        reparent_note(&summary.reparent_checks),
        inferred_note(summary.inferred_exits)
    );
    Ok(())
}

/// Processes ended because `/proc` no longer had them; empty when there were none.
fn inferred_note(exits: u64) -> String {
    if exits == 0 {
        String::new()
    } else {
        format!(
            "; {exits} processes found gone from /proc without their exit record, ended as exit unknown"
        )
    }
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

pub(super) async fn watch(
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
        Analyzer::new(load_rules(capture.rules.as_deref())?),
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

async fn watch_tui(
    capture: &CaptureArgs,
    live_options: LiveOptions,
    options: ViewOptions,
) -> Result<()> {
    let quit = Rc::new(Notify::new());
    let mut pipeline = Pipeline::new(
        Model::new(host::clock_tick_ns()),
        Analyzer::new(load_rules(capture.rules.as_deref())?),
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

pub(super) async fn agent(args: AgentArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => ConfigFile::read(path)?,
        None => ConfigFile::default(),
    };
    let flags = AgentFlags {
        listen: args.listen,
        trace_dir: args.trace_dir,
        rotate_size: args.rotate_size,
        rotate_age: args.rotate_age,
        retain_size: args.retain_size,
        otlp_endpoint: args.otlp_endpoint,
        otlp_events: args.otlp_events,
        rules: args.rules,
        redact: args.redact,
        capture_env: args.capture_env,
        ring_buffer: args.ring_buffer,
        batch_delay_ms: args.batch_delay,
        python_inspect: args.python_inspect.map(super::args::Switch::is_on),
    };
    crate::agent::run(AgentConfig::resolve(file, flags)?, termination()?).await
}

pub(super) async fn doctor_command() -> Result<()> {
    let checks = doctor::checks();
    for check in &checks {
        println!("{check}");
    }
    if checks.iter().any(|c| c.outcome == Outcome::Missing) {
        bail!("this host cannot run the tracer: see the checks marked missing");
    }
    Ok(())
}
