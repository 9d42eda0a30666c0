//! The benchmark's workload: creates processes (or threads) in one of a few shapes, either as
//! fast as the machine allows (closed loop: each worker starts the next operation when the
//! last one is over) or at a fixed rate (open loop: operations start on a schedule, whether
//! or not earlier ones are done). Prints one JSON line with exactly what it created.
//!
//! Every process it creates has been reaped when it exits, orphans included (each worker is a
//! child subreaper), so all their events have happened by then.

use std::ffi::CString;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};
use nix::errno::Errno;
use nix::sys::prctl;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, getpid, pipe, read};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Shape {
    /// fork, and the child exits.
    ForkExit,
    /// fork, the child execs /bin/true, which exits.
    ForkExec,
    /// A thread is created and exits: no process at all.
    Threads,
    /// A chain of --depth processes, each the child of the one before; the deepest exits
    /// first.
    Chain,
    /// One parent forks --width children, which exit.
    Fan,
    /// fork A; A forks B and exits; B, orphaned, exits once A is gone.
    DoubleFork,
}

#[derive(Parser)]
#[command(
    name = "tracer-load",
    about = "Creates processes at the maximum or a fixed rate and reports what it created"
)]
struct Cli {
    #[arg(value_enum)]
    shape: Shape,
    /// Keep starting operations for this long.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Open loop: start this many operations per second (over all workers). Without it,
    /// closed loop at the maximum rate.
    #[arg(long)]
    rate: Option<f64>,
    /// Workers running operations side by side; the default is one per CPU.
    #[arg(long)]
    workers: Option<usize>,
    /// Processes in a chain.
    #[arg(long, default_value_t = 100)]
    depth: u32,
    /// Children in a fan.
    #[arg(long, default_value_t = 1000)]
    width: u32,
    /// Program run by fork-exec.
    #[arg(long, default_value = "/bin/true")]
    program: String,
}

/// What a worker created. Every number is counted where it happened, never derived.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    ops: u64,
    /// Processes created (workers included, in the totals).
    forks: u64,
    execs: u64,
    /// Processes that exited and were reaped.
    exits: u64,
    threads: u64,
    /// Processes whose parent exited before them.
    orphans: u64,
    /// Open loop: operations started more than a millisecond behind schedule.
    late: u64,
    /// Operations whose processes did not end the expected way.
    failed: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.ops += other.ops;
        self.forks += other.forks;
        self.execs += other.execs;
        self.exits += other.exits;
        self.threads += other.threads;
        self.orphans += other.orphans;
        self.late += other.late;
        self.failed += other.failed;
    }

    /// Eight native-endian u64s, for the pipe from a worker to the main process.
    fn to_bytes(self) -> [u8; 64] {
        let fields = [
            self.ops,
            self.forks,
            self.execs,
            self.exits,
            self.threads,
            self.orphans,
            self.late,
            self.failed,
        ];
        let mut bytes = [0; 64];
        for (chunk, field) in bytes.chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&field.to_ne_bytes());
        }
        bytes
    }

    fn from_bytes(bytes: &[u8; 64]) -> Counts {
        let mut fields = bytes
            .chunks_exact(8)
            .map(|chunk| u64::from_ne_bytes(chunk.try_into().expect("8-byte chunk")));
        let mut next = || fields.next().unwrap_or(0);
        Counts {
            ops: next(),
            forks: next(),
            execs: next(),
            exits: next(),
            threads: next(),
            orphans: next(),
            late: next(),
            failed: next(),
        }
    }
}

fn fork() -> Result<ForkResult> {
    // SAFETY: the load generator is single-threaded whenever it forks (only the thread shape
    // makes threads, and it never forks from them); children exec or exit at once.
    unsafe { nix::unistd::fork() }.context("fork failed")
}

/// Leaves a forked child without running destructors or flushing anything of the parent's.
fn child_exit(code: i32) -> ! {
    // SAFETY: _exit ends the process immediately; nothing shared is left half-done since the
    // child touched no shared state.
    unsafe { libc::_exit(code) }
}

/// Reaps one child, blocking. Returns whether it exited with status 0.
fn reap(pid: Option<Pid>) -> Result<bool> {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code == 0),
            Ok(WaitStatus::Signaled(..)) => return Ok(false),
            Ok(_) => continue,
            Err(Errno::EINTR) => continue,
            Err(error) => return Err(error).context("waitpid failed"),
        }
    }
}

struct Workload {
    shape: Shape,
    depth: u32,
    width: u32,
    program: CString,
}

