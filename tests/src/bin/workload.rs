//! Builds exact process trees for the tracer's tests and benchmarks, then prints one JSON line
//! saying what it created (pids, counts): the ground truth a test asserts the tracer against.
//!
//! Every scenario waits for everything it started, grandchildren and orphans included, before
//! it exits: once the caller has reaped this process, all of its events have happened.

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use nix::sys::prctl;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, wait, waitpid};
use nix::unistd::{ForkResult, Pid, execv, getpid, gettid, pipe};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "tracer-workload",
    about = "Builds process trees for the tracer's tests"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Fork a child that execs `sh -c "exit CODE"`.
    ForkExecExit {
        #[arg(long, default_value_t = 3)]
        code: i32,
    },
    /// Fork a sleeper, then a sibling that SIGKILLs it.
    SiblingKill,
    /// Start and stop COUNT threads (or as many as SECONDS allow), at most ten at a time.
    Threads {
        #[arg(long, default_value_t = 50)]
        count: usize,
        #[arg(long)]
        seconds: Option<f64>,
    },
    /// COUNT children, each starting THREADS threads that spin, then ending the whole process
    /// with exit_group while they run: the threads die at the same instant.
    ThreadedExits {
        #[arg(long, default_value_t = 100)]
        count: usize,
        #[arg(long, default_value_t = 8)]
        threads: usize,
    },
    /// A child named `tracer-oom` in a new memory cgroup limited to LIMIT_MIB allocates until
    /// the kernel's OOM killer kills it (cgroup v1 `memory.limit_in_bytes`, or v2 `memory.max`).
    Oom {
        #[arg(long, default_value_t = 64)]
        limit_mib: u64,
        /// Report, then keep the cgroup until standard input closes, as a service's cgroup
        /// outlives its killed process.
        #[arg(long)]
        hold: bool,
    },
    /// A child named `tracer-cpu` with RLIMIT_CPU 1 s soft, 2 s hard, ignoring SIGXCPU, spins
    /// until the kernel kills it at the hard limit.
    CpuLimit,
    /// A thread of this process forks a child named `tracer-pdeath`, which sets
    /// PR_SET_PDEATHSIG(SIGKILL); the thread then exits while this process lives on.
    PdeathThread,
    /// Double fork: the middle process exits and the grandchild is orphaned.
    DoubleFork {
        /// Become a child subreaper first (PR_SET_CHILD_SUBREAPER).
        #[arg(long)]
        subreaper: bool,
        /// Keep the orphan alive until standard input closes (the report comes first).
        #[arg(long)]
        hold: bool,
    },
    /// As a subreaper, a chain of DEPTH processes, each the child of the one before; the last
    /// but one exits and the last is orphaned, adopted by this process across DEPTH - 2 live
    /// ancestors. The orphan lives until standard input closes (the report comes first).
    DeepChain {
        #[arg(long, default_value_t = 80)]
        depth: usize,
    },
    /// Double fork inside a new pid namespace: the namespace's init adopts the orphan.
    PidnsDoubleFork,
    /// A non-leader thread execs `sh -c "exit 0"`.
    ThreadExec,
    /// Rewrite the argument area to TITLE and comm to its first 15 bytes, as setproctitle
    /// does, then wait for standard input to close.
    Rename {
        #[arg(long, required_unless_present = "title_env")]
        title: Option<String>,
        /// Take the title from this environment variable instead: it is then not among the
        /// arguments, and a long one spills past the argument area into the environment
        /// strings, as setproctitle's titles do.
        #[arg(long)]
        title_env: Option<String>,
        /// First move to a process group of its own, as Airflow's task runner does.
        #[arg(long)]
        own_group: bool,
        /// Room for the title: the argument area is as long as the original arguments.
        #[arg(long, default_value = "")]
        pad: String,
    },
    /// parent → child → grandchild, all alive until standard input closes.
    Hold,
    /// ROUNDS times: a child A forks C and exits (C is orphaned); then another child H creates
    /// B with A's freshly freed pid (clone3 set_tid), so two processes hold the same pid in
    /// turn while C, A's orphan, still lives.
    PidReuse {
        #[arg(long, default_value_t = 10)]
        rounds: usize,
    },
    /// Processes that attack a terminal: a program named with escape sequences, a newline and
    /// invalid UTF-8, run with such arguments and 128 KiB of them (alive until standard input
    /// closes), and a process renaming itself RATE times a second for SECONDS.
    Hostile {
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// COUNT fork + exec(PROGRAM) + exit (or as many as SECONDS allow), PARALLEL children at
    /// a time.
    Burst {
        #[arg(long, default_value_t = u64::MAX)]
        count: u64,
        #[arg(long)]
        seconds: Option<f64>,
        #[arg(long, default_value = "/bin/true")]
        program: String,
        #[arg(long, default_value_t = 8)]
        parallel: usize,
        /// Each child first renames itself to this (PR_SET_NAME).
        #[arg(long)]
        rename: Option<String>,
        /// Every Nth child does not exec: the parent ends it with SIGTERM (after its rename).
        #[arg(long)]
        kill_every: Option<u64>,
    },
    /// A child raises RLIMIT_CORE and dies by SIGABRT (raise) in a temporary directory, where
    /// the kernel may write its core.
    CoreDump,
    /// SIGHUP (ignored there), SIGINT, SIGQUIT, SIGABRT, SIGUSR1 twice (blocked there, so the
    /// second is already pending), SIGTERM, SIGUSR2, SIGCHLD, SIGWINCH, SIGSTOP, SIGCONT, and
    /// last SIGKILL, all sent by this process to a child.
    Signals,
    /// A child renames itself and calls clone(CLONE_PARENT): the new process is this
    /// process's child, a copy of its caller.
    CloneParent,
    /// The race of `CLONE_PARENT` with the parent's exit: this process (a subreaper) forks P,
    /// which opens FILES files (so that its exit spends long between the exit probe and the
    /// reparenting of its children) and forks C; as P exits, C makes copies of itself with
    /// clone(CLONE_PARENT), P's children, until it sees itself adopted. They live until
    /// this process has reported.
    CloneParentRace {
        #[arg(long, default_value_t = 65_536)]
        files: u64,
    },
    /// A child moves into a new cgroup of its own (cgroup v2) and a new session, becomes uid
    /// 65534 and forks a grandchild, which then moves to a process group of its own and
    /// renames itself. The grandchild reports what /proc says at each step.
    Identity,
}

