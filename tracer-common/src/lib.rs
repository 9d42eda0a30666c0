//! Records shared by the kernel probes (`tracer-ebpf`) and the userspace daemon (`tracer`).
//!
//! Every record starts with a [`Header`]; its `kind` says which record follows. Layouts are
//! `#[repr(C)]` and only ever grow at the end of a record, so the userspace decoder can check the
//! length of what it received against the size it expects.
#![no_std]

/// Length of `task_struct::comm`, including the terminating NUL.
pub const TASK_COMM_LEN: usize = 16;
/// How much of the path passed to `execve` is copied. Longer paths are cut; the record says so.
pub const FILENAME_CAP: usize = 256;
/// How much of the argument area (`/proc/PID/cmdline`) is copied in the kernel. A power of two,
/// so the copy length can be bounded for the verifier. Userspace fills in longer command lines
/// from `/proc` while the process lives.
pub const ARGV_CAP: usize = 1024;
/// Default size of the event ring buffer. Measured on a 2-core host at the top fork rates
/// (about 12,000 fork+exit or 2,500 fork+exec a second, BENCHMARKS.md): no loss from 4 MiB up;
/// 8 MiB holds about two seconds of that flood for a descheduled reader. The ring is mapped
/// twice, so it costs twice its size in resident memory: 32 MiB put the tracer at 100 MiB.
pub const DEFAULT_RING_BYTES: u32 = 8 << 20;
/// How many ancestors the exit probe walks to find the subreaper that adopts orphans.
pub const MAX_REAPER_WALK: u32 = 64;

/// `signal_struct::flags` bit set once a whole thread group is exiting (`SIGNAL_GROUP_EXIT`).
/// A `#define` in the kernel, so it is not in BTF; it has kept this value since Linux 2.6.
pub const SIGNAL_GROUP_EXIT: u32 = 0x0000_0004;

/// Which record follows the header. Also the index into the per-CPU lost-record counters.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    ProcessStart = 1,
    Exec = 2,
    Exit = 3,
    Rename = 4,
    Signal = 5,
}

/// Size of the per-CPU `LOST` array: one counter per [`RecordKind`] (index 0 unused).
pub const RECORD_KINDS: u32 = 6;

impl RecordKind {
    pub const ALL: [RecordKind; 5] = [
        RecordKind::ProcessStart,
        RecordKind::Exec,
        RecordKind::Exit,
        RecordKind::Rename,
        RecordKind::Signal,
    ];

    pub fn from_u32(value: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| *kind as u32 == value)
    }
}

/// Common start of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable)
)]
pub struct Header {
    /// A [`RecordKind`].
    pub kind: u32,
    /// The thread that was running: the forking thread, the exec'ing thread, the last thread
    /// to exit, the renaming thread, the thread that generated the signal.
    pub tid: u32,
    /// `CLOCK_BOOTTIME` in nanoseconds when the probe ran.
    pub ts: u64,
    /// The process (thread group id) the record is about.
    pub pid: u32,
    /// Its real parent's thread group id at that moment.
    pub ppid: u32,
    /// Its group leader's `start_boottime` (ns since boot): with `pid`, the process identity.
    pub start_time: u64,
}

/// A new process (never a thread).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable)
)]
pub struct ProcessStartRecord {
    pub header: Header,
    /// The real parent's start time, so the parent is identified even if its pid was reused.
    pub parent_start_time: u64,
    /// cgroup v2 id of the new process.
    pub cgroup_id: u64,
    pub uid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// The process that called fork/clone: the parent, except with `CLONE_PARENT`, where the
    /// caller's parent becomes the parent. The child is a copy of the caller.
    pub caller_pid: u32,
    /// The calling thread's parent-death signal (`PR_SET_PDEATHSIG`), 0 for none: Celery's
    /// pool workers set SIGKILL, which the kernel shows without reading the interpreter.
    pub caller_pdeath_signal: u32,
    pub _pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

/// A successful `execve`. Followed in the ring buffer by a tail of `filename_len` bytes of the
/// path passed to `execve`, then `argv_len` bytes of NUL-separated arguments (as in
/// `/proc/PID/cmdline`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable)
)]
pub struct ExecRecord {
    pub header: Header,
    /// The thread id that called `execve`; differs from `header.pid` when a non-leader thread
    /// exec'd (it then took over the leader's pid).
    pub old_tid: u32,
    pub uid: u32,
    pub pgid: u32,
    pub sid: u32,
    /// Bytes of the path in the tail, without a NUL. `FILENAME_CAP - 1` means it may be cut.
    pub filename_len: u32,
    /// Bytes of arguments in the tail.
    pub argv_len: u32,
    /// Size of the whole argument area; more than `argv_len` means the arguments were cut.
    pub argv_total: u32,
    pub _pad: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

/// Largest tail an [`ExecRecord`] carries.
pub const EXEC_TAIL_CAP: usize = FILENAME_CAP + ARGV_CAP;

/// The last thread of a process exited.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable)
)]
pub struct ExitRecord {
    pub header: Header,
    /// The wait status the parent will see: code in bits 8..16, signal in bits 0..7, core dump
    /// in bit 7.
    pub exit_status: u32,
    /// Thread group id of the process that adopts this process's live children: the nearest
    /// live `PR_SET_CHILD_SUBREAPER` ancestor in its pid namespace, else that namespace's init.
    /// Equal to `header.pid` when the process is itself the init of its namespace; 0 when the
    /// ancestry was deeper than the probe walks (`MAX_REAPER_WALK`).
    pub reaper_pid: u32,
    /// Process group and session at exit (setsid/setpgid without exec change them).
    pub pgid: u32,
    pub sid: u32,
    pub comm: [u8; TASK_COMM_LEN],
    /// Nonzero when the OOM killer chose this process (`signal_struct::oom_mm` is set).
    pub oom_victim: u32,
    pub _pad: u32,
    /// With `oom_victim`: the kernfs id of its memory cgroup's directory (its inode), and
    /// that cgroup's memory limit in pages (`page_counter::max`); 0 where unknown.
    pub memcg_id: u64,
    pub memcg_max_pages: u64,
}

