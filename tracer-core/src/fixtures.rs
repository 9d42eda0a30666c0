//! Event builders for unit tests: one place that knows every field of every event.

use crate::event::{
    CurrentProcess, Event, Exec, Exit, InterpreterRead, Lost, LostCounts, ProcessKey, ProcessStart,
    ReadOutcome, Rename, Signal, SignalResult, Snapshot,
};
use crate::trace::TraceHeader;

/// A trace header of a host `host` on 6.18, started at 10 ns, with 10 ms clock ticks.
pub fn header() -> TraceHeader {
    TraceHeader::new(
        "host".into(),
        "6.18".into(),
        "boot".into(),
        10,
        20,
        10_000_000,
    )
}

/// One exec record lost, seen at `ts`.
pub fn lost(ts: u64) -> Event {
    let by_kind = LostCounts {
        exec: 1,
        ..LostCounts::default()
    };
    Event::Lost(Lost::new(ts, by_kind, 0))
}

pub fn key(pid: u32, start_time: u64) -> ProcessKey {
    ProcessKey { pid, start_time }
}

pub fn snapshot(ts: u64, process: ProcessKey, ppid: u32, title: &str) -> Event {
    Event::Snapshot(Snapshot {
        ts,
        pid: process.pid,
        start_time: process.start_time,
        ppid,
        comm: title
            .split(' ')
            .next()
            .unwrap_or("")
            .chars()
            .take(15)
            .collect(),
        cmdline: title.split(' ').map(String::from).collect(),
        cmdline_truncated: false,
        uid: 0,
        pgid: process.pid,
        sid: process.pid,
        kernel_thread: ppid == 2 || process.pid == 2,
        env: Default::default(),
    })
}

pub fn fork(ts: u64, child: ProcessKey, parent: ProcessKey, comm: &str) -> Event {
    Event::ProcessStart(ProcessStart {
        ts,
        pid: child.pid,
        start_time: child.start_time,
        ppid: parent.pid,
        parent_start_time: parent.start_time,
        tid: parent.pid,
        caller_pid: parent.pid,
        comm: comm.into(),
        uid: 0,
        pgid: parent.pid,
        sid: 1,
        cgroup_id: 1,
        caller_pdeath_signal: 0,
    })
}

pub fn exec(ts: u64, process: ProcessKey, ppid: u32, filename: &str, argv: &[&str]) -> Event {
    Event::Exec(Exec {
        ts,
        pid: process.pid,
        start_time: process.start_time,
        ppid,
        old_pid: process.pid,
        filename: filename.into(),
        filename_truncated: false,
        cmdline: argv.iter().map(|a| a.to_string()).collect(),
        cmdline_truncated: false,
        comm: argv.first().copied().unwrap_or("").into(),
        uid: 0,
        pgid: process.pid,
        sid: 1,
        env: Default::default(),
    })
}

pub fn rename(ts: u64, process: ProcessKey, title: &str) -> Event {
    Event::Rename(Rename {
        ts,
        pid: process.pid,
        start_time: process.start_time,
        comm: title.chars().take(15).collect(),
        cmdline: Some(vec![title.to_owned()]),
        cmdline_truncated: false,
        pgid: process.pid,
        sid: 1,
    })
}

pub fn signal(ts: u64, target: ProcessKey, sender: ProcessKey, sig: i32) -> Event {
    Event::Signal(Signal {
        ts,
        pid: target.pid,
        start_time: target.start_time,
        target_pid: target.pid,
        sender_pid: sender.pid,
        sender_start_time: sender.start_time,
        sender_comm: "sender".into(),
        sig,
        code: 0,
        result: SignalResult::Delivered,
        sender_tid: sender.pid,
        sender_exiting: false,
        sender_group_exiting: false,
        target_pdeath_signal: 0,
    })
}

pub fn exit(
    ts: u64,
    process: ProcessKey,
    ppid: u32,
    status: (Option<i32>, Option<i32>),
    reaper: u32,
) -> Event {
    Event::Exit(Exit {
        ts,
        pid: process.pid,
        start_time: process.start_time,
        ppid,
        exit_code: status.0,
        signal: status.1,
        core_dumped: false,
        reaper_pid: reaper,
        pgid: process.pid,
        sid: 1,
        comm: "worker".into(),
        oom_killed: false,
        memory_cgroup: None,
        inferred: false,
    })
}

/// A read of a Python 3.11 interpreter whose current process is `name` of `class`.
pub fn interpreter(
    ts: u64,
    process: ProcessKey,
    daemon: bool,
    name: &str,
    class: &str,
    parent_pid: Option<u32>,
) -> Event {
    Event::Interpreter(InterpreterRead::new(
        ts,
        process,
        Some("3.11".into()),
        ReadOutcome::Process(CurrentProcess::new(
            daemon,
            name.into(),
            class.into(),
            parent_pid,
        )),
    ))
}
