//! A synthetic event stream shaped like a busy Celery worker host, for the benchmarks of the
//! ingest step and the model: no kernel, so the numbers are the userspace code's alone.

use tracer_core::event::Event;
use tracer_core::fixtures::{self, key};

/// Pids below this belong to the long-lived processes; short-lived ones cycle above it up to
/// the kernel's default `pid_max`, so pids are reused as on a real host.
const SHORT_LIVED_PIDS: std::ops::Range<u32> = 20_000..32_768;
const CELERY_MAIN: u32 = 100;
const POOL_WORKERS: u32 = 8;
/// The first long-lived process; they are children of init.
const LONG_LIVED_BASE: u32 = 1_000;

/// Builds the stream: a snapshot of init, a Celery main process and its pool workers; then
/// `alive` long-lived processes started; then `churn` short-lived ones, each started, exec'd
/// and exited. One in `daemonic_every` of them is forked by a pool worker (a daemonic spawn
/// the analysis reports); the rest by init.
pub struct HostStream {
    pub alive: u32,
    pub churn: u64,
    pub daemonic_every: u64,
}

struct Clock(u64);

impl Clock {
    fn tick(&mut self) -> u64 {
        self.0 += 1_000;
        self.0
    }
}

/// A process present before the capture started.
pub fn snapshot(ts: u64, pid: u32, ppid: u32, cmdline: &[&str]) -> Event {
    fixtures::snapshot(ts, key(pid, u64::from(pid)), ppid, &cmdline.join(" "))
}

fn start(ts: u64, pid: u32, parent: (u32, u64), comm: &str) -> Event {
    fixtures::fork(ts, key(pid, ts), key(parent.0, parent.1), comm)
}

fn exec(ts: u64, pid: u32, start_time: u64, ppid: u32, argv: &[&str]) -> Event {
    fixtures::exec(ts, key(pid, start_time), ppid, argv[0], argv)
}

fn exit(ts: u64, pid: u32, start_time: u64, ppid: u32) -> Event {
    fixtures::exit(ts, key(pid, start_time), ppid, (Some(0), None), ppid)
}

impl HostStream {
    /// The events in order, generated lazily: a million processes need no million-entry
    /// vector.
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        let mut clock = Clock(1_000_000_000);
        let mut head = vec![snapshot(clock.tick(), 1, 0, &["/sbin/init"])];
        head.push(snapshot(
            clock.tick(),
            CELERY_MAIN,
            1,
            &["[celeryd: w1@host:MainProcess] -active- (worker -A proj -c 8)"],
        ));
        for index in 1..=POOL_WORKERS {
            let title = format!("[celeryd: w1@host:ForkPoolWorker-{index}]");
            head.push(snapshot(
                clock.tick(),
                CELERY_MAIN + index,
                CELERY_MAIN,
                &[&title],
            ));
        }
        for offset in 0..self.alive {
            let pid = LONG_LIVED_BASE + offset;
            let ts = clock.tick();
            head.push(start(ts, pid, (1, 1), "sleeper"));
            head.push(exec(
                clock.tick(),
                pid,
                ts,
                1,
                &["/usr/bin/sleep", "infinity"],
            ));
        }
        let pids = SHORT_LIVED_PIDS.len() as u64;
        let daemonic_every = self.daemonic_every.max(1);
        let churn = (0..self.churn).flat_map(move |n| {
            let pid = SHORT_LIVED_PIDS.start + (n % pids) as u32;
            let parent = if n % daemonic_every == 0 {
                let worker = CELERY_MAIN + 1 + (n % u64::from(POOL_WORKERS)) as u32;
                (worker, u64::from(worker))
            } else {
                (1, 1)
            };
            let ts = clock.tick();
            [
                start(ts, pid, parent, "python3"),
                exec(clock.tick(), pid, ts, parent.0, &["/bin/true", "--version"]),
                exit(clock.tick(), pid, ts, parent.0),
            ]
        });
        head.into_iter().chain(churn)
    }
}
