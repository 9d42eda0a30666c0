//! The agent with its collector down: `tracer agent --otlp-events all` sends to a port
//! nobody listens on while a steady open-loop workload runs for `--outage-minutes`. Its
//! resident memory is sampled all along (it must stay flat: the export queue is bounded), and
//! at the stop every record it made must be accounted for exactly: what its traces hold of the
//! kinds it exports equals what its last line says it sent, had rejected and dropped.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

use super::{Bench, Running, Target, sample, tools};

/// The steady load: fork+exit a second, well below the machine's maximum.
const RATE: u64 = 2_000;
const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Resident memory may grow this much after the first minute, when queue and caches are full.
const FLAT_MIB: f64 = 4.0;

/// Lines of a trace the agent makes a log record of under `--otlp-events all`.
fn exported_lines(dir: &Path) -> Result<u64> {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).context("the agent wrote no traces")? {
        let text = std::fs::read_to_string(entry?.path())?;
        count += text
            .lines()
            .filter(|line| {
                [
                    "process_start",
                    "exec",
                    "exit",
                    "reparent",
                    "finding",
                    "lost",
                ]
                .iter()
                .any(|kind| line.starts_with(&format!("{{\"event\":\"{kind}\"")))
            })
            .count() as u64;
    }
    Ok(count)
}

/// `OTLP: N records sent, R rejected by the collector, D dropped` of the agent's last line.
fn accounted(err: &str) -> Option<(u64, u64, u64)> {
    let text = &err[err.rfind("OTLP: ")? + "OTLP: ".len()..];
    let numbers: Vec<u64> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .filter_map(|n| n.parse().ok())
        .collect();
    match numbers[..] {
        [sent, rejected, dropped] => Some((sent, rejected, dropped)),
        _ => None,
    }
}

pub(super) fn report(bench: &Bench, report: &mut String, targets: &mut Vec<Target>) -> Result<()> {
    let minutes = bench.args.outage_minutes;
    if minutes == 0 {
        return Ok(());
    }
    let dir = bench.out.join("outage");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // A port nobody listens on: the collector is down the whole time.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let err_path = dir.join("err");
    let mut agent = tools::agent_command(&bench.tracer, &dir, dead, true);
    agent
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err_path)?);
    let mut running = Running(agent.spawn().context("cannot start the agent")?);
    let ready = Instant::now();
    while !std::fs::read_to_string(&err_path).is_ok_and(|e| e.contains("capturing")) {
        if ready.elapsed() > Duration::from_secs(60) {
            bail!("the agent did not start within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("xtask bench: the agent with its collector down for {minutes} min");
    let mut load = Command::new(&bench.load)
        .args(["fork-exit", "--rate", &RATE.to_string(), "--seconds"])
        .arg((minutes * 60).to_string())
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start the workload")?;
    let pid = running.0.id();
    let started = Instant::now();
    let mut samples: Vec<(f64, u64)> = Vec::new();
    while load.try_wait()?.is_none() {
        samples.push((
            started.elapsed().as_secs_f64(),
            sample::status_kib(pid, "VmRSS").unwrap_or(0),
        ));
        std::thread::sleep(SAMPLE_EVERY);
    }
    if !running.stop(Duration::from_secs(60))? {
        bail!("the agent did not stop within a minute");
    }
    let err = std::fs::read_to_string(&err_path)?;
    let made = exported_lines(&dir.join("traces"))?;
    let Some((sent, rejected, dropped)) = accounted(&err) else {
        bail!("the agent's last line has no OTLP account: {err}");
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let after_a_minute = samples
        .iter()
        .find(|(t, _)| *t >= 60.0)
        .map_or(0, |(_, kib)| *kib);
    let highest = samples.iter().map(|(_, kib)| *kib).max().unwrap_or(0);
    let last = samples.last().map_or(0, |(_, kib)| *kib);
    let _ = writeln!(
        report,
        "\n### The agent with its collector down for {minutes} min (fork-exit at {RATE}/s, `--otlp-events all`)\n\n\
         | records made | sent | rejected | dropped | RSS after 1 min | highest | at the end |\n\
         |---|---|---|---|---|---|---|\n\
         | {made} | {sent} | {rejected} | {dropped} | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
        mib(after_a_minute),
        mib(highest),
        mib(last)
    );
    let grown = mib(highest.saturating_sub(after_a_minute));
    targets.push(Target {
        name: format!("agent, collector down {minutes} min: RSS flat after the first minute"),
        pass: after_a_minute > 0 && grown <= FLAT_MIB,
        detail: format!(
            "{:.1} MiB after 1 min, {:.1} MiB at most: grew {grown:.1} MiB (≤ {FLAT_MIB})",
            mib(after_a_minute),
            mib(highest)
        ),
    });
    targets.push(Target {
        name: format!("agent, collector down {minutes} min: every record accounted for"),
        pass: made == sent + rejected + dropped && dropped > 0,
        detail: format!(
            "{made} records made from the trace; {sent} sent + {rejected} rejected + {dropped} dropped = {}",
            sent + rejected + dropped
        ),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::accounted;

    #[test]
    fn the_agents_last_line() {
        let line = "tracer agent: stopped after 9 events, no kernel records lost; kernel-to-trace latency p50 1.000 ms, p99 2.000 ms, max 3.000 ms over 9 events; OTLP: 3 records sent, 1 rejected by the collector, 5 dropped\n";
        assert_eq!(accounted(line), Some((3, 1, 5)));
        assert_eq!(accounted("no account"), None);
    }
}