fn fork() -> Result<ForkResult> {
    // SAFETY: every scenario forks while single-threaded (the thread scenarios never fork), so
    // the child may run arbitrary code.
    unsafe { nix::unistd::fork() }.context("fork failed")
}

fn report(value: serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// Blocks until every write end of the pipe is closed.
fn wait_for_eof(read_end: OwnedFd) {
    let _ = File::from(read_end).read_to_end(&mut Vec::new());
}

fn wait_for_stdin_eof() {
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

fn exec_sh(script: &str) -> ! {
    let argv = [
        c"sh".to_owned(),
        c"-c".to_owned(),
        CString::new(script).unwrap(),
    ];
    let _ = execv(c"/bin/sh", &argv);
    std::process::exit(127)
}

fn pid_json(pid: Pid) -> serde_json::Value {
    json!(pid.as_raw())
}

/// Field `n` (1-based, as in proc(5)) of `/proc/PID/stat`.
fn stat_field(pid: &str, n: usize) -> Result<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("no /proc/{pid}/stat"))?;
    let rest = &text[text.rfind(')').context("bad stat")? + 1..];
    rest.split_ascii_whitespace()
        .nth(n - 3)
        .map(str::to_owned)
        .context("short stat")
}

fn ppid_of(pid: Pid) -> Result<i32> {
    Ok(stat_field(&pid.to_string(), 4)?.parse()?)
}

/// Live processes whose parent is `parent`, from /proc.
fn children_of(parent: Pid) -> Vec<i32> {
    let mut children: Vec<i32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| ppid_of(Pid::from_raw(pid)).ok() == Some(parent.as_raw()))
        .collect();
    children.sort_unstable();
    children
}

fn exit_code(status: WaitStatus) -> serde_json::Value {
    match status {
        WaitStatus::Exited(_, code) => json!({ "code": code }),
        WaitStatus::Signaled(_, signal, core) => json!({ "signal": signal as i32, "core": core }),
        other => json!({ "other": format!("{other:?}") }),
    }
}

fn fork_exec_exit(code: i32) -> Result<()> {
    match fork()? {
        ForkResult::Child => exec_sh(&format!("exit {code}")),
        ForkResult::Parent { child } => {
            let status = waitpid(child, None)?;
            report(json!({
                "parent": pid_json(getpid()),
                "child": pid_json(child),
                "status": exit_code(status),
            }));
            Ok(())
        }
    }
}

fn sibling_kill() -> Result<()> {
    let victim = match fork()? {
        ForkResult::Child => loop {
            nix::unistd::pause();
        },
        ForkResult::Parent { child } => child,
    };
    let killer = match fork()? {
        ForkResult::Child => {
            let code = if kill(victim, Signal::SIGKILL).is_ok() {
                0
            } else {
                1
            };
            std::process::exit(code)
        }
        ForkResult::Parent { child } => child,
    };
    let killer_status = waitpid(killer, None)?;
    let victim_status = waitpid(victim, None)?;
    report(json!({
        "parent": pid_json(getpid()),
        "victim": pid_json(victim),
        "killer": pid_json(killer),
        "victim_status": exit_code(victim_status),
        "killer_status": exit_code(killer_status),
    }));
    Ok(())
}

fn threads(count: usize, seconds: Option<f64>) -> Result<()> {
    let (sender, receiver) = std::sync::mpsc::channel();
    let mut running = std::collections::VecDeque::new();
    let started = Instant::now();
    let count = if seconds.is_some() { usize::MAX } else { count };
    for _ in 0..count {
        if seconds.is_some_and(|s| started.elapsed().as_secs_f64() >= s) {
            break;
        }
        if running.len() >= 10
            && let Some(handle) = running.pop_front()
        {
            let _ = std::thread::JoinHandle::join(handle);
        }
        let sender = sender.clone();
        running.push_back(std::thread::spawn(move || {
            let _ = sender.send(gettid().as_raw());
            std::thread::sleep(Duration::from_millis(2));
        }));
    }
    for handle in running {
        let _ = handle.join();
    }
    drop(sender);
    let tids: Vec<i32> = receiver.iter().collect();
    if seconds.is_some() {
        report(json!({ "pid": pid_json(getpid()), "threads": tids.len() }));
    } else {
        report(json!({ "pid": pid_json(getpid()), "tids": tids }));
    }
    Ok(())
}

fn threaded_exits(count: usize, threads: usize) -> Result<()> {
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        match fork()? {
            ForkResult::Child => {
                let running = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
                for _ in 0..threads {
                    let running = std::sync::Arc::clone(&running);
                    std::thread::spawn(move || {
                        running.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        loop {
                            std::hint::spin_loop();
                        }
                    });
                }
                while running.load(std::sync::atomic::Ordering::SeqCst) < threads {
                    std::thread::yield_now();
                }
                // exit_group: every thread leaves at once.
                std::process::exit(0)
            }
            ForkResult::Parent { child } => children.push(child),
        }
        let pid = *children.last().expect("just pushed");
        waitpid(pid, None)?;
    }
    let pids: Vec<i32> = children.iter().map(|p| p.as_raw()).collect();
    report(json!({ "children": pids, "threads": threads }));
    Ok(())
}

