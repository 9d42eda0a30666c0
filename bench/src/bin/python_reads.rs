//! What reading a Python interpreter costs, per process: the first process of a binary (its
//! ELF symbols parsed), new processes of a binary already seen, and answers from the cache.
//! Starts `--processes` interpreters of `--python` (each with multiprocessing imported, as
//! every Celery or Airflow process has), reads each, and prints JSON for `cargo xtask bench`.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use tracer_core::analysis::Wanted;
use tracer_core::event::{ProcessKey, ReadOutcome};
use tracer_live::host;
use tracer_live::procfs::ProcFs;
use tracer_live::python::InterpreterReader;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "python3")]
    python: String,
    #[arg(long, default_value_t = 40)]
    processes: usize,
}

/// Interpreters that go when this does.
struct Interpreters(Vec<Child>);

impl Drop for Interpreters {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn median_us(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.processes < 2 {
        bail!("--processes must be at least 2");
    }
    let mut interpreters = Interpreters(Vec::new());
    let procfs = ProcFs::host(host::clock_tick_ns());
    let mut keys = Vec::new();
    for _ in 0..args.processes {
        let mut child = Command::new(&args.python)
            .args([
                "-c",
                "import multiprocessing, os, time; print(os.getpid(), flush=True); time.sleep(120)",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", args.python))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        interpreters.0.push(child);
        let pid: u32 = line.trim().parse().context("no pid from the interpreter")?;
        let stat = procfs.stat(pid).context("the interpreter is gone")?;
        keys.push(ProcessKey {
            pid,
            start_time: stat.start_ticks * procfs.tick_ns(),
        });
    }
    let mut reader = InterpreterReader::new(procfs);
    let timed = |key: ProcessKey, reader: &mut InterpreterReader| -> Result<f64> {
        let started = Instant::now();
        let read = reader.inspect(Wanted {
            process: key,
            execs: 0,
        });
        let us = started.elapsed().as_secs_f64() * 1e6;
        if !matches!(read.outcome, ReadOutcome::Process(_)) {
            bail!("{key:?} was not read: {}", read.describe());
        }
        Ok(us)
    };
    let first = timed(keys[0], &mut reader)?;
    let mut fresh = keys[1..]
        .iter()
        .map(|&key| timed(key, &mut reader))
        .collect::<Result<Vec<f64>>>()?;
    let walks = reader.stats.reads;
    let calls = reader.stats.calls;
    let mut cached = keys
        .iter()
        .map(|&key| timed(key, &mut reader))
        .collect::<Result<Vec<f64>>>()?;
    let version = Command::new(&args.python)
        .args(["-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"])
        .output()?;
    let report = serde_json::json!({
        "python": String::from_utf8_lossy(&version.stdout).trim(),
        "processes": args.processes,
        "first_us": first,
        "fresh_us_median": median_us(&mut fresh),
        "fresh_us_max": fresh.iter().copied().fold(0.0, f64::max),
        "cached_us_median": median_us(&mut cached),
        "syscalls_per_read": calls as f64 / walks as f64,
    });
    println!("{report}");
    Ok(())
}
