//! Feeds the model a million short-lived processes while ten thousand stay alive, then
//! reports the memory it holds and how fast it went: the model must stay bounded however
//! long the tracer runs.

use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use serde_json::json;
use tracer_bench::HostStream;
use tracer_core::analysis::Analyzer;
use tracer_core::ingest::NullSink;
use tracer_core::ingest::Pipeline;
use tracer_core::model::Model;
use tracer_core::roles::Rules;

#[derive(Parser)]
#[command(
    name = "tracer-model-scale",
    about = "Memory of the model after a long churn"
)]
struct Cli {
    /// Short-lived processes that come and go.
    #[arg(long, default_value_t = 1_000_000)]
    processes: u64,
    /// Processes alive throughout.
    #[arg(long, default_value_t = 10_000)]
    alive: u32,
}

/// A `kB` line of `/proc/self/status`, in KiB.
fn status_kib(name: &str) -> Result<u64> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {name} in /proc/self/status"))
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tracer-model-scale: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let stream = HostStream {
        alive: cli.alive,
        churn: cli.processes,
        daemonic_every: 100,
    };
    let mut pipeline = Pipeline::new(
        Model::new(10_000_000),
        Analyzer::new(Rules::builtin()),
        NullSink,
    );
    let rss_before = status_kib("VmRSS")?;
    let started = Instant::now();
    let mut events = 0u64;
    for event in stream.events() {
        pipeline.apply(&event)?;
        events += 1;
    }
    pipeline.finish_analysis()?;
    let seconds = started.elapsed().as_secs_f64();
    let live = pipeline.model.live_count();
    // init, the Celery main process and its 8 pool workers besides the long-lived ones.
    if live != cli.alive as usize + 10 {
        bail!(
            "the model holds {live} live processes, expected {}",
            cli.alive + 10
        );
    }
    let report = json!({
        "processes": cli.processes,
        "alive": live,
        "retained": pipeline.model.retained_count(),
        "events": events,
        "seconds": seconds,
        "events_per_second": events as f64 / seconds,
        "rss_before_kib": rss_before,
        "rss_kib": status_kib("VmRSS")?,
        "peak_rss_kib": status_kib("VmHWM")?,
    });
    println!("{report}");
    Ok(())
}