/// The kernel reparents orphans before their old parent can be reaped; waits out the case
/// where /proc is read in between anyway.
fn settled_ppid(pid: Pid, old_parent: Pid) -> Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ppid = ppid_of(pid)?;
        if ppid != old_parent.as_raw() || Instant::now() > deadline {
            return Ok(ppid);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn double_fork(subreaper: bool, hold: bool) -> Result<()> {
    if subreaper {
        prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER failed")?;
    }
    // The grandchild lives until `hold` closes; `done` closes when it exits.
    let (hold_read, hold_write) = pipe()?;
    let (done_read, done_write) = pipe()?;
    let (ready_read, ready_write) = pipe()?;
    let middle = match fork()? {
        ForkResult::Child => {
            drop((hold_write, done_read, ready_read));
            match fork()? {
                ForkResult::Child => {
                    drop(ready_write);
                    wait_for_eof(hold_read);
                    drop(done_write);
                    std::process::exit(0)
                }
                ForkResult::Parent { child } => {
                    let _ = File::from(ready_write).write_all(&child.as_raw().to_ne_bytes());
                    std::process::exit(0)
                }
            }
        }
        ForkResult::Parent { child } => child,
    };
    drop((hold_read, done_write, ready_write));
    let mut bytes = [0u8; 4];
    File::from(ready_read).read_exact(&mut bytes)?;
    let grandchild = Pid::from_raw(i32::from_ne_bytes(bytes));
    let middle_status = waitpid(middle, None)?;
    let observed_ppid = settled_ppid(grandchild, middle)?;
    report(json!({
        "parent": pid_json(getpid()),
        "middle": pid_json(middle),
        "grandchild": pid_json(grandchild),
        "observed_ppid": observed_ppid,
        "middle_status": exit_code(middle_status),
    }));
    if hold {
        wait_for_stdin_eof();
    }
    drop(hold_write);
    wait_for_eof(done_read);
    if subreaper {
        waitpid(grandchild, None)?;
    }
    Ok(())
}

fn deep_chain(depth: usize) -> Result<()> {
    if depth < 3 {
        bail!("a chain needs a middle: give --depth 3 or more");
    }
    prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER failed")?;
    let (hold_read, hold_write) = pipe()?;
    let (ready_read, ready_write) = pipe()?;
    let first = match fork()? {
        ForkResult::Child => {
            drop((hold_write, ready_read));
            // Level 1 forks level 2, and so on; each waits for its child, except the last but
            // one, which leaves its child (the last) behind.
            for level in 1..depth {
                match fork() {
                    Ok(ForkResult::Child) => continue,
                    Ok(ForkResult::Parent { child }) if level == depth - 1 => {
                        let mut pids = getpid().as_raw().to_ne_bytes().to_vec();
                        pids.extend(child.as_raw().to_ne_bytes());
                        let _ = File::from(ready_write).write_all(&pids);
                        std::process::exit(0)
                    }
                    Ok(ForkResult::Parent { child }) => {
                        let _ = waitpid(child, None);
                        std::process::exit(0)
                    }
                    Err(_) => std::process::exit(1),
                }
            }
            drop(ready_write);
            wait_for_eof(hold_read);
            std::process::exit(0)
        }
        ForkResult::Parent { child } => child,
    };
    drop((hold_read, ready_write));
    let mut bytes = [0u8; 8];
    File::from(ready_read)
        .read_exact(&mut bytes)
        .context("the chain broke")?;
    let [middle, last] = [&bytes[..4], &bytes[4..]]
        .map(|b| Pid::from_raw(i32::from_ne_bytes(b.try_into().unwrap())));
    let observed_ppid = settled_ppid(last, middle)?;
    let first_status = waitpid(first, None)?;
    report(json!({
        "parent": pid_json(getpid()),
        "first": pid_json(first),
        "middle": pid_json(middle),
        "last": pid_json(last),
        "observed_ppid": observed_ppid,
        "first_status": exit_code(first_status),
    }));
    wait_for_stdin_eof();
    drop(hold_write);
    waitpid(last, None)?;
    Ok(())
}

fn pidns_double_fork() -> Result<()> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)
        .context("cannot create a pid namespace (needs root)")?;
    let (hold_read, hold_write) = pipe()?;
    let (ready_read, ready_write) = pipe()?;
    let init = match fork()? {
        // pid 1 of the new namespace.
        ForkResult::Child => {
            drop(ready_read);
            let middle = match fork()? {
                ForkResult::Child => {
                    drop((hold_write, ready_write));
                    match fork()? {
                        ForkResult::Child => {
                            wait_for_eof(hold_read);
                            std::process::exit(0)
                        }
                        ForkResult::Parent { .. } => std::process::exit(0),
                    }
                }
                ForkResult::Parent { child } => child,
            };
            drop((hold_read, hold_write));
            let _ = waitpid(middle, None);
            let _ = File::from(ready_write).write_all(b"1");
            // Reap the adopted grandchild, then leave.
            while wait().is_ok() {}
            std::process::exit(0)
        }
        ForkResult::Parent { child } => child,
    };
    drop((hold_read, ready_write));
    File::from(ready_read).read_exact(&mut [0u8; 1])?;
    let adopted = children_of(init);
    let [grandchild] = adopted[..] else {
        bail!("expected one process adopted by the namespace init, found {adopted:?}");
    };
    let observed_ppid = ppid_of(Pid::from_raw(grandchild))?;
    drop(hold_write);
    let init_status = waitpid(init, None)?;
    report(json!({
        "parent": pid_json(getpid()),
        "init": pid_json(init),
        "grandchild": grandchild,
        "observed_ppid": observed_ppid,
        "init_status": exit_code(init_status),
    }));
    Ok(())
}

fn thread_exec() -> Result<()> {
    let pid = getpid();
    let handle = std::thread::spawn(move || {
        report(json!({ "pid": pid_json(pid), "tid": gettid().as_raw() }));
        exec_sh("exit 0")
    });
    let _ = handle.join();
    bail!("exec from a thread returned")
}

fn rename(title: &str, own_group: bool) -> Result<()> {
    if own_group {
        nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).context("setpgid failed")?;
    }
    let pid = getpid().to_string();
    let arg_start: u64 = stat_field(&pid, 48)?.parse()?;
    let arg_end: u64 = stat_field(&pid, 49)?.parse()?;
    let env_end: u64 = stat_field(&pid, 51)?.parse()?;
    let arguments = (arg_end - arg_start) as usize;
    // Like setproctitle: the title goes over the arguments, and on over the environment
    // strings that follow them when it is longer; the rest of the arguments is cleared.
    let room = (env_end - arg_start) as usize;
    if title.len() + 1 > room {
        bail!(
            "title of {} bytes does not fit {room} bytes of arguments and environment",
            title.len()
        );
    }
    let mut area = vec![0u8; arguments.max(title.len() + 1)];
    area[..title.len()].copy_from_slice(title.as_bytes());
    let mut memory = std::fs::OpenOptions::new()
        .write(true)
        .open("/proc/self/mem")
        .context("cannot open /proc/self/mem")?;
    memory.seek(SeekFrom::Start(arg_start))?;
    memory
        .write_all(&area)
        .context("cannot rewrite the argument area")?;
    let comm: Vec<u8> = title.bytes().take(15).collect();
    let comm = CString::new(comm).context("title has a NUL byte")?;
    prctl::set_name(&comm).context("PR_SET_NAME failed")?;
    report(json!({
        "pid": pid_json(getpid()),
        "title": title,
        "comm": comm.to_string_lossy(),
    }));
    wait_for_stdin_eof();
    Ok(())
}