impl Workload {
    /// Runs one operation to its end, counting into `counts`.
    fn run_once(&self, counts: &mut Counts) -> Result<()> {
        counts.ops += 1;
        let ok = match self.shape {
            Shape::ForkExit => self.fork_exit(counts)?,
            Shape::ForkExec => self.fork_exec(counts)?,
            Shape::Threads => {
                std::thread::spawn(|| {})
                    .join()
                    .map_err(|_| anyhow::anyhow!("a thread panicked"))?;
                counts.threads += 1;
                true
            }
            Shape::Chain => self.chain(counts)?,
            Shape::Fan => self.fan(counts)?,
            Shape::DoubleFork => self.double_fork(counts)?,
        };
        if !ok {
            counts.failed += 1;
        }
        Ok(())
    }

    /// Starts one operation and returns without waiting for it (open loop): the operation
    /// runs in a child process of its own.
    fn start(&self, counts: &mut Counts) -> Result<()> {
        counts.ops += 1;
        match self.shape {
            Shape::ForkExit => {
                if let ForkResult::Child = fork()? {
                    child_exit(0)
                }
                counts.forks += 1;
            }
            Shape::ForkExec => {
                if let ForkResult::Child = fork()? {
                    self.exec_program()
                }
                counts.forks += 1;
                counts.execs += 1;
            }
            _ => bail!("open loop runs fork-exit and fork-exec only"),
        }
        Ok(())
    }

    fn exec_program(&self) -> ! {
        let argv = [self.program.as_ptr(), std::ptr::null()];
        // SAFETY: argv is a NULL-terminated array of valid C strings that outlive the call;
        // execv only returns on failure.
        unsafe { libc::execv(self.program.as_ptr(), argv.as_ptr()) };
        child_exit(127)
    }

    fn fork_exit(&self, counts: &mut Counts) -> Result<bool> {
        let child = match fork()? {
            ForkResult::Child => child_exit(0),
            ForkResult::Parent { child } => child,
        };
        counts.forks += 1;
        let ok = reap(Some(child))?;
        counts.exits += 1;
        Ok(ok)
    }

    fn fork_exec(&self, counts: &mut Counts) -> Result<bool> {
        let child = match fork()? {
            ForkResult::Child => self.exec_program(),
            ForkResult::Parent { child } => child,
        };
        counts.forks += 1;
        let ok = reap(Some(child))?;
        counts.exits += 1;
        // /bin/true exits 0 only once it has been exec'd; a failed exec exits 127.
        if ok {
            counts.execs += 1;
        }
        Ok(ok)
    }

    /// Each link forks the next and waits for it, then exits: the deepest exits first.
    fn chain(&self, counts: &mut Counts) -> Result<bool> {
        let child = match fork()? {
            ForkResult::Child => {
                for _ in 1..self.depth {
                    match fork() {
                        Ok(ForkResult::Child) => continue,
                        Ok(ForkResult::Parent { child }) => {
                            child_exit(if reap(Some(child)).unwrap_or(false) {
                                0
                            } else {
                                1
                            })
                        }
                        Err(_) => child_exit(1),
                    }
                }
                child_exit(0)
            }
            ForkResult::Parent { child } => child,
        };
        let ok = reap(Some(child))?;
        // Each link exits 0 only if all deeper links were created and exited 0.
        if ok {
            counts.forks += u64::from(self.depth);
            counts.exits += u64::from(self.depth);
        }
        Ok(ok)
    }

    fn fan(&self, counts: &mut Counts) -> Result<bool> {
        for _ in 0..self.width {
            if let ForkResult::Child = fork()? {
                child_exit(0)
            }
            counts.forks += 1;
        }
        let mut ok = true;
        for _ in 0..self.width {
            ok &= reap(None)?;
            counts.exits += 1;
        }
        Ok(ok)
    }

    /// B blocks on a pipe that only A holds open besides B's own read end, so B sees EOF
    /// exactly when A has exited: B is always orphaned, and reaped here as the subreaper.
    fn double_fork(&self, counts: &mut Counts) -> Result<bool> {
        let (read_end, write_end) = pipe().context("pipe failed")?;
        let middle = match fork()? {
            ForkResult::Child => match fork() {
                Ok(ForkResult::Child) => {
                    drop(write_end);
                    let mut byte = [0u8; 1];
                    while let Err(Errno::EINTR) = read(&read_end, &mut byte) {}
                    child_exit(0)
                }
                Ok(ForkResult::Parent { .. }) => child_exit(0),
                Err(_) => child_exit(1),
            },
            ForkResult::Parent { child } => child,
        };
        drop(read_end);
        drop(write_end);
        let middle_ok = reap(Some(middle))?;
        counts.forks += 1;
        counts.exits += 1;
        if !middle_ok {
            return Ok(false);
        }
        counts.forks += 1;
        counts.orphans += 1;
        let orphan_ok = reap(None)?;
        counts.exits += 1;
        Ok(orphan_ok)
    }
}