/// `task_rename` of a group leader outside `execve` (`prctl(PR_SET_NAME)`, `/proc/PID/comm`).
/// Followed by a tail of `argv_len` bytes of the argument area, where setproctitle writes the
/// full title.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable)
)]
pub struct RenameRecord {
    pub header: Header,
    /// Bytes of arguments in the tail; 0 when the argument area could not be read (renamed by
    /// another process).
    pub argv_len: u32,
    pub argv_total: u32,
    /// Process group and session now: a forked worker often calls setpgid before it retitles.
    pub pgid: u32,
    pub sid: u32,
    pub comm: [u8; TASK_COMM_LEN],
}

/// A terminating signal was generated for a process (`signal_generate`). `header.pid` and
/// `header.start_time` are the target's.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[cfg_attr(
    feature = "user",
    derive(zerocopy::FromBytes, zerocopy::KnownLayout, zerocopy::Immutable)
)]
pub struct SignalRecord {
    pub header: Header,
    pub sender_pid: u32,
    pub sig: u32,
    /// `si_code`: `SI_USER` (0) for kill(2), `SI_KERNEL` (0x80), `SI_TKILL` (-6), ...
    pub code: i32,
    /// `TRACE_SIGNAL_DELIVERED` (0), `_IGNORED` (1), `_ALREADY_PENDING` (2), `_OVERFLOW_FAIL`
    /// (3), `_LOSE_INFO` (4).
    pub result: i32,
    pub sender_start_time: u64,
    pub sender_comm: [u8; TASK_COMM_LEN],
    /// `SENDER_*` bits: what the sending thread was doing.
    pub sender_flags: u32,
    /// The target's `PR_SET_PDEATHSIG` signal (0 for none).
    pub target_pdeath_signal: u32,
}

/// [`SignalRecord::sender_flags`]: the sending thread is exiting (`PF_EXITING`), as one that
/// sends its children's parent-death signals is.
pub const SENDER_EXITING: u32 = 1;
/// [`SignalRecord::sender_flags`]: the sender's whole thread group is exiting (its live
/// count is zero): a parent-death signal then means the parent process died.
pub const SENDER_GROUP_DEAD: u32 = 2;

/// `task_struct::flags` bit of a task in `do_exit` (`PF_EXITING`), a `#define` with this value
/// since Linux 2.6.
pub const PF_EXITING: u32 = 0x0000_0004;

/// The terminating signals reported by default (bit N = signal N): SIGHUP, SIGINT, SIGQUIT,
/// SIGABRT, SIGKILL, SIGUSR1, SIGTERM, and SIGXCPU (the kernel's warning before it kills for
/// RLIMIT_CPU).
pub const DEFAULT_SIGNAL_MASK: u64 =
    (1 << 1) | (1 << 2) | (1 << 3) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 15) | (1 << 24);

/// Entries of the kernel layout table handed to the probes at load time. Userspace resolves
/// each from the running kernel's BTF; the probes never assume a layout.
///
/// Entries ending in `Byte`/`Mask` locate a one-bit bitfield: the byte that holds it and the bit
/// within that byte. A mask of 0 means the kernel lacks the field.
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    TaskPid,
    TaskTgid,
    TaskRealParent,
    TaskGroupLeader,
    TaskStartBoottime,
    TaskComm,
    TaskRealCred,
    TaskSignal,
    TaskExitCode,
    TaskMm,
    TaskCgroups,
    TaskThreadPid,
    TaskInExecveByte,
    TaskInExecveMask,
    CredUid,
    SignalLive,
    SignalFlags,
    SignalGroupExitCode,
    SignalIsSubreaperByte,
    SignalIsSubreaperMask,
    SignalHasSubreaperByte,
    SignalHasSubreaperMask,
    SignalPids,
    PidLevel,
    PidNumbers,
    UpidSize,
    UpidNr,
    UpidNs,
    PidNsChildReaper,
    CssSetDflCgrp,
    CgroupKn,
    KernfsNodeId,
    MmArgStart,
    MmArgEnd,
    BinprmFilename,
    SiginfoCode,
    PidTypePgid,
    PidTypeSid,
    TaskFlags,
    TaskPdeathSignal,
    /// Optional from here on: 0 where the kernel lacks it (no memory cgroups, say).
    SignalOomMm,
    CssSetSubsys,
    MemoryCgrpId,
    CssCgroup,
    MemCgroupCss,
    MemCgroupMemory,
    PageCounterMax,
    /// 1 when every memory cgroup entry above resolved (their offsets may well be 0).
    MemcgAvailable,
}

/// Number of [`Layout`] entries.
pub const LAYOUT_LEN: usize = Layout::MemcgAvailable as usize + 1;

/// The table itself: `table[Layout::X as usize]`.
pub type LayoutTable = [u32; LAYOUT_LEN];
