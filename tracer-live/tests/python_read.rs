//! The interpreter reader on the host's own Python: a daemonic multiprocessing child and its
//! main process, read from outside while they run.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use tracer_core::analysis::Wanted;
use tracer_core::event::{ProcessKey, ReadOutcome};
use tracer_live::host;
use tracer_live::procfs::ProcFs;
use tracer_live::python::InterpreterReader;

const SCRIPT: &str = r#"
import multiprocessing as mp, os, sys, time
def child():
    print(os.getpid(), flush=True)
    time.sleep(60)
if __name__ == "__main__":
    mp.set_start_method("fork")
    print(os.getpid(), flush=True)
    p = mp.Process(target=child, daemon=True, name="the-child")
    p.start()
    p.join()
"#;

/// A process that has not exec'd since it was started (the interpreter's first program).
fn wanted(process: ProcessKey) -> Wanted {
    Wanted { process, execs: 0 }
}

fn key_of(procfs: &ProcFs, pid: u32) -> ProcessKey {
    let stat = procfs.stat(pid).expect("alive");
    ProcessKey {
        pid,
        start_time: stat.start_ticks * procfs.tick_ns(),
    }
}

#[test]
fn the_host_python_says_which_process_is_daemonic() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: reading another process's memory needs root");
        return;
    }
    // TRACER_TEST_PYTHON: another interpreter command, e.g. `chroot DIR python3`.
    let command = std::env::var("TRACER_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut words = command.split_whitespace();
    let mut python = Command::new(words.next().unwrap())
        .args(words)
        .args(["-c", SCRIPT])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut lines = BufReader::new(python.stdout.take().unwrap()).lines();
    let main: u32 = lines.next().unwrap().unwrap().parse().unwrap();
    let child: u32 = lines.next().unwrap().unwrap().parse().unwrap();
    let procfs = ProcFs::host(host::clock_tick_ns());
    let mut reader = InterpreterReader::new(procfs.clone());
    let read = reader.inspect(wanted(key_of(&procfs, child)));
    let outcome = read.outcome.clone();
    let main_read = reader.inspect(wanted(key_of(&procfs, main)));
    let _ = python.kill();
    let _ = python.wait();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let ReadOutcome::Process(current) = outcome else {
        panic!("{read:?}");
    };
    assert!(current.daemon, "{current:?}");
    assert_eq!(current.name, "the-child");
    assert_eq!(current.class, "multiprocessing.context.Process");
    assert_eq!(current.parent_pid, Some(main));
    let ReadOutcome::Process(main_process) = &main_read.outcome else {
        panic!("{main_read:?}");
    };
    assert!(!main_process.daemon);
    assert_eq!(main_process.name, "MainProcess");
    assert_eq!(main_process.parent_pid, None);
    eprintln!("{} / {}", read.describe(), main_read.describe());
}