/// The bytes a hostile process puts in its name: clear the screen, set the window title,
/// start a new line, break UTF-8.
const HOSTILE_NAME: &[u8] = b"\x1b[2J\x1b]0;owned\x07\nevil\xff";

fn hostile(rate: u64, seconds: f64) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    // The kernel names a process after the file it execs: a symlink with a hostile name.
    let dir = tempfile_dir()?;
    let program = dir.join(std::ffi::OsStr::from_bytes(HOSTILE_NAME));
    std::os::unix::fs::symlink("/bin/sh", &program)?;
    let program = CString::new(program.as_os_str().as_bytes())?;
    let big = CString::new(vec![b'A'; 32 * 1024 - 1])?;
    let mut argv = vec![
        CString::new(HOSTILE_NAME)?,
        c"-c".to_owned(),
        // Waits on the standard input it shares with this process.
        c"read line".to_owned(),
        CString::new(&b"\x1b[31mred\r\nfake line\x1b[0m"[..])?,
        CString::new(&b"\xc3\x28\xff"[..])?,
    ];
    argv.extend(std::iter::repeat_n(big, 4));
    let argv_bytes: usize = argv.iter().map(|a| a.as_bytes_with_nul().len()).sum();
    let exotic = match fork()? {
        ForkResult::Child => {
            let _ = execv(&program, &argv);
            std::process::exit(127)
        }
        ForkResult::Parent { child } => child,
    };

    let renamer = match fork()? {
        ForkResult::Child => {
            let start = Instant::now();
            let mut renames = 0u64;
            while start.elapsed().as_secs_f64() < seconds {
                let name = format!("\x1b[{}m\x1b]0;t\x07", renames % 100);
                let _ = prctl::set_name(&CString::new(name).unwrap());
                renames += 1;
                let due = Duration::from_secs_f64(renames as f64 / rate as f64);
                if let Some(ahead) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(ahead);
                }
            }
            std::process::exit((renames / 1000).min(255) as i32)
        }
        ForkResult::Parent { child } => child,
    };
    let renames = match waitpid(renamer, None)? {
        WaitStatus::Exited(_, thousands) => thousands as u64 * 1000,
        other => bail!("the renamer ended with {other:?}"),
    };
    report(json!({
        "exotic": pid_json(exotic),
        "renamer": pid_json(renamer),
        "renames_at_least": renames,
        "argv_bytes": argv_bytes,
    }));
    wait_for_stdin_eof();
    let _ = waitpid(exotic, None);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `struct clone_args` of clone3(2), up to `set_tid_size`.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
}

/// A fork by clone3 with `args`, which must not share memory (no CLONE_VM).
fn clone_parent_race(files: u64) -> Result<()> {
    /// Enough copies for the whole window on a slow (emulated) machine; a bound all the same.
    const MOST_COPIES: usize = 4096;
    prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER failed")?;
    let (hold_read, hold_write) = pipe()?;
    let (go_read, go_write) = pipe()?;
    let (pids_read, pids_write) = pipe()?;
    let parent = match fork()? {
        ForkResult::Child => {
            drop((hold_write, pids_read));
            let _ = prctl::set_name(c"race-parent");
            let me = getpid();
            match fork() {
                Ok(ForkResult::Child) => {
                    drop(go_write);
                    let _ = prctl::set_name(c"race-caller");
                    let mut go = [0u8; 1];
                    let _ = File::from(go_read).read_exact(&mut go);
                    let mut pids = File::from(pids_write);
                    let args = CloneArgs {
                        flags: libc::CLONE_PARENT as u64,
                        ..CloneArgs::default()
                    };
                    let mut adopted_for = 0;
                    for _ in 0..MOST_COPIES {
                        match clone3_fork(&args) {
                            Ok(ForkResult::Child) => {
                                drop(pids);
                                wait_for_eof(hold_read);
                                std::process::exit(0)
                            }
                            Ok(ForkResult::Parent { child }) => {
                                let _ = pids.write_all(&child.as_raw().to_ne_bytes());
                            }
                            Err(_) => std::process::exit(1),
                        }
                        // A few more once adopted: made straight under the reaper.
                        if nix::unistd::getppid() != me {
                            adopted_for += 1;
                            if adopted_for == 8 {
                                break;
                            }
                        }
                    }
                    std::process::exit(0)
                }
                Ok(ForkResult::Parent { .. }) => {
                    drop((go_read, pids_write, hold_read));
                    let _ = nix::sys::resource::setrlimit(
                        nix::sys::resource::Resource::RLIMIT_NOFILE,
                        files + 64,
                        files + 64,
                    );
                    // Files of its own, opened after the fork (not shared with the caller):
                    // releasing each is work its exit does before it hands its children to
                    // the reaper.
                    let held: Vec<File> = (0..files)
                        .map_while(|_| File::open("/dev/null").ok())
                        .collect();
                    let _ = File::from(go_write).write_all(b"g");
                    std::mem::forget(held);
                    std::process::exit(0)
                }
                Err(_) => std::process::exit(1),
            }
        }
        ForkResult::Parent { child } => child,
    };
    drop((go_read, go_write, pids_write, hold_read));
    let mut bytes = Vec::new();
    File::from(pids_read).read_to_end(&mut bytes)?;
    let copies: Vec<i32> = bytes
        .chunks_exact(4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let parent_status = waitpid(parent, None)?;
    let adopted_by_this = copies
        .iter()
        .filter(|&&copy| ppid_of(Pid::from_raw(copy)).ok() == Some(getpid().as_raw()))
        .count();
    report(json!({
        "reaper": pid_json(getpid()),
        "parent": pid_json(parent),
        "parent_status": exit_code(parent_status),
        "copies": copies,
        "adopted_by_reaper": adopted_by_this,
    }));
    drop(hold_write);
    // The caller and the copies are this subreaper's now.
    while waitpid(None::<Pid>, Some(WaitPidFlag::__WALL)).is_ok() {}
    Ok(())
}

fn clone3_fork(args: &CloneArgs) -> std::io::Result<ForkResult> {
    debug_assert_eq!(args.flags & libc::CLONE_VM as u64, 0);
    // SAFETY: clone3 without CLONE_VM is a fork: the child gets a copy of this
    // single-threaded process; `args` and what it points to outlive the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match result {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(ForkResult::Child),
        child => Ok(ForkResult::Parent {
            child: Pid::from_raw(child as i32),
        }),
    }
}

