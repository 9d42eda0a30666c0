//! `cargo xtask bench`: the tracer side by side with bpftrace, execsnoop, exitsnoop and
//! forkstat under the same workloads, counted against the kernel's own tally (`perf stat` on
//! the scheduler tracepoints); then the userspace micro-benchmarks and the model's memory
//! after a million processes. Prints a table and the targets' pass/fail lines, and writes
//! both, with every cell's raw numbers, under `target/bench/`.
//!
//! Cells (one tool, one workload, one repeat) run one at a time, in a shuffled order, so that
//! drift of the machine's speed spreads over all tools alike. Results are medians over the
//! repeats, with their range, and compared as ratios within the run: absolute times on a
//! shared two-core machine are noise.

mod outage;
mod python;
mod sample;
mod stats;
mod tools;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use serde_json::{Value, json};

use sample::BpfStats;
use stats::{Shuffler, median, range};
use tools::{Counted, Tool};

/// The anchors, from Debian.
const ANCHOR_PACKAGES: &[&str] = &["linux-perf", "bpftrace", "libbpf-tools", "forkstat"];

const CLOSED_SHAPES: &[&str] = &[
    "fork-exit",
    "fork-exec",
    "threads",
    "chain",
    "fan",
    "double-fork",
];
/// The shape the targets are judged on: the churn of a busy worker host.
const MAIN_SHAPE: &str = "fork-exec";
/// Open loop: fork-exit, the cheapest process, reaches the highest rates.
const OPEN_SHAPE: &str = "fork-exit";
const OPEN_RATES: &[u64] = &[2_000, 4_000, 8_000, 16_000, 32_000];

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    /// Runs of each cell (tool × workload).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// How long each workload runs.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Seed of the cells' shuffled order (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Tools to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    tools: Vec<String>,
    /// Skip the side-by-side cells (micro-benchmarks and the model's scale only).
    #[arg(long)]
    no_side_by_side: bool,
    /// How long the agent runs with its collector down under a steady load (0 skips it).
    #[arg(long, default_value_t = 10)]
    outage_minutes: u64,
}

/// One run of one tool under one workload.
#[derive(Clone, Debug)]
struct Cell {
    tool: Tool,
    shape: &'static str,
    /// Open loop rate; None for closed loop.
    rate: Option<u64>,
    repeat: usize,
}

#[derive(Clone, Debug, Default)]
struct Truth {
    forks: u64,
    execs: u64,
    exits: u64,
}

/// What the bench sampled of a tool around the workload; nothing for the untraced cells.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    cpu_ns: u64,
    bpf: BpfStats,
    peak_rss_kib: u64,
}

#[derive(Clone, Debug)]
struct Outcome {
    cell: Cell,
    /// What the workload generator said it did.
    load: Value,
    /// The kernel's count during the workload, threads taken out.
    truth: Truth,
    counted: Counted,
    cpu_ns: u64,
    bpf: BpfStats,
    peak_rss_kib: u64,
}

impl Outcome {
    fn ops_per_second(&self) -> f64 {
        self.load["ops_per_second"].as_f64().unwrap_or(f64::NAN)
    }

    /// Events of the kinds the tool reports that it did not report.
    fn missed(&self) -> u64 {
        let (fork, exec, exit) = self.cell.tool.kinds();
        let gap = |on: bool, truth: u64, got: u64| if on { truth.saturating_sub(got) } else { 0 };
        gap(fork, self.truth.forks, self.counted.forks)
            + gap(exec, self.truth.execs, self.counted.execs)
            + gap(exit, self.truth.exits, self.counted.exits)
    }

    /// Captured / truth over the kinds the tool reports.
    fn capture_ratio(&self) -> f64 {
        let (fork, exec, exit) = self.cell.tool.kinds();
        let mut truth = 0;
        let mut got = 0;
        for (on, t, g) in [
            (fork, self.truth.forks, self.counted.forks),
            (exec, self.truth.execs, self.counted.execs),
            (exit, self.truth.exits, self.counted.exits),
        ] {
            if on {
                truth += t;
                got += g;
            }
        }
        if truth == 0 {
            f64::NAN
        } else {
            got as f64 / truth as f64
        }
    }

    /// NaN when the tool reported too few events for a per-event cost to mean anything
    /// (execsnoop under a workload that execs nothing).
    fn cpu_per_event_ns(&self) -> f64 {
        if self.counted.all_events < 1000 {
            f64::NAN
        } else {
            self.cpu_ns as f64 / self.counted.all_events as f64
        }
    }

