//! Turns raw ring-buffer records into typed [`Event`]s. Works on untrusted bytes: every length
//! is checked, nothing panics.

use std::fmt;

use tracer_common::{
    ExecRecord, ExitRecord, FILENAME_CAP, Header, ProcessStartRecord, RecordKind, RenameRecord,
    SENDER_EXITING, SENDER_GROUP_DEAD, SignalRecord,
};
use zerocopy::FromBytes;

use tracer_core::event::{
    Event, Exec, Exit, MemoryCgroup, ProcessStart, Rename, Signal, SignalResult,
};
use tracer_core::text::{split_args, text_of};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    Short { kind: &'static str, len: usize },
    UnknownKind(u32),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Short { kind, len } => write!(f, "{kind} record of {len} bytes is short"),
            DecodeError::UnknownKind(kind) => write!(f, "unknown record kind {kind}"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn prefix<'a, T: FromBytes>(
    bytes: &'a [u8],
    kind: &'static str,
) -> Result<(T, &'a [u8]), DecodeError> {
    T::read_from_prefix(bytes).map_err(|_| DecodeError::Short {
        kind,
        len: bytes.len(),
    })
}

/// Takes `len` bytes off the front of a record tail.
fn take<'a>(tail: &mut &'a [u8], len: u32, kind: &'static str) -> Result<&'a [u8], DecodeError> {
    let len = len as usize;
    if tail.len() < len {
        return Err(DecodeError::Short {
            kind,
            len: tail.len(),
        });
    }
    let (head, rest) = tail.split_at(len);
    *tail = rest;
    Ok(head)
}

/// A default event of type `$event` with the time and the process identity every record's
/// header carries.
macro_rules! stamped {
    ($event:ty, $header:expr) => {{
        let mut event = <$event>::default();
        event.ts = $header.ts;
        event.pid = $header.pid;
        event.start_time = $header.start_time;
        event
    }};
}

/// Decodes one record into the event it reports, in one pass over its bytes.
pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let (header, _) = prefix::<Header>(bytes, "header")?;
    let kind = RecordKind::from_u32(header.kind).ok_or(DecodeError::UnknownKind(header.kind))?;
    Ok(match kind {
        RecordKind::ProcessStart => {
            let (r, _) = prefix::<ProcessStartRecord>(bytes, "process_start")?;
            let mut start = stamped!(ProcessStart, r.header);
            start.ppid = r.header.ppid;
            start.parent_start_time = r.parent_start_time;
            start.tid = r.header.tid;
            start.caller_pid = r.caller_pid;
            start.caller_pdeath_signal = r.caller_pdeath_signal as i32;
            start.comm = c_string(&r.comm);
            start.uid = r.uid;
            start.pgid = r.pgid;
            start.sid = r.sid;
            start.cgroup_id = r.cgroup_id;
            Event::ProcessStart(start)
        }
        RecordKind::Exec => {
            let (r, mut tail) = prefix::<ExecRecord>(bytes, "exec")?;
            let filename = take(&mut tail, r.filename_len, "exec")?;
            let argv = take(&mut tail, r.argv_len, "exec")?;
            let mut exec = stamped!(Exec, r.header);
            exec.ppid = r.header.ppid;
            exec.old_pid = r.old_tid;
            exec.filename = text_of(filename);
            exec.filename_truncated = r.filename_len as usize >= FILENAME_CAP - 1;
            exec.cmdline = split_args(argv);
            exec.cmdline_truncated = r.argv_total > r.argv_len || args_spill(argv);
            exec.comm = c_string(&r.comm);
            exec.uid = r.uid;
            exec.pgid = r.pgid;
            exec.sid = r.sid;
            Event::Exec(exec)
        }
        RecordKind::Exit => {
            let (r, _) = prefix::<ExitRecord>(bytes, "exit")?;
            let mut exit = stamped!(Exit, r.header);
            exit.ppid = r.header.ppid;
            (exit.exit_code, exit.signal, exit.core_dumped) = wait_status(r.exit_status);
            exit.reaper_pid = r.reaper_pid;
            exit.pgid = r.pgid;
            exit.sid = r.sid;
            exit.comm = c_string(&r.comm);
            exit.oom_killed = r.oom_victim != 0;
            exit.memory_cgroup = (exit.oom_killed && r.memcg_id != 0)
                .then(|| MemoryCgroup::new(r.memcg_id, None, limit_bytes(r.memcg_max_pages)));
            Event::Exit(exit)
        }
        RecordKind::Rename => {
            let (r, mut tail) = prefix::<RenameRecord>(bytes, "rename")?;
            let argv = take(&mut tail, r.argv_len, "rename")?;
            let mut rename = stamped!(Rename, r.header);
            rename.comm = c_string(&r.comm);
            rename.cmdline = (r.argv_len > 0).then(|| split_args(argv));
            rename.cmdline_truncated =
                r.argv_len > 0 && (r.argv_total > r.argv_len || args_spill(argv));
            rename.pgid = r.pgid;
            rename.sid = r.sid;
            Event::Rename(rename)
        }
        RecordKind::Signal => {
            let (r, _) = prefix::<SignalRecord>(bytes, "signal")?;
            let mut signal = stamped!(Signal, r.header);
            signal.target_pid = r.header.pid;
            signal.sender_pid = r.sender_pid;
            signal.sender_start_time = r.sender_start_time;
            signal.sender_comm = c_string(&r.sender_comm);
            signal.sig = r.sig as i32;
            signal.code = r.code;
            signal.result = signal_result(r.result);
            signal.sender_tid = r.header.tid;
            signal.sender_exiting = r.sender_flags & SENDER_EXITING != 0;
            signal.sender_group_exiting = r.sender_flags & SENDER_GROUP_DEAD != 0;
            signal.target_pdeath_signal = r.target_pdeath_signal as i32;
            Event::Signal(signal)
        }
    })
}