/// Forks a child with pid `pid` (clone3 with set_tid); EEXIST if someone holds it.
fn fork_with_pid(pid: Pid) -> Result<ForkResult> {
    let wanted: [libc::pid_t; 1] = [pid.as_raw()];
    clone3_fork(&CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        set_tid: wanted.as_ptr() as u64,
        set_tid_size: 1,
        ..CloneArgs::default()
    })
    .context("clone3 with set_tid failed")
}

fn pid_reuse(rounds: usize) -> Result<()> {
    // A's orphans come back to this process, which can then reap them.
    prctl::set_child_subreaper(true).context("PR_SET_CHILD_SUBREAPER failed")?;
    let mut done = Vec::new();
    while done.len() < rounds {
        let (hold_read, hold_write) = pipe()?;
        let (ready_read, ready_write) = pipe()?;
        let first = match fork()? {
            ForkResult::Child => {
                drop((hold_write, ready_read));
                let orphan = match fork()? {
                    ForkResult::Child => {
                        drop(ready_write);
                        wait_for_eof(hold_read);
                        std::process::exit(0)
                    }
                    ForkResult::Parent { child } => child,
                };
                let _ = File::from(ready_write).write_all(&orphan.as_raw().to_ne_bytes());
                std::process::exit(1)
            }
            ForkResult::Parent { child } => child,
        };
        drop((hold_read, ready_write));
        let mut orphan = [0u8; 4];
        File::from(ready_read).read_exact(&mut orphan)?;
        let orphan = Pid::from_raw(i32::from_ne_bytes(orphan));
        waitpid(first, None)?;

        let (result_read, result_write) = pipe()?;
        let creator = match fork()? {
            ForkResult::Child => {
                drop(result_read);
                let outcome: u8 = match fork_with_pid(first) {
                    Ok(ForkResult::Child) => std::process::exit(2),
                    Ok(ForkResult::Parent { child }) => {
                        let _ = waitpid(child, None);
                        0
                    }
                    // Another process took the pid first: try another round.
                    Err(_) => 1,
                };
                let _ = File::from(result_write).write_all(&[outcome]);
                std::process::exit(0)
            }
            ForkResult::Parent { child } => child,
        };
        drop(result_write);
        let mut outcome = [1u8];
        let _ = File::from(result_read).read_exact(&mut outcome);
        waitpid(creator, None)?;
        drop(hold_write);
        waitpid(orphan, None)?;
        if outcome[0] == 0 {
            done.push(json!({
                "pid": pid_json(first),
                "orphan": pid_json(orphan),
                "creator": pid_json(creator),
            }));
        }
    }
    report(json!({ "parent": pid_json(getpid()), "rounds": done }));
    Ok(())
}

/// A new private directory under the system's temporary directory.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tracer-workload-{}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

fn hold() -> Result<()> {
    let (hold_read, hold_write) = pipe()?;
    let (ready_read, ready_write) = pipe()?;
    let child = match fork()? {
        ForkResult::Child => {
            drop((hold_write, ready_read));
            let grandchild = match fork()? {
                ForkResult::Child => {
                    drop(ready_write);
                    wait_for_eof(hold_read);
                    std::process::exit(0)
                }
                ForkResult::Parent { child } => child,
            };
            let _ = File::from(ready_write).write_all(&grandchild.as_raw().to_ne_bytes());
            wait_for_eof(hold_read);
            let _ = waitpid(grandchild, None);
            std::process::exit(0)
        }
        ForkResult::Parent { child } => child,
    };
    drop((hold_read, ready_write));
    let mut bytes = [0u8; 4];
    File::from(ready_read).read_exact(&mut bytes)?;
    report(json!({
        "parent": pid_json(getpid()),
        "child": pid_json(child),
        "grandchild": i32::from_ne_bytes(bytes),
    }));
    wait_for_stdin_eof();
    drop(hold_write);
    waitpid(child, None)?;
    Ok(())
}