    fn bpf_ns_per_run(&self) -> f64 {
        if self.bpf.run_cnt == 0 {
            f64::NAN
        } else {
            self.bpf.run_time_ns as f64 / self.bpf.run_cnt as f64
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "tool": self.cell.tool.name(),
            "shape": self.cell.shape,
            "rate": self.cell.rate,
            "repeat": self.cell.repeat,
            "load": self.load,
            "truth": {"forks": self.truth.forks, "execs": self.truth.execs, "exits": self.truth.exits},
            "captured": {"forks": self.counted.forks, "execs": self.counted.execs, "exits": self.counted.exits,
                          "all_events": self.counted.all_events},
            "reported_lost": self.counted.reported_lost,
            "missed": self.missed(),
            "cpu_ns": self.cpu_ns,
            "bpf": {"programs": self.bpf.programs, "run_time_ns": self.bpf.run_time_ns, "run_cnt": self.bpf.run_cnt},
            "peak_rss_kib": self.peak_rss_kib,
            "latency_ms": self.counted.latency_ms.map(|(p50, p99)| json!({"p50": p50, "p99": p99})),
        })
    }
}

/// Restores `kernel.bpf_stats_enabled` when the bench ends, however it ends.
struct BpfStatsEnabled {
    before: String,
}

impl BpfStatsEnabled {
    fn enable() -> Result<BpfStatsEnabled> {
        let path = "/proc/sys/kernel/bpf_stats_enabled";
        let before = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {path}"))?
            .trim()
            .to_owned();
        std::fs::write(path, "1").with_context(|| format!("cannot enable {path}"))?;
        Ok(BpfStatsEnabled { before })
    }
}

impl Drop for BpfStatsEnabled {
    fn drop(&mut self) {
        let _ = std::fs::write("/proc/sys/kernel/bpf_stats_enabled", &self.before);
    }
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) on the pid of a child this process has not reaped yet.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// Waits for `child` to exit, at most `limit`; kills it after that.
fn wait_bounded(child: &mut Child, limit: Duration) -> Result<bool> {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(true);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the tool has nothing left to process: over `quiet`, it used under 1% of a
/// CPU (a timer of its own may still tick). Returns its CPU time then.
fn wait_idle(pid: u32, quiet: Duration, limit: Duration) -> u64 {
    let deadline = Instant::now() + limit;
    let step = Duration::from_millis(50);
    let window = (quiet.as_millis() / step.as_millis()).max(1) as usize;
    let mut history = vec![sample::cpu_ns(pid).unwrap_or(0)];
    while Instant::now() < deadline {
        std::thread::sleep(step);
        let Some(now) = sample::cpu_ns(pid) else {
            break;
        };
        // The sum over a tool's live threads drops when one exits: CPU time spent stays
        // spent, so the series never goes down.
        let last = *history.last().unwrap_or(&0);
        history.push(now.max(last));
        if is_quiet(&history, window, quiet) {
            break;
        }
    }
    *history.last().unwrap_or(&0)
}

/// Whether the last `window` steps of a CPU-time series used under 1% of `quiet`.
fn is_quiet(history: &[u64], window: usize, quiet: Duration) -> bool {
    if history.len() <= window {
        return false;
    }
    let now = history[history.len() - 1];
    let used = now.saturating_sub(history[history.len() - 1 - window]);
    u128::from(used) * 100 < quiet.as_nanos()
}

/// A tool a cell started: stopped (SIGINT, then SIGKILL past a bound) and reaped when this is
/// dropped, whether the cell ended well, with an error, or in a panic.
struct Running(Child);

impl Running {
    /// Stops the tool the way its users do, SIGINT; Err if it needed SIGKILL.
    fn stop(&mut self, limit: Duration) -> Result<bool> {
        if self.0.try_wait()?.is_some() {
            return Ok(true);
        }
        signal(&self.0, libc::SIGINT);
        wait_bounded(&mut self.0, limit)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop(Duration::from_secs(10));
    }
}

/// Waits until the tool handles events: the tracer says so; for the others, once the tool is
/// idle (done loading), a process started and ended here must make it spend CPU, twice.
fn wait_ready(tool: Tool, child: &mut Child, dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let pid = child.id();
    let mut answered = 0;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            let err = std::fs::read_to_string(dir.join("err")).unwrap_or_default();
            bail!(
                "{} exited before it was ready ({status}): {}",
                tool.name(),
                err.lines().last().unwrap_or("")
            );
        }
        if let Some(ready) = tool.says_ready(dir) {
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let before = wait_idle(pid, Duration::from_millis(300), Duration::from_secs(10));
        // Not named like the workload, so it is never counted as part of it.
        let _ = Command::new("/bin/sh").args(["-c", ":"]).status();
        std::thread::sleep(Duration::from_millis(200));
        if sample::cpu_ns(pid).unwrap_or(before) > before {
            answered += 1;
            if answered == 2 {
                return Ok(());
            }
        } else {
            answered = 0;
        }
    }
    bail!("{} did not become ready within 60 s", tool.name())
}