/// Reaps whatever children have exited, without blocking.
fn reap_ready(counts: &mut Counts, running: &mut u64) -> Result<()> {
    while *running > 0 {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => break,
            Ok(WaitStatus::Exited(_, code)) => {
                *running -= 1;
                counts.exits += 1;
                if code != 0 {
                    counts.failed += 1;
                }
            }
            Ok(WaitStatus::Signaled(..)) => {
                *running -= 1;
                counts.exits += 1;
                counts.failed += 1;
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(error) => return Err(error).context("waitpid failed"),
        }
    }
    Ok(())
}

/// One worker's loop, in its own process. Closed loop: operations back to back until the
/// time is up. Open loop: an operation every `interval`, on schedule from `start`.
fn work(
    workload: &Workload,
    start: Instant,
    seconds: f64,
    interval: Option<Duration>,
) -> Result<Counts> {
    // Orphans of the double fork come back here rather than to init, to be counted.
    prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER failed")?;
    let end = start + Duration::from_secs_f64(seconds);
    let mut counts = Counts::default();
    match interval {
        None => {
            while Instant::now() < end {
                workload.run_once(&mut counts)?;
            }
        }
        Some(interval) => {
            let mut running = 0u64;
            let mut due = start;
            // Behind schedule, it starts no operation after the window either: the rate it
            // reached is what it reports.
            while due < end && Instant::now() < end {
                // Reaped as they end, also when behind schedule: zombies would use up pids.
                reap_ready(&mut counts, &mut running)?;
                let now = Instant::now();
                if now < due {
                    std::thread::sleep(due - now);
                } else if now - due > Duration::from_millis(1) {
                    counts.late += 1;
                }
                workload.start(&mut counts)?;
                running += 1;
                due += interval;
            }
            while running > 0 {
                if !reap(None)? {
                    counts.failed += 1;
                }
                running -= 1;
                counts.exits += 1;
            }
        }
    }
    Ok(counts)
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tracer-load: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if !(cli.seconds > 0.0 && cli.seconds.is_finite()) {
        bail!("--seconds must be a positive number");
    }
    if cli.depth == 0 || cli.width == 0 {
        bail!("--depth and --width must be at least 1");
    }
    let workers = cli
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let interval = match cli.rate {
        Some(rate) if rate > 0.0 && rate.is_finite() => {
            Some(Duration::from_secs_f64(workers as f64 / rate))
        }
        Some(_) => bail!("--rate must be a positive number"),
        None => None,
    };
    if interval.is_some() && !matches!(cli.shape, Shape::ForkExit | Shape::ForkExec) {
        bail!("--rate works with fork-exit and fork-exec");
    }
    let workload = Workload {
        shape: cli.shape,
        depth: cli.depth,
        width: cli.width,
        program: CString::new(cli.program).context("--program has a NUL byte")?,
    };

    let start = Instant::now() + Duration::from_millis(20);
    let mut totals = Counts::default();
    let mut pipes = Vec::new();
    for _ in 0..workers {
        let (read_end, write_end) = pipe().context("pipe failed")?;
        match fork()? {
            ForkResult::Child => {
                drop(read_end);
                std::thread::sleep(start.saturating_duration_since(Instant::now()));
                let code = match work(&workload, start, cli.seconds, interval) {
                    Ok(counts) => {
                        let mut out = std::fs::File::from(write_end);
                        if out.write_all(&counts.to_bytes()).is_ok() {
                            0
                        } else {
                            1
                        }
                    }
                    Err(error) => {
                        eprintln!("tracer-load: worker: {error:#}");
                        1
                    }
                };
                child_exit(code)
            }
            ForkResult::Parent { child } => {
                drop(write_end);
                pipes.push((child, read_end));
            }
        }
    }
    totals.forks += workers as u64;
    for (child, read_end) in pipes {
        let mut bytes = [0u8; 64];
        let mut reader = std::fs::File::from(read_end);
        let reported = std::io::Read::read_exact(&mut reader, &mut bytes).is_ok();
        let ok = reap(Some(child))?;
        totals.exits += 1;
        if !(reported && ok) {
            bail!("worker {child} failed");
        }
        totals.add(&Counts::from_bytes(&bytes));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let report = json!({
        "shape": cli.shape.to_possible_value().map(|v| v.get_name().to_owned()),
        "root": getpid().as_raw(),
        "workers": workers,
        "target_rate": cli.rate,
        "ops": totals.ops,
        "forks": totals.forks,
        "execs": totals.execs,
        "exits": totals.exits,
        "threads": totals.threads,
        "orphans": totals.orphans,
        "late": totals.late,
        "failed": totals.failed,
        "seconds": elapsed,
        "ops_per_second": totals.ops as f64 / elapsed,
    });
    println!("{report}");
    Ok(())
}