fn burst(
    count: u64,
    seconds: Option<f64>,
    program: &str,
    parallel: usize,
    rename: Option<&str>,
    kill_every: Option<u64>,
) -> Result<()> {
    if count == u64::MAX && seconds.is_none() {
        bail!("give --count or --seconds");
    }
    let path = CString::new(program)?;
    let argv: [&CStr; 1] = [&path];
    let name = rename.map(CString::new).transpose()?;
    let kill_every = kill_every.filter(|&n| n > 0);
    // Blocked across the fork: a child to be killed renames itself before the SIGTERM, sent
    // right after the fork, can end it; it dies once it unblocks the signal.
    let term = SigSet::from(Signal::SIGTERM);
    if kill_every.is_some() {
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&term), None)?;
    }
    let started = Instant::now();
    let more =
        |forks: u64| forks < count && seconds.is_none_or(|s| started.elapsed().as_secs_f64() < s);
    let (mut forks, mut execs, mut exits, mut running) = (0u64, 0u64, 0u64, 0usize);
    let (mut unrenamed, mut terms, mut killed) = (0u64, 0u64, 0u64);
    while more(forks) || running > 0 {
        while running < parallel.max(1) && more(forks) {
            let doomed = kill_every.is_some_and(|n| (forks + 1) % n == 0);
            match fork()? {
                ForkResult::Child => {
                    if let Some(name) = &name
                        && prctl::set_name(name).is_err()
                    {
                        std::process::exit(RENAME_FAILED)
                    }
                    let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&term), None);
                    if doomed {
                        loop {
                            nix::unistd::pause();
                        }
                    }
                    let _ = execv(&path, &argv);
                    std::process::exit(127)
                }
                ForkResult::Parent { child } => {
                    forks += 1;
                    running += 1;
                    if doomed {
                        kill(child, Signal::SIGTERM)?;
                        terms += 1;
                    }
                }
            }
        }
        let status = wait()?;
        running -= 1;
        exits += 1;
        match status {
            // /bin/true exits with 0; a child that could not exec with 127.
            WaitStatus::Exited(_, 0) => execs += 1,
            WaitStatus::Exited(_, RENAME_FAILED) => unrenamed += 1,
            WaitStatus::Signaled(_, Signal::SIGTERM, _) => killed += 1,
            _ => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    report(json!({
        "root": pid_json(getpid()),
        "forks": forks,
        "execs": execs,
        "exits": exits,
        "renames": if name.is_some() { forks - unrenamed } else { 0 },
        "signals": terms,
        "killed": killed,
        "seconds": seconds,
        "per_second": forks as f64 / seconds,
    }));
    Ok(())
}

/// Exit status of a burst child whose PR_SET_NAME failed.
const RENAME_FAILED: i32 = 126;

fn core_dump() -> Result<()> {
    let dir = tempfile_dir()?;
    let child = match fork()? {
        ForkResult::Child => {
            let _ = std::env::set_current_dir(&dir);
            let _ = nix::sys::resource::setrlimit(
                nix::sys::resource::Resource::RLIMIT_CORE,
                nix::sys::resource::RLIM_INFINITY,
                nix::sys::resource::RLIM_INFINITY,
            );
            // The default action, whatever this process inherited.
            // SAFETY: SIG_DFL installs no handler.
            let _ = unsafe { nix::sys::signal::signal(Signal::SIGABRT, SigHandler::SigDfl) };
            let _ = sigprocmask(
                SigmaskHow::SIG_UNBLOCK,
                Some(&SigSet::from(Signal::SIGABRT)),
                None,
            );
            let _ = nix::sys::signal::raise(Signal::SIGABRT);
            std::process::exit(1)
        }
        ForkResult::Parent { child } => child,
    };
    let status = waitpid(child, None)?;
    let files: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    report(json!({
        "parent": pid_json(getpid()),
        "child": pid_json(child),
        "status": exit_code(status),
        "files": files,
    }));
    Ok(())
}

/// What `signals` sends, in order.
const SIGNALS_SENT: [Signal; 13] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGABRT,
    Signal::SIGUSR1,
    Signal::SIGUSR1,
    Signal::SIGTERM,
    Signal::SIGUSR2,
    Signal::SIGCHLD,
    Signal::SIGWINCH,
    Signal::SIGSTOP,
    Signal::SIGCONT,
    Signal::SIGKILL,
];

fn signals() -> Result<()> {
    let (ready_read, ready_write) = pipe()?;
    let target = match fork()? {
        ForkResult::Child => {
            drop(ready_read);
            // SAFETY: SIG_IGN installs no handler.
            let _ = unsafe { nix::sys::signal::signal(Signal::SIGHUP, SigHandler::SigIgn) };
            // Blocked, the others stay pending and never end or interrupt it: only SIGSTOP,
            // SIGCONT and SIGKILL act.
            let mut blocked = SigSet::empty();
            for signal in [
                Signal::SIGINT,
                Signal::SIGQUIT,
                Signal::SIGABRT,
                Signal::SIGUSR1,
                Signal::SIGTERM,
                Signal::SIGUSR2,
                Signal::SIGCHLD,
                Signal::SIGWINCH,
            ] {
                blocked.add(signal);
            }
            let code = match sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            if code != 0 {
                std::process::exit(code)
            }
            drop(ready_write);
            loop {
                nix::unistd::pause();
            }
        }
        ForkResult::Parent { child } => child,
    };
    drop(ready_write);
    wait_for_eof(ready_read);
    let mut sent = Vec::new();
    for signal in SIGNALS_SENT {
        kill(target, signal).with_context(|| format!("cannot send {signal}"))?;
        sent.push(signal as i32);
        // Stopped and continued for certain before the next signal.
        let (flags, expected) = match signal {
            Signal::SIGSTOP => (WaitPidFlag::WUNTRACED, "stopped"),
            Signal::SIGCONT => (WaitPidFlag::WCONTINUED, "continued"),
            _ => continue,
        };
        match waitpid(target, Some(flags))? {
            WaitStatus::Stopped(_, Signal::SIGSTOP) if expected == "stopped" => {}
            WaitStatus::Continued(_) if expected == "continued" => {}
            other => bail!("the target was not {expected}: {other:?}"),
        }
    }
    let status = waitpid(target, None)?;
    report(json!({
        "sender": pid_json(getpid()),
        "target": pid_json(target),
        "sent": sent,
        "status": exit_code(status),
    }));
    Ok(())
}

fn clone_parent() -> Result<()> {
    let (hold_read, hold_write) = pipe()?;
    let (ready_read, ready_write) = pipe()?;
    let caller = match fork()? {
        ForkResult::Child => {
            drop((hold_write, ready_read));
            // Its copy is born with this comm: the trace shows whose copy it is.
            let _ = prctl::set_name(c"clone-caller");
            // No exit signal of its own (clone3 refuses one with CLONE_PARENT): it gets the
            // caller's, SIGCHLD, which goes to this process, its parent.
            let args = CloneArgs {
                flags: libc::CLONE_PARENT as u64,
                ..CloneArgs::default()
            };
            match clone3_fork(&args) {
                Ok(ForkResult::Child) => {
                    drop(ready_write);
                    wait_for_eof(hold_read);
                    std::process::exit(0)
                }
                Ok(ForkResult::Parent { child }) => {
                    let _ = File::from(ready_write).write_all(&child.as_raw().to_ne_bytes());
                    std::process::exit(0)
                }
                Err(_) => std::process::exit(1),
            }
        }
        ForkResult::Parent { child } => child,
    };
    drop((hold_read, ready_write));
    let mut bytes = [0u8; 4];
    File::from(ready_read)
        .read_exact(&mut bytes)
        .context("clone(CLONE_PARENT) failed")?;
    let sibling = Pid::from_raw(i32::from_ne_bytes(bytes));
    let observed_ppid = ppid_of(sibling)?;
    let caller_status = waitpid(caller, None)?;
    drop(hold_write);
    // This process's child, not the caller's.
    let sibling_status = waitpid(sibling, None)?;
    report(json!({
        "parent": pid_json(getpid()),
        "caller": pid_json(caller),
        "child": pid_json(sibling),
        "observed_ppid": observed_ppid,
        "caller_status": exit_code(caller_status),
        "child_status": exit_code(sibling_status),
    }));
    Ok(())
}