/// `perf stat -x,` lines: `VALUE,UNIT,EVENT,…`.
fn parse_perf(text: &str) -> Result<(u64, u64, u64)> {
    let mut counts = (None, None, None);
    for line in text.lines() {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < 3 {
            continue;
        }
        let value = fields[0].trim().parse::<u64>().ok();
        match fields[2] {
            "sched:sched_process_fork" => counts.0 = value,
            "sched:sched_process_exec" => counts.1 = value,
            "sched:sched_process_exit" => counts.2 = value,
            _ => {}
        }
    }
    match counts {
        (Some(fork), Some(exec), Some(exit)) => Ok((fork, exec, exit)),
        _ => bail!("perf stat counted no scheduler tracepoints: {text}"),
    }
}

struct Bench {
    args: BenchArgs,
    tracer: PathBuf,
    load: PathBuf,
    out: PathBuf,
}

impl Bench {
    /// Runs the workload under `perf stat`; returns its report and the kernel's counts.
    fn workload(&self, cell: &Cell, dir: &Path) -> Result<(Value, Truth)> {
        let perf_out = dir.join("perf.csv");
        let mut command = Command::new("perf");
        command
            .args(["stat", "-a", "-x,", "-o"])
            .arg(&perf_out)
            .args([
                "-e",
                "sched:sched_process_fork,sched:sched_process_exec,sched:sched_process_exit",
                "--",
            ])
            .arg(&self.load)
            .arg(cell.shape)
            .arg("--seconds")
            .arg(self.args.seconds.to_string());
        if let Some(rate) = cell.rate {
            command.arg("--rate").arg(rate.to_string());
        }
        let output = command
            .stderr(Stdio::inherit())
            .output()
            .context("cannot run perf stat")?;
        if !output.status.success() {
            bail!("the workload failed: {}", output.status);
        }
        let load: Value = serde_json::from_slice(&output.stdout)
            .context("the workload generator printed no report")?;
        let (forks, execs, exits) = parse_perf(&std::fs::read_to_string(&perf_out)?)?;
        // The tracepoints fire for threads too; the tools report processes.
        let threads = load["threads"].as_u64().unwrap_or(0);
        let truth = Truth {
            forks: forks.saturating_sub(threads),
            execs,
            exits: exits.saturating_sub(threads),
        };
        Ok((load, truth))
    }