/// A memory cgroup's limit in bytes from its `page_counter::max` in pages; none when it is
/// unlimited (the kernel's `PAGE_COUNTER_MAX`, `LONG_MAX / PAGE_SIZE`) or unknown.
fn limit_bytes(max_pages: u64) -> Option<u64> {
    let page = page_size();
    (max_pages != 0 && max_pages < i64::MAX as u64 / page).then(|| max_pages * page)
}

fn page_size() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|size| u64::try_from(size).ok())
            .unwrap_or(4096)
    })
}

/// A kernel wait status as exit code, killing signal and core-dump flag.
pub fn wait_status(status: u32) -> (Option<i32>, Option<i32>, bool) {
    let signal = (status & 0x7f) as i32;
    let core_dumped = status & 0x80 != 0;
    if signal == 0 {
        (Some(((status >> 8) & 0xff) as i32), None, core_dumped)
    } else {
        (None, Some(signal), core_dumped)
    }
}

/// The `signal_generate` tracepoint's `result` (`TRACE_SIGNAL_*`).
fn signal_result(result: i32) -> SignalResult {
    match result {
        0 => SignalResult::Delivered,
        1 => SignalResult::Ignored,
        2 => SignalResult::AlreadyPending,
        3 => SignalResult::OverflowFail,
        4 => SignalResult::LoseInfo,
        _ => SignalResult::Unknown,
    }
}

/// Whether a copied argument area looks complete. The kernel ends every argument with a NUL;
/// an area whose last byte is not NUL was overwritten by a title longer than the original
/// arguments (setproctitle spills into the environment strings), which `/proc/PID/cmdline`
/// reads on past the area's end.
pub fn args_spill(area: &[u8]) -> bool {
    area.last().is_some_and(|&b| b != 0)
}

/// A NUL-terminated kernel string (comm, path) as text.
pub fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    text_of(&bytes[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: RecordKind) -> Vec<u8> {
        let mut bytes = Vec::new();
        for word in [kind as u32, 77] {
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        bytes.extend_from_slice(&1_000u64.to_ne_bytes());
        for word in [42u32, 1] {
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        bytes.extend_from_slice(&500u64.to_ne_bytes());
        bytes
    }

    fn exec_record(filename: &[u8], argv: &[u8], argv_total: u32) -> Vec<u8> {
        let mut bytes = header(RecordKind::Exec);
        for word in [
            99u32,
            0,
            42,
            42,
            filename.len() as u32,
            argv.len() as u32,
            argv_total,
            0,
        ] {
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        bytes.extend_from_slice(b"true\0\0\0\0\0\0\0\0\0\0\0\0");
        bytes.extend_from_slice(filename);
        bytes.extend_from_slice(argv);
        bytes
    }

    #[test]
    fn decodes_an_exec_with_its_tail() {
        let bytes = exec_record(b"/bin/true", b"true\0--version\0", 15);
        let Event::Exec(exec) = decode(&bytes).unwrap() else {
            panic!("not an exec");
        };
        assert_eq!((exec.pid, exec.ppid, exec.old_pid), (42, 1, 99));
        assert_eq!(exec.filename, "/bin/true");
        assert_eq!(exec.cmdline, ["true", "--version"]);
        assert!(!exec.cmdline_truncated);
        assert_eq!(exec.comm, "true");

        let cut = exec_record(b"/bin/true", b"true\0", 5000);
        let Event::Exec(exec) = decode(&cut).unwrap() else {
            panic!("not an exec");
        };
        assert!(exec.cmdline_truncated);

        // A title written past the end of the argument area.
        let spilled = exec_record(b"/bin/true", b"[celeryd: w1@host:Mai", 21);
        let Event::Exec(exec) = decode(&spilled).unwrap() else {
            panic!("not an exec");
        };
        assert!(exec.cmdline_truncated);
    }

    #[test]
    fn rejects_short_and_unknown_records_at_every_length() {
        let bytes = exec_record(b"/bin/true", b"true\0", 5);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "length {len}");
        }
        let mut unknown = header(RecordKind::Exec);
        unknown[0] = 200;
        assert_eq!(decode(&unknown), Err(DecodeError::UnknownKind(200)));
    }

    #[test]
    fn wait_statuses_and_kernel_strings() {
        assert_eq!(wait_status(3 << 8), (Some(3), None, false));
        assert_eq!(wait_status(9), (None, Some(9), false));
        assert_eq!(wait_status(0x80 | 6), (None, Some(6), true));
        assert_eq!(c_string(b"bash\0\0junk"), "bash");
        assert!(args_spill(b"[celeryd: w1@host:Mai") && !args_spill(b"sleep\0"));
    }
}