/// Where the memory controller is: a v1 `memory` mount, else the v2 mount; and whether it is
/// v1.
fn memory_controller() -> Result<(PathBuf, bool)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let v1 = info.lines().find_map(|line| {
        let (mount, filesystem) = line.split_once(" - ")?;
        let mut words = filesystem.split(' ');
        (words.next()? == "cgroup" && words.nth(1)?.split(',').any(|o| o == "memory"))
            .then(|| mount.split(' ').nth(4).map(PathBuf::from))?
    });
    match v1 {
        Some(mount) => Ok((mount, true)),
        None => Ok((cgroup2_mount()?, false)),
    }
}

fn rename_self(name: &std::ffi::CStr) {
    let _ = prctl::set_name(name);
}

fn oom(limit_mib: u64, hold: bool) -> Result<()> {
    let (mount, v1) = memory_controller()?;
    let relative = format!("tracer-oom-{}", std::process::id());
    let dir = mount.join(&relative);
    if !v1 {
        // The root's children get the memory controller only when the root hands it down.
        let _ = std::fs::write(mount.join("cgroup.subtree_control"), "+memory");
    }
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let limit = (limit_mib << 20).to_string();
    let limit_file = if v1 {
        "memory.limit_in_bytes"
    } else {
        "memory.max"
    };
    std::fs::write(dir.join(limit_file), &limit)
        .with_context(|| format!("cannot limit {}", dir.display()))?;
    if !v1 {
        // No swap either: the limit is the limit.
        let _ = std::fs::write(dir.join("memory.swap.max"), "0");
    }
    let id = cgroup_id(&dir)?;
    let (ready_read, ready_write) = pipe()?;
    let child = match fork()? {
        ForkResult::Child => {
            drop(ready_read);
            rename_self(c"tracer-oom");
            if std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string()).is_err() {
                std::process::exit(2);
            }
            drop(ready_write);
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                // Touch every page: untouched memory is not charged.
                hoard.push(vec![1u8; 1 << 20]);
            }
        }
        ForkResult::Parent { child } => child,
    };
    drop(ready_write);
    wait_for_eof(ready_read);
    let status = waitpid(child, None)?;
    report(json!({
        "child": pid_json(child),
        "status": exit_code(status),
        "cgroup_id": id,
        "cgroup": format!("/{relative}"),
        "limit_bytes": limit_mib << 20,
        "cgroup_v1": v1,
    }));
    if hold {
        wait_for_stdin_eof();
    }
    std::fs::remove_dir(&dir).with_context(|| format!("cannot remove {}", dir.display()))
}

fn cpu_limit() -> Result<()> {
    let child = match fork()? {
        ForkResult::Child => {
            rename_self(c"tracer-cpu");
            // SAFETY: ignoring a signal installs no handler code.
            let _ = unsafe { nix::sys::signal::signal(Signal::SIGXCPU, SigHandler::SigIgn) };
            let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CPU, 1, 2);
            let mut spin = 0u64;
            loop {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
        }
        ForkResult::Parent { child } => child,
    };
    let status = waitpid(child, None)?;
    report(json!({ "child": pid_json(child), "status": exit_code(status) }));
    Ok(())
}

fn pdeath_thread() -> Result<()> {
    let (ready_read, ready_write) = pipe()?;
    let forked = std::thread::spawn(move || -> Result<(Pid, i32)> {
        let tid = gettid().as_raw();
        match fork()? {
            ForkResult::Child => {
                rename_self(c"tracer-pdeath");
                let _ = prctl::set_pdeathsig(Signal::SIGKILL);
                drop(ready_write);
                loop {
                    nix::unistd::pause();
                }
            }
            ForkResult::Parent { child } => {
                drop(ready_write);
                wait_for_eof(ready_read);
                // Returning ends the thread that forked the child: its parent-death signal.
                Ok((child, tid))
            }
        }
    });
    let (child, tid) = forked
        .join()
        .map_err(|_| anyhow::anyhow!("the forking thread panicked"))??;
    let status = waitpid(child, None)?;
    report(json!({
        "parent": pid_json(getpid()),
        "thread": tid,
        "child": pid_json(child),
        "status": exit_code(status),
    }));
    Ok(())
}

/// Where cgroup v2 is mounted, from /proc/self/mountinfo.
fn cgroup2_mount() -> Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    info.lines()
        .find_map(|line| {
            let (mount, filesystem) = line.split_once(" - ")?;
            (filesystem.split(' ').next()? == "cgroup2")
                .then(|| mount.split(' ').nth(4).map(PathBuf::from))?
        })
        .context("cgroup v2 is not mounted")
}

/// The cgroup v2 directory of a process (`self` for this one).
fn cgroup_dir(pid: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .with_context(|| format!("no cgroup v2 line in /proc/{pid}/cgroup"))?;
    Ok(cgroup2_mount()?.join(path.trim_start_matches('/')))
}

/// The inode number of a cgroup's directory: its kernfs node id, the kernel's cgroup id.
fn cgroup_id(dir: &Path) -> Result<u64> {
    use std::os::unix::fs::MetadataExt as _;
    Ok(std::fs::metadata(dir)
        .with_context(|| format!("cannot stat {}", dir.display()))?
        .ino())
}