    fn run_cell(&self, cell: &Cell, index: usize) -> Result<Outcome> {
        let dir = self.out.join("cells").join(format!(
            "{index:03}-{}-{}{}",
            cell.tool.name(),
            cell.shape,
            cell.rate.map(|r| format!("-{r}")).unwrap_or_default()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut running = cell.tool.spawn(&dir, &self.tracer)?.map(Running);
        let result = self.measure(cell, &dir, running.as_mut().map(|r| &mut r.0));
        if let Some(running) = running.as_mut()
            && !running.stop(Duration::from_secs(30))?
        {
            bail!("{} did not stop on SIGINT within 30 s", cell.tool.name());
        }
        let (load, truth, usage) = result?;
        let counted = cell.tool.count(&dir)?;
        // Traces of a busy run are large: keep the numbers, not the files.
        let _ = std::fs::remove_file(dir.join("out"));
        Ok(Outcome {
            cell: cell.clone(),
            load,
            truth,
            counted,
            cpu_ns: usage.cpu_ns,
            bpf: usage.bpf,
            peak_rss_kib: usage.peak_rss_kib,
        })
    }

    /// Runs the workload; around it, samples the tool (if any) once it is ready and again
    /// once it has processed everything.
    fn measure(
        &self,
        cell: &Cell,
        dir: &Path,
        child: Option<&mut Child>,
    ) -> Result<(Value, Truth, Usage)> {
        let Some(child) = child else {
            let (load, truth) = self.workload(cell, dir)?;
            return Ok((load, truth, Usage::default()));
        };
        wait_ready(cell.tool, child, dir)?;
        let pid = child.id();
        let cpu_before = wait_idle(pid, Duration::from_millis(300), Duration::from_secs(10));
        let bpf_before = sample::bpf_stats(pid);
        let (load, truth) = self.workload(cell, dir)?;
        let cpu_after = wait_idle(pid, Duration::from_millis(300), Duration::from_secs(20));
        let usage = Usage {
            cpu_ns: cpu_after.saturating_sub(cpu_before),
            bpf: sample::bpf_stats(pid).since(&bpf_before),
            peak_rss_kib: sample::status_kib(pid, "VmHWM").unwrap_or(0),
        };
        Ok((load, truth, usage))
    }
}

/// Median and range of `f` over `outcomes`.
fn summary(outcomes: &[&Outcome], f: impl Fn(&Outcome) -> f64) -> Option<(f64, f64, f64)> {
    let values: Vec<f64> = outcomes.iter().map(|o| f(o)).collect();
    let median = median(&values)?;
    let (low, high) = range(&values)?;
    Some((median, low, high))
}

fn fmt_spread(value: Option<(f64, f64, f64)>, scale: f64, digits: usize) -> String {
    match value {
        Some((median, low, high)) => format!(
            "{:.digits$} ({:.digits$}–{:.digits$})",
            median * scale,
            low * scale,
            high * scale
        ),
        None => "–".into(),
    }
}

struct Target {
    name: String,
    pass: bool,
    detail: String,
}

impl Target {
    fn line(&self) -> String {
        format!(
            "{} {}: {}",
            if self.pass { "PASS" } else { "FAIL" },
            self.name,
            self.detail
        )
    }
}

/// Peak resident memory the agent may reach with its default ring buffer.
const AGENT_PEAK_RSS_MIB: f64 = 64.0;
/// The agent's userspace CPU per event, at most this many times `tracer record`'s.
const AGENT_CPU_RATIO: f64 = 1.3;

/// The agent's targets, on the main shape at its maximum rate, against `tracer record`'s runs
/// of the same bench.
fn agent_targets(tool: Tool, agent: &[&Outcome], record: &[&Outcome], targets: &mut Vec<Target>) {
    if agent.is_empty() {
        return;
    }
    let name = tool.name();
    let lost: u64 = agent
        .iter()
        .map(|o| o.counted.reported_lost + o.missed())
        .sum();
    targets.push(Target {
        name: format!("{name}: zero loss at the maximum {MAIN_SHAPE} rate, exporting"),
        pass: lost == 0,
        detail: format!("{} runs, {lost} events missed or lost", agent.len()),
    });
    let median = |runs: &[&Outcome], f: fn(&Outcome) -> f64| summary(runs, f).map(|(m, _, _)| m);
    if let (Some(agent_cpu), Some(record_cpu)) = (
        median(agent, Outcome::cpu_per_event_ns),
        median(record, Outcome::cpu_per_event_ns),
    ) {
        let ratio = agent_cpu / record_cpu;
        targets.push(Target {
            name: format!("{name}: userspace CPU per event ≤ {AGENT_CPU_RATIO}× tracer record's"),
            pass: ratio <= AGENT_CPU_RATIO,
            detail: format!(
                "{name} {:.2} µs, record {:.2} µs: ratio {ratio:.2}",
                agent_cpu / 1e3,
                record_cpu / 1e3
            ),
        });
    }
    if let Some(peak) = agent.iter().map(|o| o.peak_rss_kib).max() {
        let mib = peak as f64 / 1024.0;
        targets.push(Target {
            name: format!("{name}: peak RSS < {AGENT_PEAK_RSS_MIB} MiB, default ring buffer"),
            pass: mib < AGENT_PEAK_RSS_MIB,
            detail: format!("highest peak over the runs {mib:.1} MiB"),
        });
    }
}

/// The side-by-side tables and the targets judged from them.
fn side_by_side_report(outcomes: &[Outcome], report: &mut String, targets: &mut Vec<Target>) {
    let tools: Vec<Tool> = {
        let mut tools: Vec<Tool> = outcomes.iter().map(|o| o.cell.tool).collect();
        tools.sort();
        tools.dedup();
        tools
    };
    let anchors: Vec<Tool> = tools
        .iter()
        .copied()
        .filter(|t| {
            !matches!(
                t,
                Tool::Untraced | Tool::Tracer | Tool::Agent | Tool::AgentAll
            )
        })
        .collect();
    let cells = |tool: Tool, shape: &str, rate: Option<u64>| -> Vec<&Outcome> {
        outcomes
            .iter()
            .filter(|o| o.cell.tool == tool && o.cell.shape == shape && o.cell.rate == rate)
            .collect()
    };
    let median_of = |tool: Tool, shape: &str, f: &dyn Fn(&Outcome) -> f64| {
        summary(&cells(tool, shape, None), f).map(|(m, _, _)| m)
    };

    for shape in CLOSED_SHAPES {
        if outcomes
            .iter()
            .all(|o| o.cell.shape != *shape || o.cell.rate.is_some())
        {
            continue;
        }
        let untraced = median_of(Tool::Untraced, shape, &Outcome::ops_per_second);
        let best_cpu = anchors
            .iter()
            .filter_map(|&a| median_of(a, shape, &Outcome::cpu_per_event_ns))
            .min_by(f64::total_cmp);
        let _ = writeln!(
            report,
            "\n### Closed loop, {shape} (maximum rate; median and range over the repeats)\n"
        );
        report.push_str(
            "| tool | ops/s | slowdown vs untraced | captured / kernel | missed | lost (self-reported) | CPU µs/event | × best anchor | BPF ns/run | peak RSS MiB | latency p50 / p99 ms |\n\
             |---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for &tool in &tools {
            let runs = cells(tool, shape, None);
            if runs.is_empty() {
                continue;
            }
            let ops = summary(&runs, Outcome::ops_per_second);
            let slowdown = untraced.map(|base| summary(&runs, |o| 1.0 - o.ops_per_second() / base));
            let traced = tool != Tool::Untraced;
            let cell = |text: String| if traced { text } else { "–".into() };
            let latency = match tool {
                Tool::Tracer | Tool::Agent | Tool::AgentAll => format!(
                    "{} / {}",
                    fmt_spread(
                        summary(&runs, |o| o.counted.latency_ms.map_or(f64::NAN, |l| l.0)),
                        1.0,
                        2
                    ),
                    fmt_spread(
                        summary(&runs, |o| o.counted.latency_ms.map_or(f64::NAN, |l| l.1)),
                        1.0,
                        2
                    )
                ),
                _ => "–".into(),
            };
            let _ = writeln!(
                report,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                tool.name(),
                fmt_spread(ops, 1.0, 0),
                if traced {
                    fmt_spread(slowdown.flatten(), 100.0, 1) + " %"
                } else {
                    "–".into()
                },
                cell(fmt_spread(summary(&runs, Outcome::capture_ratio), 1.0, 4)),
                cell(fmt_spread(summary(&runs, |o| o.missed() as f64), 1.0, 0)),
                cell(fmt_spread(
                    summary(&runs, |o| o.counted.reported_lost as f64),
                    1.0,
                    0
                )),
                cell(fmt_spread(
                    summary(&runs, Outcome::cpu_per_event_ns),
                    1e-3,
                    2
                )),
                cell(match best_cpu {
                    Some(best) =>
                        fmt_spread(summary(&runs, |o| o.cpu_per_event_ns() / best), 1.0, 2),
                    None => "–".into(),
                }),
                if tool.uses_bpf() {
                    fmt_spread(summary(&runs, Outcome::bpf_ns_per_run), 1.0, 0)
                } else {
                    "–".into()
                },
                cell(fmt_spread(
                    summary(&runs, |o| o.peak_rss_kib as f64),
                    1.0 / 1024.0,
                    1
                )),
                latency,
            );
        }
    }

    let open: Vec<&Outcome> = outcomes.iter().filter(|o| o.cell.rate.is_some()).collect();
    if !open.is_empty() {
        let _ = writeln!(
            report,
            "\n### Open loop, {OPEN_SHAPE} at fixed rates: events missed (median over the repeats; max in brackets), self-reported loss, achieved rate\n"
        );
        let rates: Vec<u64> = {
            let mut rates: Vec<u64> = open.iter().filter_map(|o| o.cell.rate).collect();
            rates.sort();
            rates.dedup();
            rates
        };
        report.push_str("| tool |");
        for rate in &rates {
            let _ = write!(report, " {rate}/s |");
        }
        report.push_str("\n|---|");
        for _ in &rates {
            report.push_str("---|");
        }
        report.push('\n');
        for &tool in tools.iter().filter(|&&t| t != Tool::Untraced) {
            let _ = write!(report, "| {} |", tool.name());
            for &rate in &rates {
                let runs = cells(tool, OPEN_SHAPE, Some(rate));
                let missed = summary(&runs, |o| o.missed() as f64);
                let lost = summary(&runs, |o| o.counted.reported_lost as f64);
                let achieved = summary(&runs, Outcome::ops_per_second);
                match (missed, lost, achieved) {
                    (Some(missed), Some(lost), Some(achieved)) => {
                        let _ = write!(
                            report,
                            " missed {:.0} [{:.0}], lost {:.0}, {:.0}/s |",
                            missed.0, missed.2, lost.0, achieved.0
                        );
                    }
                    _ => report.push_str(" – |"),
                }
            }
            report.push('\n');
        }
    }

    // Targets, on the main shape at its maximum rate.
    let main = |tool: Tool| cells(tool, MAIN_SHAPE, None);
    let tracer_runs = main(Tool::Tracer);
    if tracer_runs.is_empty() {
        return;
    }
    let clean = tracer_runs.iter().all(|o| {
        o.counted.reported_lost == 0
            && o.missed() == 0
            && o.counted.forks == o.load["forks"].as_u64().unwrap_or(u64::MAX)
            // The generator itself was exec'd and exits: the kernel and the tracer see it.
            && o.counted.execs == o.load["execs"].as_u64().unwrap_or(u64::MAX) + 1
            && o.counted.exits == o.load["exits"].as_u64().unwrap_or(u64::MAX) + 1
    });
    let losers: Vec<String> = anchors
        .iter()
        .filter_map(|&anchor| {
            let runs = main(anchor);
            let missed: u64 = runs.iter().map(|o| o.missed()).sum();
            let reported: u64 = runs.iter().map(|o| o.counted.reported_lost).sum();
            (missed > 0).then(|| {
                format!(
                    "{} missed {missed} and reported {reported} lost",
                    anchor.name()
                )
            })
        })
        .collect();
    targets.push(Target {
        name: format!("zero loss at the maximum {MAIN_SHAPE} rate, default settings"),
        pass: clean,
        detail: format!(
            "tracer: {} runs, every event of the workload captured and none reported lost: {}; anchors losing events: {}",
            tracer_runs.len(),
            if clean { "yes" } else { "NO" },
            if losers.is_empty() { "none".to_owned() } else { losers.join("; ") }
        ),
    });
    agent_targets(Tool::Agent, &main(Tool::Agent), &tracer_runs, targets);
    agent_targets(Tool::AgentAll, &main(Tool::AgentAll), &tracer_runs, targets);
    let tracer_cpu = median_of(Tool::Tracer, MAIN_SHAPE, &Outcome::cpu_per_event_ns);
    let best = anchors
        .iter()
        .filter_map(|&a| median_of(a, MAIN_SHAPE, &Outcome::cpu_per_event_ns).map(|c| (a, c)))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    if let (Some(tracer_cpu), Some((anchor, best_cpu))) = (tracer_cpu, best) {
        let ratio = tracer_cpu / best_cpu;
        targets.push(Target {
            name: "userspace CPU per event ≤ 1/3 of the best anchor's".into(),
            pass: ratio <= 1.0 / 3.0,
            detail: format!(
                "tracer {:.2} µs, best anchor {} {:.2} µs: ratio {ratio:.2}",
                tracer_cpu / 1e3,
                anchor.name(),
                best_cpu / 1e3
            ),
        });
    }
    if let (Some(base), Some(traced)) = (
        median_of(Tool::Untraced, MAIN_SHAPE, &Outcome::ops_per_second),
        median_of(Tool::Tracer, MAIN_SHAPE, &Outcome::ops_per_second),
    ) {
        let slowdown = 1.0 - traced / base;
        targets.push(Target {
            name: "workload slowdown ≤ 2% at the maximum rate".into(),
            pass: slowdown <= 0.02,
            detail: format!(
                "{traced:.0} ops/s traced, {base:.0} untraced: {:.1}%",
                slowdown * 100.0
            ),
        });
    }
    let p99s: Vec<(String, f64)> = CLOSED_SHAPES
        .iter()
        .filter_map(|shape| {
            median_of(Tool::Tracer, shape, &|o| {
                o.counted.latency_ms.map_or(f64::NAN, |l| l.1)
            })
            .map(|p99| (shape.to_string(), p99))
        })
        .collect();
    if !p99s.is_empty() {
        let worst = p99s.iter().map(|(_, p)| *p).fold(0.0, f64::max);
        targets.push(Target {
            name: "p99 latency, kernel to trace, < 10 ms".into(),
            pass: worst < 10.0,
            detail: p99s
                .iter()
                .map(|(shape, p99)| format!("{shape} {p99:.2} ms"))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
}

/// Criterion's `thrpt:  [low mid high]` for `name`, in elements per second.
fn criterion_throughput(output: &str, name: &str) -> Option<f64> {
    let start = output.find(name)?;
    let line = output[start..].lines().find(|l| l.contains("thrpt:"))?;
    let inner = &line[line.find('[')? + 1..line.find(']')?];
    let words: Vec<&str> = inner.split_whitespace().collect();
    let (value, unit) = (words.get(2)?.parse::<f64>().ok()?, *words.get(3)?);
    let scale = match unit {
        "Gelem/s" => 1e9,
        "Melem/s" => 1e6,
        "Kelem/s" => 1e3,
        _ => 1.0,
    };
    Some(value * scale)
}

/// Criterion's `time:   [low mid high]` for `name`, as printed.
fn criterion_time(output: &str, name: &str) -> Option<String> {
    let start = output.find(name)?;
    let line = output[start..].lines().find(|l| l.contains("time:"))?;
    let inner = &line[line.find('[')? + 1..line.find(']')?];
    let words: Vec<&str> = inner.split_whitespace().collect();
    Some(format!("{} {}", words.get(2)?, words.get(3)?))
}

fn micro_report(report: &mut String, targets: &mut Vec<Target>) -> Result<()> {
    eprintln!("xtask bench: userspace micro-benchmarks (criterion)");
    let output = crate::command("cargo")
        .args(["bench", "--package", "tracer-bench", "--bench", "userspace"])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo bench")?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("cargo bench failed: {text}");
    }
    let model = criterion_throughput(&text, "ingest/model_and_analysis");
    let recorded = criterion_throughput(&text, "ingest/model_analysis_and_trace_file");
    let frame = criterion_time(&text, "tui_frame_10000_processes");
    let _ = writeln!(
        report,
        "\n### Userspace on one core (criterion, synthetic Celery-host stream of 100,000 processes)\n\n\
         | measure | result |\n|---|---|\n\
         | ingest + model + analysis | {} events/s |\n\
         | the same + JSON trace file | {} events/s |\n\
         | one TUI frame, 10,000 processes | {} |",
        model.map_or("–".into(), |v| format!("{:.2} M", v / 1e6)),
        recorded.map_or("–".into(), |v| format!("{:.2} M", v / 1e6)),
        frame.unwrap_or_else(|| "–".into()),
    );
    if let Some(model) = model {
        targets.push(Target {
            name: "model ingest ≥ 2,000,000 events/s on one core".into(),
            pass: model >= 2e6,
            detail: format!("{:.2} M events/s", model / 1e6),
        });
    }
    Ok(())
}

fn scale_report(bench: &Bench, report: &mut String, targets: &mut Vec<Target>) -> Result<()> {
    eprintln!("xtask bench: the model after 1,000,000 processes");
    let output = Command::new(bench.load.with_file_name("tracer-model-scale"))
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run tracer-model-scale")?;
    if !output.status.success() {
        bail!("tracer-model-scale failed: {}", output.status);
    }
    let scale: Value =
        serde_json::from_slice(&output.stdout).context("no report from tracer-model-scale")?;
    let mib = |key: &str| scale[key].as_f64().unwrap_or(f64::NAN) / 1024.0;
    let _ = writeln!(
        report,
        "\n### The model after {} processes came and went, {} alive\n\n\
         | RSS after | peak RSS | retained in the model | events/s |\n|---|---|---|---|\n\
         | {:.1} MiB | {:.1} MiB | {} | {:.2} M |",
        scale["processes"],
        scale["alive"],
        mib("rss_kib"),
        mib("peak_rss_kib"),
        scale["retained"],
        scale["events_per_second"].as_f64().unwrap_or(f64::NAN) / 1e6,
    );
    targets.push(Target {
        name: "RSS < 64 MiB after 1,000,000 processes (10,000 alive)".into(),
        pass: mib("peak_rss_kib") < 64.0,
        detail: format!(
            "{:.1} MiB, peak {:.1} MiB",
            mib("rss_kib"),
            mib("peak_rss_kib")
        ),
    });
    Ok(())
}

fn machine() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split(':')
                    .nth(1)
                    .map(str::trim)
                    .map(str::to_owned)
            })
        })
        .unwrap_or_default();
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .map_or(String::new(), |kib| {
            format!("{:.0} GiB", kib as f64 / 1048576.0)
        });
    format!("Linux {}, {cpus} CPUs ({model}), {memory}", release.trim())
}

