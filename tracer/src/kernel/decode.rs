//! Turns raw ring-buffer records into typed [`Event`]s. Works on untrusted bytes: every length
//! is checked, nothing panics.

use std::fmt;

use tracer_common::{
    ExecRecord, ExitRecord, FILENAME_CAP, Header, ProcessStartRecord, RecordKind, RenameRecord,
    SignalRecord,
};
use zerocopy::FromBytes;

use crate::event::{
    Event, Exec, Exit, ProcessStart, Rename, Signal, SignalResult, args_spill, c_string,
    split_args, text_of,
};

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

pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
    let (header, _) = prefix::<Header>(bytes, "header")?;
    let kind = RecordKind::from_u32(header.kind).ok_or(DecodeError::UnknownKind(header.kind))?;
    Ok(match kind {
        RecordKind::ProcessStart => {
            let (r, _) = prefix::<ProcessStartRecord>(bytes, "process_start")?;
            Event::ProcessStart(ProcessStart {
                ts: r.header.ts,
                pid: r.header.pid,
                start_time: r.header.start_time,
                ppid: r.header.ppid,
                parent_start_time: r.parent_start_time,
                tid: r.header.tid,
                caller_pid: r.caller_pid,
                comm: c_string(&r.comm),
                uid: r.uid,
                pgid: r.pgid,
                sid: r.sid,
                cgroup_id: r.cgroup_id,
            })
        }
        RecordKind::Exec => {
            let (r, mut tail) = prefix::<ExecRecord>(bytes, "exec")?;
            let filename = take(&mut tail, r.filename_len, "exec")?;
            let argv = take(&mut tail, r.argv_len, "exec")?;
            Event::Exec(Exec {
                ts: r.header.ts,
                pid: r.header.pid,
                start_time: r.header.start_time,
                ppid: r.header.ppid,
                old_pid: r.old_tid,
                filename: text_of(filename),
                filename_truncated: r.filename_len as usize >= FILENAME_CAP - 1,
                cmdline: split_args(argv),
                cmdline_truncated: r.argv_total > r.argv_len || args_spill(argv),
                comm: c_string(&r.comm),
                uid: r.uid,
                pgid: r.pgid,
                sid: r.sid,
                env: Default::default(),
            })
        }
        RecordKind::Exit => {
            let (r, _) = prefix::<ExitRecord>(bytes, "exit")?;
            let (exit_code, signal, core_dumped) = Exit::status_fields(r.exit_status);
            Event::Exit(Exit {
                ts: r.header.ts,
                pid: r.header.pid,
                start_time: r.header.start_time,
                ppid: r.header.ppid,
                exit_code,
                signal,
                core_dumped,
                reaper_pid: r.reaper_pid,
                pgid: r.pgid,
                sid: r.sid,
                comm: c_string(&r.comm),
            })
        }
        RecordKind::Rename => {
            let (r, mut tail) = prefix::<RenameRecord>(bytes, "rename")?;
            let argv = take(&mut tail, r.argv_len, "rename")?;
            Event::Rename(Rename {
                ts: r.header.ts,
                pid: r.header.pid,
                start_time: r.header.start_time,
                comm: c_string(&r.comm),
                cmdline: (r.argv_len > 0).then(|| split_args(argv)),
                cmdline_truncated: r.argv_len > 0
                    && (r.argv_total > r.argv_len || args_spill(argv)),
                pgid: r.pgid,
                sid: r.sid,
            })
        }
        RecordKind::Signal => {
            let (r, _) = prefix::<SignalRecord>(bytes, "signal")?;
            Event::Signal(Signal {
                ts: r.header.ts,
                pid: r.header.pid,
                start_time: r.header.start_time,
                target_pid: r.header.pid,
                sender_pid: r.sender_pid,
                sender_start_time: r.sender_start_time,
                sender_comm: c_string(&r.sender_comm),
                sig: r.sig as i32,
                code: r.code,
                result: SignalResult::from_kernel(r.result),
            })
        }
    })
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
}