fn identity() -> Result<()> {
    let own_cgroup = cgroup_dir("self")?;
    let new_cgroup = own_cgroup.join(format!("tracer-workload-{}", std::process::id()));
    // Where the host lets us: a cgroup of its own makes the id one no other process has.
    let moved = std::fs::create_dir(&new_cgroup).is_ok();
    let (report_read, report_write) = pipe()?;
    let (hold_read, hold_write) = pipe()?;
    let leader = match fork()? {
        ForkResult::Child => {
            drop((report_read, hold_write));
            let result = identity_leader(moved.then_some(&new_cgroup), report_write, hold_read);
            if let Err(error) = &result {
                eprintln!("tracer-workload: session leader: {error:#}");
            }
            std::process::exit(i32::from(result.is_err()))
        }
        ForkResult::Parent { child } => child,
    };
    drop((report_write, hold_read));
    let mut seen = String::new();
    File::from(report_read).read_to_string(&mut seen)?;
    let seen: serde_json::Value = serde_json::from_str(&seen)
        .with_context(|| format!("no report from the grandchild: {seen:?}"))?;
    let grandchild = seen["pid"].as_i64().context("grandchild pid")?.to_string();
    let grandchild_cgroup = cgroup_dir(&grandchild)?;
    let grandchild_cgroup_id = cgroup_id(&grandchild_cgroup)?;
    drop(hold_write);
    let status = waitpid(leader, None)?;
    if moved {
        std::fs::remove_dir(&new_cgroup)
            .with_context(|| format!("cannot remove {}", new_cgroup.display()))?;
    }
    if !matches!(status, WaitStatus::Exited(_, 0)) {
        bail!("the session leader failed: {status:?}");
    }
    report(json!({
        "parent": pid_json(getpid()),
        "leader": pid_json(leader),
        "leader_cgroup_id": cgroup_id(&own_cgroup)?,
        "own_cgroup": moved,
        "grandchild": seen,
        "grandchild_cgroup": grandchild_cgroup.to_string_lossy(),
        "grandchild_cgroup_id": grandchild_cgroup_id,
    }));
    Ok(())
}

fn identity_leader(cgroup: Option<&Path>, report_write: OwnedFd, hold_read: OwnedFd) -> Result<()> {
    nix::unistd::setsid().context("setsid failed")?;
    if let Some(dir) = cgroup {
        // "0" is the writer itself.
        std::fs::write(dir.join("cgroup.procs"), "0").context("cannot join the new cgroup")?;
    }
    nix::unistd::setgroups(&[]).context("setgroups failed")?;
    nix::unistd::setgid(nix::unistd::Gid::from_raw(NOBODY)).context("setgid failed")?;
    nix::unistd::setuid(nix::unistd::Uid::from_raw(NOBODY)).context("setuid failed")?;
    match fork()? {
        ForkResult::Child => {
            let result = identity_member(report_write, hold_read);
            if let Err(error) = &result {
                eprintln!("tracer-workload: grandchild: {error:#}");
            }
            std::process::exit(i32::from(result.is_err()))
        }
        ForkResult::Parent { child } => {
            drop((report_write, hold_read));
            match waitpid(child, None)? {
                WaitStatus::Exited(_, 0) => Ok(()),
                other => bail!("the grandchild failed: {other:?}"),
            }
        }
    }
}

/// The uid `identity` runs its grandchild under (nobody).
const NOBODY: u32 = 65534;

fn identity_member(report_write: OwnedFd, hold_read: OwnedFd) -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let uid: u32 = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .context("no Uid in /proc/self/status")?
        .parse()?;
    let group = || -> Result<(u32, u32)> {
        Ok((
            stat_field("self", 5)?.parse()?,
            stat_field("self", 6)?.parse()?,
        ))
    };
    let (pgid_at_start, sid_at_start) = group()?;
    nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).context("setpgid failed")?;
    prctl::set_name(c"identity-test").context("PR_SET_NAME failed")?;
    let (pgid, sid) = group()?;
    let seen = json!({
        "pid": pid_json(getpid()),
        "uid": uid,
        "pgid_at_start": pgid_at_start,
        "sid_at_start": sid_at_start,
        "pgid": pgid,
        "sid": sid,
    });
    File::from(report_write).write_all(seen.to_string().as_bytes())?;
    wait_for_eof(hold_read);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.scenario {
        Scenario::ForkExecExit { code } => fork_exec_exit(code),
        Scenario::SiblingKill => sibling_kill(),
        Scenario::Threads { count, seconds } => threads(count, seconds),
        Scenario::ThreadedExits { count, threads } => threaded_exits(count, threads),
        Scenario::Oom { limit_mib, hold } => oom(limit_mib, hold),
        Scenario::CpuLimit => cpu_limit(),
        Scenario::PdeathThread => pdeath_thread(),
        Scenario::DoubleFork { subreaper, hold } => double_fork(subreaper, hold),
        Scenario::DeepChain { depth } => deep_chain(depth),
        Scenario::PidnsDoubleFork => pidns_double_fork(),
        Scenario::ThreadExec => thread_exec(),
        Scenario::Rename {
            title,
            title_env,
            own_group,
            pad: _,
        } => match (title, title_env) {
            (Some(title), _) => rename(&title, own_group),
            (None, Some(name)) => std::env::var(&name)
                .with_context(|| format!("no {name} in the environment"))
                .and_then(|title| rename(&title, own_group)),
            (None, None) => Err(anyhow::anyhow!("give --title or --title-env")),
        },
        Scenario::Hold => hold(),
        Scenario::PidReuse { rounds } => pid_reuse(rounds),
        Scenario::Hostile { rate, seconds } => hostile(rate, seconds),
        Scenario::Burst {
            count,
            seconds,
            program,
            parallel,
            rename,
            kill_every,
        } => burst(
            count,
            seconds,
            &program,
            parallel,
            rename.as_deref(),
            kill_every,
        ),
        Scenario::CoreDump => core_dump(),
        Scenario::Signals => signals(),
        Scenario::CloneParent => clone_parent(),
        Scenario::CloneParentRace { files } => clone_parent_race(files),
        Scenario::Identity => identity(),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tracer-workload: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