pub fn run(args: BenchArgs) -> Result<()> {
    if !crate::is_root() {
        bail!(
            "the bench loads eBPF programs and reads other processes: run `cargo xtask bench` as root"
        );
    }
    if args.repeats == 0 || args.seconds.is_nan() || args.seconds <= 0.0 {
        bail!("--repeats and --seconds must be positive");
    }
    let tools: Vec<Tool> = if args.tools.is_empty() {
        tools::ALL.to_vec()
    } else {
        let mut tools = vec![Tool::Untraced];
        for name in &args.tools {
            let tool = Tool::parse(name).with_context(|| {
                format!(
                    "unknown tool {name:?}: choose from {}",
                    tools::ALL.map(Tool::name).join(", ")
                )
            })?;
            if !tools.contains(&tool) {
                tools.push(tool);
            }
        }
        tools
    };
    let missing = crate::missing_packages(ANCHOR_PACKAGES);
    if !missing.is_empty() {
        crate::apt_install(&missing, "the bench's anchors and ground truth")?;
    }
    crate::run(crate::command("cargo").args([
        "build",
        "--release",
        "--package",
        "tracer",
        "--package",
        "tracer-bench",
        "--package",
        "tracer-tests",
    ]))?;
    let root = crate::workspace_root();
    let out = root.join("target/bench");
    std::fs::create_dir_all(&out).context("cannot create target/bench")?;
    let bench = Bench {
        tracer: root.join("target/release/tracer"),
        load: root.join("target/release/tracer-load"),
        out: out.clone(),
        args: args.clone(),
    };
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });

    let mut report = format!(
        "## Run\n\n- command: `cargo xtask bench --repeats {} --seconds {} --seed {seed}`\n- machine: {}\n- workload: `tracer-load`, one worker per CPU, {} s per cell; ground truth `perf stat -a -e sched:sched_process_{{fork,exec,exit}}` around it (thread creations and exits taken out)\n- tools:\n",
        args.repeats,
        args.seconds,
        machine(),
        args.seconds
    );
    for tool in tools.iter().filter(|t| **t != Tool::Untraced) {
        let _ = writeln!(report, "  - {}: {}", tool.name(), tool.settings());
    }
    let mut targets = Vec::new();

    if !args.no_side_by_side {
        let mut cells = Vec::new();
        for repeat in 0..args.repeats {
            for &tool in &tools {
                for &shape in CLOSED_SHAPES {
                    cells.push(Cell {
                        tool,
                        shape,
                        rate: None,
                        repeat,
                    });
                }
                if tool != Tool::Untraced {
                    for &rate in OPEN_RATES {
                        cells.push(Cell {
                            tool,
                            shape: OPEN_SHAPE,
                            rate: Some(rate),
                            repeat,
                        });
                    }
                }
            }
        }
        Shuffler::new(seed).shuffle(&mut cells);
        let _stats = BpfStatsEnabled::enable()?;
        let raw_path = out.join("cells.jsonl");
        let mut raw = String::new();
        let mut outcomes = Vec::new();
        let mut failed = Vec::new();
        let started = Instant::now();
        for (index, cell) in cells.iter().enumerate() {
            eprintln!(
                "xtask bench: [{}/{}] {} {}{} (repeat {}), {:.0} s so far",
                index + 1,
                cells.len(),
                cell.tool.name(),
                cell.shape,
                cell.rate.map(|r| format!(" at {r}/s")).unwrap_or_default(),
                cell.repeat + 1,
                started.elapsed().as_secs_f64()
            );
            // A failed cell, even one that panics, is reported and the run goes on; the
            // guard in run_cell has stopped its tool either way.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                bench.run_cell(cell, index)
            }))
            .unwrap_or_else(|panic| {
                let why = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".into());
                Err(anyhow::anyhow!("panicked: {why}"))
            });
            let outcome = match result {
                Ok(outcome) => outcome,
                Err(error) => {
                    let line = format!(
                        "cell {} ({} {}{}, repeat {}) failed: {error:#}",
                        index + 1,
                        cell.tool.name(),
                        cell.shape,
                        cell.rate.map(|r| format!(" at {r}/s")).unwrap_or_default(),
                        cell.repeat + 1
                    );
                    eprintln!("xtask bench: {line}");
                    failed.push(line);
                    continue;
                }
            };
            raw.push_str(&outcome.to_json().to_string());
            raw.push('\n');
            std::fs::write(&raw_path, &raw).context("cannot write cells.jsonl")?;
            outcomes.push(outcome);
        }
        side_by_side_report(&outcomes, &mut report, &mut targets);
        if !failed.is_empty() {
            let _ = writeln!(report, "\n### Failed cells (left out of the tables)\n");
            for line in &failed {
                let _ = writeln!(report, "- {line}");
            }
        }
    }
    if tools.contains(&Tool::Agent)
        && let Err(error) = outage::report(&bench, &mut report, &mut targets)
    {
        targets.push(Target {
            name: "agent with its collector down".into(),
            pass: false,
            detail: format!("the run failed: {error:#}"),
        });
    }
    micro_report(&mut report, &mut targets)?;
    scale_report(&bench, &mut report, &mut targets)?;
    if let Err(error) = python::report(&bench, &mut report, &mut targets) {
        targets.push(Target {
            name: "Python interpreter reads".into(),
            pass: false,
            detail: format!("the run failed: {error:#}"),
        });
    }

    report.push_str("\n## Targets\n\n");
    for target in &targets {
        let _ = writeln!(report, "- {}", target.line());
    }
    let report_path = out.join("report.md");
    std::fs::write(&report_path, &report).context("cannot write the report")?;
    println!("{report}");
    eprintln!("xtask bench: report in {}", report_path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_series_that_drops_is_quiet_not_a_panic() {
        let quiet = Duration::from_millis(300);
        // A thread exited: the summed time went down (wait_idle keeps the series monotonic,
        // and the check itself never underflows).
        assert!(is_quiet(
            &[5_000_000, 1_000_000, 1_000_000, 1_000_000],
            3,
            quiet
        ));
        assert!(!is_quiet(
            &[0, 100_000_000, 200_000_000, 300_000_000],
            3,
            quiet
        ));
        assert!(!is_quiet(&[0], 3, quiet));
    }

    #[test]
    fn a_dropped_guard_stops_and_reaps_its_tool() {
        let child = Command::new("sleep").arg("100").spawn().unwrap();
        let pid = child.id();
        drop(Running(child));
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "the tool was stopped and reaped"
        );
    }

    #[test]
    fn perf_csv_and_criterion_lines() {
        let perf = "# started on x\n\n1008,,sched:sched_process_fork,1127095755,100.00,,\n\
                    1007,,sched:sched_process_exec,1127095755,100.00,,\n\
                    1019,,sched:sched_process_exit,1127095755,100.00,,\n";
        assert_eq!(parse_perf(perf).unwrap(), (1008, 1007, 1019));
        assert!(parse_perf("<not counted>,,sched:sched_process_fork,0,0,,\n").is_err());
        let criterion = "ingest/model_and_analysis\n    time:   [56.3 ms 57.0 ms 57.8 ms]\n    thrpt:  [5.2277 Melem/s 5.2988 Melem/s 5.3604 Melem/s]\n";
        assert_eq!(
            criterion_throughput(criterion, "ingest/model_and_analysis"),
            Some(5.2988e6)
        );
        assert_eq!(
            criterion_time(criterion, "ingest/model_and_analysis").as_deref(),
            Some("57.0 ms")
        );
    }
}
