//! Reading Python interpreters: what a read costs per process, and a fork storm from a Python
//! parent at full speed under `tracer record` with interpreter reads on and off.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{Bench, Running, Target, wait_idle};

/// A Python parent forking (and reaping) children as fast as it can, with multiprocessing
/// imported as any Celery or Airflow process has it: its interpreter is read once.
const STORM: &str = r#"
import json, multiprocessing, os, sys, time
end = time.monotonic() + float(sys.argv[1])
forks = 0
while time.monotonic() < end:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    forks += 1
print(json.dumps({"forks": forks}))
"#;

/// One storm under the tracer.
struct Storm {
    forks: u64,
    events: u64,
    interpreter_reads: u64,
    lost: bool,
    cpu_ns: u64,
}

fn storm(bench: &Bench, inspect: bool, seconds: f64, dir: &Path) -> Result<Storm> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let trace = dir.join("trace.jsonl");
    let err = dir.join("err");
    let mut command = Command::new(&bench.tracer);
    command
        .args(["record", "-o"])
        .arg(&trace)
        .args(["--python-inspect", if inspect { "on" } else { "off" }])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err)?);
    let mut tracer = Running(command.spawn().context("cannot start tracer record")?);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&err)?.contains("tracer: recording to") {
        if Instant::now() > deadline || tracer.0.try_wait()?.is_some() {
            bail!(
                "tracer record did not start: {}",
                std::fs::read_to_string(&err)?
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = tracer.0.id();
    let before = wait_idle(pid, Duration::from_millis(300), Duration::from_secs(10));
    let output = Command::new("python3")
        .args(["-c", STORM, &seconds.to_string()])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run python3")?;
    if !output.status.success() {
        bail!("the Python storm failed: {}", output.status);
    }
    let report: Value = serde_json::from_slice(&output.stdout).context("no storm report")?;
    let after = wait_idle(pid, Duration::from_millis(300), Duration::from_secs(20));
    if !tracer.stop(Duration::from_secs(30))? {
        bail!("tracer record did not stop on SIGINT");
    }
    let stderr = std::fs::read_to_string(&err)?;
    let text = std::fs::read_to_string(&trace)?;
    let events = text.lines().count().saturating_sub(1) as u64;
    let interpreter_reads = text
        .lines()
        .filter(|l| l.starts_with(r#"{"event":"interpreter""#))
        .count() as u64;
    Ok(Storm {
        forks: report["forks"].as_u64().unwrap_or(0),
        events,
        interpreter_reads,
        lost: !stderr.contains("no kernel records lost"),
        cpu_ns: after.saturating_sub(before),
    })
}

pub fn report(bench: &Bench, report: &mut String, targets: &mut Vec<Target>) -> Result<()> {
    eprintln!("xtask bench: Python interpreter reads");
    let output = Command::new(bench.load.with_file_name("tracer-python-reads"))
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run tracer-python-reads")?;
    if !output.status.success() {
        bail!("tracer-python-reads failed: {}", output.status);
    }
    let reads: Value =
        serde_json::from_slice(&output.stdout).context("no report from tracer-python-reads")?;
    let us = |key: &str| reads[key].as_f64().unwrap_or(f64::NAN);
    let _ = writeln!(
        report,
        "\n### Reading Python interpreters (Python {}, {} processes)\n\n\
         | first process of a binary (ELF symbols parsed) | another process (median, max) | cached (median) | system calls per read |\n|---|---|---|---|\n\
         | {:.0} µs | {:.0} µs, {:.0} µs | {:.1} µs | {:.1} |",
        reads["python"].as_str().unwrap_or("?"),
        reads["processes"],
        us("first_us"),
        us("fresh_us_median"),
        us("fresh_us_max"),
        us("cached_us_median"),
        us("syscalls_per_read"),
    );
    targets.push(Target {
        name: "an interpreter read (ELF cached) takes < 1 ms".into(),
        pass: us("fresh_us_median") < 1000.0,
        detail: format!("median {:.0} µs", us("fresh_us_median")),
    });

    let seconds = bench.args.seconds.max(2.0);
    let _ = writeln!(
        report,
        "\n### A Python parent forking at full speed for {seconds} s, under `tracer record`\n\n\
         | interpreter reads | forks/s | events | reads in the trace | kernel records lost | tracer CPU per event |\n|---|---|---|---|---|---|"
    );
    let mut per_event = [Vec::new(), Vec::new()];
    let mut lost_any = false;
    for repeat in 0..bench.args.repeats.min(3) {
        for (slot, inspect) in [(0, false), (1, true)] {
            let dir = bench
                .out
                .join("python-storm")
                .join(format!("{repeat}-{inspect}"));
            let run = storm(bench, inspect, seconds, &dir)?;
            let cpu_per_event = run.cpu_ns as f64 / run.events.max(1) as f64;
            per_event[slot].push(cpu_per_event);
            lost_any |= run.lost;
            let _ = writeln!(
                report,
                "| {} | {:.0} | {} | {} | {} | {:.0} ns |",
                if inspect { "on" } else { "off" },
                run.forks as f64 / seconds,
                run.events,
                run.interpreter_reads,
                if run.lost { "some" } else { "0" },
                cpu_per_event
            );
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (off, on) = (median(&mut per_event[0]), median(&mut per_event[1]));
    let _ = writeln!(
        report,
        "\nTracer CPU per event, median: {off:.0} ns without reads, {on:.0} ns with them ({:.2}×).",
        on / off
    );
    targets.push(Target {
        name: "a Python fork storm with interpreter reads loses no kernel record".into(),
        pass: !lost_any,
        detail: format!("CPU per event {on:.0} ns with reads, {off:.0} ns without"),
    });
    Ok(())
}
