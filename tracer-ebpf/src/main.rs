//! Kernel probes of the process lineage tracer.
//!
//! Five BTF tracepoints turn process lifecycle changes into records on one ring buffer:
//! `sched_process_fork` (new processes, never threads), `sched_process_exec`,
//! `sched_process_exit` (the last thread of a process only), `task_rename` (of group leaders,
//! outside exec) and `signal_generate` (terminating signals only).
//!
//! Rust eBPF gets no CO-RE relocations, so no kernel layout is compiled in: every struct member
//! is read through `LAYOUT`, a table the loader fills from the running kernel's BTF. Kernel
//! memory is only ever read with `bpf_probe_read_kernel`, which returns zeroes for a bad
//! address instead of faulting.
#![no_std]
#![no_main]
// The BPF target has no compare-and-swap, so `AtomicU64::fetch_add` does not exist there; the
// intrinsic lowers to the BPF atomic add instruction.
#![feature(core_intrinsics)]
// Inline assembly on the BPF target: see `verifier_bound`.
#![feature(asm_experimental_arch)]
#![allow(internal_features)]

use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering, atomic_xadd},
    mem::size_of,
};

use aya_ebpf::{
    bindings::{
        BPF_F_MMAPABLE, BPF_NOEXIST, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP,
    },
    helpers::generated::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_ktime_get_boot_ns,
        bpf_probe_read_kernel, bpf_probe_read_kernel_str, bpf_probe_read_user,
    },
    macros::{btf_tracepoint, map},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::BtfTracePointContext,
};
use tracer_common::{
    ARGV_CAP, DEFAULT_RING_BYTES, DEFAULT_SIGNAL_MASK, EXEC_TAIL_CAP, ExecRecord, ExitRecord,
    FILENAME_CAP, Header, LAYOUT_LEN, Layout, LayoutTable, MAX_REAPER_WALK, PF_EXITING,
    ProcessStartRecord, RECORD_KINDS, RecordKind, RenameRecord, SENDER_EXITING, SENDER_GROUP_DEAD,
    SIGNAL_GROUP_EXIT, SignalRecord, TASK_COMM_LEN,
};

/// Kernel layout, filled in by the loader from BTF before the programs load.
#[unsafe(no_mangle)]
static LAYOUT: LayoutTable = [0; LAYOUT_LEN];

/// Signals reported by `signal_generate` (bit N = signal N), set by the loader.
#[unsafe(no_mangle)]
static SIGNAL_MASK: u64 = DEFAULT_SIGNAL_MASK;

/// Unread bytes in the ring at which a record wakes the reader even while it polls on its
/// own: it then reads early, well before the ring fills. Set by the loader.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = DEFAULT_RING_BYTES as u64 / 4;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

/// Slot 0 is 1 while the reader sleeps until a record wakes it; the first record that sees
/// it wakes the reader and clears it. While it is 0 the reader polls the ring on a timer,
/// and records wake nobody: a wakeup costs the traced process far more than a record.
/// Memory-mapped by the reader, which sets it without a `bpf()` call: before Linux 5.19 a
/// tracer that has dropped its capabilities may not make one.
#[map]
static READER_ASLEEP: Array<u32> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Records that did not fit in the ring buffer, indexed by `RecordKind`. Memory-mapped by the
/// reader, like `READER_ASLEEP`; one slot per kind for all CPUs, as a record is lost only when
/// the ring is full, so the atomic adds seldom meet.
#[map]
static LOST: Array<u64> = Array::with_max_entries(RECORD_KINDS, BPF_F_MMAPABLE);

/// Size of a scratch value: a power of two, so that `verifier_bound` can bound a length by it
/// with one mask.
const SCRATCH_BYTES: usize = 2048;

/// Exec and rename records are built here and copied out at their real length, so that a short
/// command line does not take the ring space of the longest one. The slack is never written:
/// it lets a masked length be read in full.
#[repr(C)]
struct ExecScratch {
    record: ExecRecord,
    tail: [u8; EXEC_TAIL_CAP],
    _slack: [u8; SCRATCH_BYTES - size_of::<ExecRecord>() - EXEC_TAIL_CAP],
}

#[repr(C)]
struct RenameScratch {
    record: RenameRecord,
    tail: [u8; ARGV_CAP],
    _slack: [u8; SCRATCH_BYTES - size_of::<RenameRecord>() - ARGV_CAP],
}

const _: () = assert!(size_of::<ExecScratch>() == SCRATCH_BYTES);
const _: () = assert!(size_of::<RenameScratch>() == SCRATCH_BYTES);

/// A process whose exit the legacy exit probe has reported, by identity.
#[repr(C)]
#[derive(Clone, Copy)]
struct ProcessIdentity {
    pid: u32,
    _pad: u32,
    start_time: u64,
}

/// Exits the legacy exit probe has reported. Its last threads can exit at the same instant
/// and each see the live count at zero; the first to insert here reports the exit. An entry
/// is needed only for those microseconds, so a small LRU map does: an identity is never
/// reused, so an evicted entry can never hide another process's exit.
#[map]
static EXITS_REPORTED: LruHashMap<ProcessIdentity, u8> = LruHashMap::with_max_entries(1024, 0);

#[map]
static EXEC_SCRATCH: PerCpuArray<ExecScratch> = PerCpuArray::with_max_entries(1, 0);

#[map]
static RENAME_SCRATCH: PerCpuArray<RenameScratch> = PerCpuArray::with_max_entries(1, 0);

#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// A kernel address, kept as an integer: it is only ever dereferenced by the probe-read helpers.
type KernelPtr = u64;

#[inline(always)]
fn layout(entry: Layout) -> usize {
    // SAFETY: LAYOUT is a plain array written by the loader before load; the volatile read keeps
    // the compiler from folding in the zero initializer.
    unsafe { core::ptr::read_volatile(&raw const LAYOUT[entry as usize]) as usize }
}

/// Reads a `T` at `base + offset` in kernel memory; zero when the address is not readable.
#[inline(always)]
fn read<T: Copy + Default>(base: KernelPtr, offset: usize) -> T {
    let mut value = T::default();
    // SAFETY: the helper writes at most size_of::<T>() bytes into `value` and zero-fills it if
    // the source is unreadable.
    unsafe {
        bpf_probe_read_kernel(
            (&raw mut value).cast::<c_void>(),
            size_of::<T>() as u32,
            base.wrapping_add(offset as u64) as *const c_void,
        );
    }
    value
}

#[inline(always)]
fn field<T: Copy + Default>(base: KernelPtr, entry: Layout) -> T {
    read(base, layout(entry))
}

#[inline(always)]
fn tgid(task: KernelPtr) -> u32 {
    field(task, Layout::TaskTgid)
}

#[inline(always)]
fn is_thread_group_leader(task: KernelPtr) -> bool {
    field::<u32>(task, Layout::TaskPid) == tgid(task)
}

#[inline(always)]
fn group_leader(task: KernelPtr) -> KernelPtr {
    field(task, Layout::TaskGroupLeader)
}

/// The process start time as `/proc/PID/stat` reports it: the group leader's, which `execve`
/// from a non-leader thread keeps.
#[inline(always)]
fn process_start_time(task: KernelPtr) -> u64 {
    field(group_leader(task), Layout::TaskStartBoottime)
}

#[inline(always)]
fn real_parent(task: KernelPtr) -> KernelPtr {
    field(task, Layout::TaskRealParent)
}

/// The init-namespace number of a `struct pid` (`numbers[0].nr`).
#[inline(always)]
fn pid_number(pid: KernelPtr) -> u32 {
    read(pid, layout(Layout::PidNumbers) + layout(Layout::UpidNr))
}

/// Process group or session id (`pid_type` given by a `PidType*` layout entry).
#[inline(always)]
fn group_id(task: KernelPtr, pid_type: Layout) -> u32 {
    let signal: KernelPtr = field(task, Layout::TaskSignal);
    let pid: KernelPtr = read(
        signal,
        layout(Layout::SignalPids) + size_of::<KernelPtr>() * layout(pid_type),
    );
    pid_number(pid)
}

/// A one-bit bitfield located by a byte entry and a mask entry; false if the kernel lacks it.
#[inline(always)]
fn flag(base: KernelPtr, byte: Layout, mask: Layout) -> bool {
    let mask = layout(mask) as u8;
    mask != 0 && field::<u8>(base, byte) & mask != 0
}

#[inline(always)]
fn real_uid(task: KernelPtr) -> u32 {
    field(
        field::<KernelPtr>(task, Layout::TaskRealCred),
        Layout::CredUid,
    )
}

#[inline(always)]
fn cgroup_id(task: KernelPtr) -> u64 {
    let css_set: KernelPtr = field(task, Layout::TaskCgroups);
    let cgroup: KernelPtr = field(css_set, Layout::CssSetDflCgrp);
    field(
        field::<KernelPtr>(cgroup, Layout::CgroupKn),
        Layout::KernfsNodeId,
    )
}

/// Copies a task's comm into `dst` (TASK_COMM_LEN bytes).
#[inline(always)]
fn copy_comm(dst: *mut [u8; TASK_COMM_LEN], task: KernelPtr) {
    // SAFETY: `dst` points at TASK_COMM_LEN writable bytes of a reserved record or scratch map.
    unsafe {
        bpf_probe_read_kernel(
            dst.cast::<c_void>(),
            TASK_COMM_LEN as u32,
            task.wrapping_add(layout(Layout::TaskComm) as u64) as *const c_void,
        );
    }
}

/// Copies up to ARGV_CAP bytes of a process's argument area into `dst`; returns the bytes
/// copied and the size of the whole area. `mm` must be the current task's address space.
#[inline(always)]
fn copy_args(dst: *mut u8, mm: KernelPtr) -> (u32, u32) {
    let start: u64 = field(mm, Layout::MmArgStart);
    let end: u64 = field(mm, Layout::MmArgEnd);
    if start == 0 || end <= start {
        return (0, 0);
    }
    let total = end - start;
    let len = if total > ARGV_CAP as u64 {
        ARGV_CAP as u32
    } else {
        total as u32
    };
    // SAFETY: `dst` has ARGV_CAP writable bytes after it (see the scratch layouts) and `len`
    // is at most ARGV_CAP; the helper zero-fills on failure.
    let ret = unsafe { bpf_probe_read_user(dst.cast::<c_void>(), len, start as *const c_void) };
    let copied = if ret == 0 { len } else { 0 };
    (copied, total.min(u32::MAX as u64) as u32)
}

#[inline(always)]
fn count_lost(kind: RecordKind) {
    if let Some(counter) = LOST.get_ptr_mut(kind as u32) {
        // SAFETY: `counter` is the u64 slot of LOST for this kind, valid while the program
        // runs; the atomic add keeps other CPUs and nested probes from losing an increment.
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(counter, 1) };
    }
}

#[inline(always)]
fn fill_header(header: *mut Header, kind: RecordKind, task: KernelPtr) {
    // SAFETY: `header` points at a record reserved in the ring buffer or in a scratch map.
    unsafe {
        (*header).kind = kind as u32;
        (*header).tid = bpf_get_current_pid_tgid() as u32;
        (*header).ts = bpf_ktime_get_boot_ns();
        (*header).pid = tgid(task);
        (*header).ppid = tgid(real_parent(task));
        (*header).start_time = process_start_time(task);
    }
}

/// How a record is committed: wake the reader only if it sleeps, or if the ring is filling.
#[inline(always)]
fn wakeup_flags() -> u64 {
    if let Some(asleep) = READER_ASLEEP.get_ptr_mut(0) {
        // SAFETY: slot 0 of READER_ASLEEP, valid while the program runs. Two CPUs may both see
        // 1 and both wake the reader: a spare wakeup, never a missed one.
        unsafe {
            if core::ptr::read_volatile(asleep) != 0 {
                core::ptr::write_volatile(asleep, 0);
                return BPF_RB_FORCE_WAKEUP as u64;
            }
        }
    }
    // SAFETY: a global the loader sets before load; the volatile read keeps the compiler from
    // folding in the initializer.
    let threshold = unsafe { core::ptr::read_volatile(&raw const WAKEUP_BYTES) };
    if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= threshold {
        BPF_RB_FORCE_WAKEUP as u64
    } else {
        BPF_RB_NO_WAKEUP as u64
    }
}

/// Bounds a scratch length by `SCRATCH_BYTES` in a way the verifier sees. The verifiers of
/// Linux 5.10 and 6.1 lose the bounds of the sum of bounded 32-bit lengths once LLVM
/// zero-extends it, and refuse `bpf_ringbuf_output` ("R3 min value is negative"); LLVM,
/// knowing the sum is already in range, would delete a mask written in Rust.
#[inline(always)]
fn verifier_bound(len: usize) -> usize {
    let mut len = len as u64;
    // SAFETY: one ALU instruction on a register the compiler gave us; no memory is touched.
    unsafe {
        core::arch::asm!(
            "{len} &= {mask}",
            len = inout(reg) len,
            mask = const SCRATCH_BYTES - 1,
            options(pure, nomem, nostack),
        );
    }
    len as usize
}

/// Copies the first `len` bytes of a scratch record to the ring buffer.
#[inline(always)]
fn output(record: *const u8, len: usize, kind: RecordKind) {
    let len = verifier_bound(len);
    // SAFETY: callers pass a scratch map value, SCRATCH_BYTES long, and `len` is below that.
    let bytes = unsafe { core::slice::from_raw_parts(record, len) };
    if EVENTS.output::<[u8]>(bytes, wakeup_flags()).is_err() {
        count_lost(kind);
    }
}

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    on_fork(ctx.arg::<KernelPtr>(1));
    0
}

fn on_fork(child: KernelPtr) {
    if !is_thread_group_leader(child) {
        return; // a new thread joining its process
    }
    let Some(mut entry) = EVENTS.reserve::<ProcessStartRecord>(0) else {
        count_lost(RecordKind::ProcessStart);
        return;
    };
    let record = entry.as_mut_ptr();
    fill_header(
        // SAFETY: `record` is the reserved, suitably aligned ring-buffer slot.
        unsafe { &raw mut (*record).header },
        RecordKind::ProcessStart,
        child,
    );
    // SAFETY: as above; every field is written before submit.
    unsafe {
        (*record).parent_start_time = process_start_time(real_parent(child));
        (*record).cgroup_id = cgroup_id(child);
        (*record).uid = real_uid(child);
        (*record).pgid = group_id(child, Layout::PidTypePgid);
        (*record).sid = group_id(child, Layout::PidTypeSid);
        // The fork tracepoint runs in the calling process.
        (*record).caller_pid = (bpf_get_current_pid_tgid() >> 32) as u32;
        let caller = bpf_get_current_task();
        (*record).caller_pdeath_signal = field::<i32>(caller, Layout::TaskPdeathSignal) as u32;
        (*record)._pad = 0;
        copy_comm(&raw mut (*record).comm, child);
    }
    entry.submit(wakeup_flags());
}

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(ctx: BtfTracePointContext) -> i32 {
    on_exec(
        ctx.arg::<KernelPtr>(0),
        ctx.arg::<u32>(1),
        ctx.arg::<KernelPtr>(2),
    );
    0
}

fn on_exec(task: KernelPtr, old_tid: u32, binprm: KernelPtr) {
    let Some(scratch) = EXEC_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: `scratch` is this CPU's scratch value, valid and exclusively ours for this run
    // (the kernel does not nest a program within itself on one CPU).
    unsafe {
        let record = &raw mut (*scratch).record;
        fill_header(&raw mut (*record).header, RecordKind::Exec, task);
        (*record).old_tid = old_tid;
        (*record).uid = real_uid(task);
        (*record).pgid = group_id(task, Layout::PidTypePgid);
        (*record).sid = group_id(task, Layout::PidTypeSid);
        (*record)._pad = 0;
        copy_comm(&raw mut (*record).comm, task);

        let tail = (&raw mut (*scratch).tail).cast::<u8>();
        let filename: KernelPtr = field(binprm, Layout::BinprmFilename);
        let ret = bpf_probe_read_kernel_str(
            tail.cast::<c_void>(),
            FILENAME_CAP as u32,
            filename as *const c_void,
        );
        // The helper counts the NUL; the mask tells the verifier the bound it already has.
        let filename_len = if ret > 0 {
            (ret as u32 - 1) & (FILENAME_CAP as u32 - 1)
        } else {
            0
        };
        // In the exec tracepoint the task is current, with its new address space.
        let mm: KernelPtr = field(task, Layout::TaskMm);
        let (argv_len, argv_total) = copy_args(tail.add(filename_len as usize), mm);
        (*record).filename_len = filename_len;
        (*record).argv_len = argv_len;
        (*record).argv_total = argv_total;
        let len = size_of::<ExecRecord>() + filename_len as usize + argv_len as usize;
        output(scratch.cast::<u8>(), len, RecordKind::Exec);
    }
}

/// Recent kernels (6.18 here) pass `group_dead`, computed as the thread leaves its group:
/// exact even when several threads exit at once.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> i32 {
    if ctx.arg::<u8>(1) != 0 {
        on_process_exit(ctx.arg::<KernelPtr>(0));
    }
    0
}

/// Older kernels: the group is dead once its live-thread count is zero. The count drops
/// before the tracepoint fires, so when the last two threads exit at the same instant both
/// read zero: only the first to claim the process in `EXITS_REPORTED` reports it.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit_legacy(ctx: BtfTracePointContext) -> i32 {
    let task = ctx.arg::<KernelPtr>(0);
    let signal: KernelPtr = field(task, Layout::TaskSignal);
    if field::<i32>(signal, Layout::SignalLive) != 0 {
        return 0;
    }
    let identity = ProcessIdentity {
        pid: tgid(task),
        _pad: 0,
        start_time: process_start_time(task),
    };
    // Any failure but "already there" reports the exit: a duplicate, which the model
    // ignores, is better than an exit lost without a count.
    if EXITS_REPORTED.insert(&identity, 1, BPF_NOEXIST as u64) != Err(-EEXIST) {
        on_process_exit(task);
    }
    0
}

const EEXIST: i32 = 17;

fn on_process_exit(task: KernelPtr) {
    let Some(mut entry) = EVENTS.reserve::<ExitRecord>(0) else {
        count_lost(RecordKind::Exit);
        return;
    };
    let record = entry.as_mut_ptr();
    fill_header(
        // SAFETY: `record` is the reserved, suitably aligned ring-buffer slot.
        unsafe { &raw mut (*record).header },
        RecordKind::Exit,
        task,
    );
    let leader = group_leader(task);
    let signal: KernelPtr = field(task, Layout::TaskSignal);
    // What wait(2) reports: the group exit code once the group exits as a whole, else the
    // leader's own code.
    let status: u32 = if field::<u32>(signal, Layout::SignalFlags) & SIGNAL_GROUP_EXIT != 0 {
        field(signal, Layout::SignalGroupExitCode)
    } else {
        field(leader, Layout::TaskExitCode)
    };
    let oom_victim = field::<KernelPtr>(signal, Layout::SignalOomMm) != 0;
    let (memcg_id, memcg_max_pages) = if oom_victim {
        memory_cgroup(task)
    } else {
        (0, 0)
    };
    // SAFETY: as above; every field is written before submit.
    unsafe {
        (*record).exit_status = status;
        (*record).reaper_pid = reaper(task, signal);
        (*record).pgid = group_id(task, Layout::PidTypePgid);
        (*record).sid = group_id(task, Layout::PidTypeSid);
        copy_comm(&raw mut (*record).comm, leader);
        (*record).oom_victim = u32::from(oom_victim);
        (*record)._pad = 0;
        (*record).memcg_id = memcg_id;
        (*record).memcg_max_pages = memcg_max_pages;
    }
    entry.submit(wakeup_flags());
}

/// A task's memory cgroup: its directory's kernfs id and its limit in pages (`memory.max`,
/// v1's `memory.limit_in_bytes`); zeroes where the kernel has no memory cgroups.
fn memory_cgroup(task: KernelPtr) -> (u64, u64) {
    if layout(Layout::MemcgAvailable) == 0 {
        return (0, 0);
    }
    let css_set: KernelPtr = field(task, Layout::TaskCgroups);
    let css: KernelPtr = read(
        css_set,
        layout(Layout::CssSetSubsys) + size_of::<KernelPtr>() * layout(Layout::MemoryCgrpId),
    );
    if css == 0 {
        return (0, 0);
    }
    let cgroup: KernelPtr = field(css, Layout::CssCgroup);
    let id: u64 = field(
        field::<KernelPtr>(cgroup, Layout::CgroupKn),
        Layout::KernfsNodeId,
    );
    // The css is a member of its mem_cgroup (container_of).
    let memcg = css.wrapping_sub(layout(Layout::MemCgroupCss) as u64);
    let max: u64 = read(
        memcg,
        layout(Layout::MemCgroupMemory) + layout(Layout::PageCounterMax),
    );
    (id, max)
}

/// Who adopts the children of an exiting process, as the kernel's `find_new_reaper` decides:
/// the nearest live `PR_SET_CHILD_SUBREAPER` ancestor in the same pid namespace, else the
/// namespace's init. 0 when the ancestry is deeper than the walk: userspace then asks /proc.
fn reaper(task: KernelPtr, signal: KernelPtr) -> u32 {
    let pid: KernelPtr = field(task, Layout::TaskThreadPid);
    let level: u32 = field(pid, Layout::PidLevel);
    let upid = layout(Layout::PidNumbers) + level as usize * layout(Layout::UpidSize);
    let namespace: KernelPtr = read(pid, upid + layout(Layout::UpidNs));
    let namespace_init: KernelPtr = field(namespace, Layout::PidNsChildReaper);
    if flag(
        signal,
        Layout::SignalHasSubreaperByte,
        Layout::SignalHasSubreaperMask,
    ) {
        let mut ancestor = real_parent(task);
        let mut walked_to_the_end = false;
        for _ in 0..MAX_REAPER_WALK {
            if ancestor == 0 || field::<u32>(ancestor, Layout::TaskPid) == 0 {
                walked_to_the_end = true; // reached the idle task
                break;
            }
            let ancestor_pid: KernelPtr = field(ancestor, Layout::TaskThreadPid);
            if field::<u32>(ancestor_pid, Layout::PidLevel) != level {
                walked_to_the_end = true; // left the namespace
                break;
            }
            let ancestor_signal: KernelPtr = field(ancestor, Layout::TaskSignal);
            if flag(
                ancestor_signal,
                Layout::SignalIsSubreaperByte,
                Layout::SignalIsSubreaperMask,
            ) && field::<i32>(ancestor_signal, Layout::SignalLive) > 0
            {
                return tgid(ancestor);
            }
            ancestor = real_parent(ancestor);
        }
        if !walked_to_the_end {
            return 0;
        }
    }
    tgid(namespace_init)
}

#[btf_tracepoint(function = "task_rename")]
pub fn task_rename(ctx: BtfTracePointContext) -> i32 {
    on_rename(ctx.arg::<KernelPtr>(0), ctx.arg::<KernelPtr>(1));
    0
}

fn on_rename(task: KernelPtr, new_comm: KernelPtr) {
    // A thread's name is not its process's name, and exec reports the comm it sets itself.
    if !is_thread_group_leader(task)
        || flag(task, Layout::TaskInExecveByte, Layout::TaskInExecveMask)
    {
        return;
    }
    let Some(scratch) = RENAME_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: `scratch` is this CPU's scratch value, valid and exclusively ours for this run.
    unsafe {
        let record = &raw mut (*scratch).record;
        fill_header(&raw mut (*record).header, RecordKind::Rename, task);
        let comm = &raw mut (*record).comm;
        (*comm) = [0; TASK_COMM_LEN];
        bpf_probe_read_kernel_str(
            comm.cast::<c_void>(),
            TASK_COMM_LEN as u32,
            new_comm as *const c_void,
        );
        // setproctitle writes the full title into the argument area before it renames; that
        // memory is only readable from inside the process.
        let current_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
        let (argv_len, argv_total) = if current_tgid == tgid(task) {
            let mm: KernelPtr = field(task, Layout::TaskMm);
            copy_args((&raw mut (*scratch).tail).cast::<u8>(), mm)
        } else {
            (0, 0)
        };
        (*record).argv_len = argv_len;
        (*record).argv_total = argv_total;
        (*record).pgid = group_id(task, Layout::PidTypePgid);
        (*record).sid = group_id(task, Layout::PidTypeSid);
        let len = size_of::<RenameRecord>() + argv_len as usize;
        output(scratch.cast::<u8>(), len, RecordKind::Rename);
    }
}

#[btf_tracepoint(function = "signal_generate")]
pub fn signal_generate(ctx: BtfTracePointContext) -> i32 {
    on_signal(
        ctx.arg::<i32>(0),
        ctx.arg::<KernelPtr>(1),
        ctx.arg::<KernelPtr>(2),
        ctx.arg::<i32>(4),
    );
    0
}

/// `SEND_SIG_NOINFO` and `SEND_SIG_PRIV`: siginfo "pointers" that stand for kill(2) from
/// userspace and a signal from the kernel.
const SEND_SIG_NOINFO: KernelPtr = 0;
const SEND_SIG_PRIV: KernelPtr = 1;
const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;

fn on_signal(sig: i32, info: KernelPtr, target: KernelPtr, result: i32) {
    // SAFETY: SIGNAL_MASK is a plain u64 in .rodata written by the loader before load.
    let mask = unsafe { core::ptr::read_volatile(&raw const SIGNAL_MASK) };
    if !(1..64).contains(&sig) || (mask >> sig) & 1 == 0 {
        return;
    }
    let Some(mut entry) = EVENTS.reserve::<SignalRecord>(0) else {
        count_lost(RecordKind::Signal);
        return;
    };
    let record = entry.as_mut_ptr();
    fill_header(
        // SAFETY: `record` is the reserved, suitably aligned ring-buffer slot.
        unsafe { &raw mut (*record).header },
        RecordKind::Signal,
        target,
    );
    // SAFETY: bpf_get_current_task has no preconditions; the result is only probe-read.
    let sender = unsafe { bpf_get_current_task() };
    let code = match info {
        SEND_SIG_NOINFO => SI_USER,
        SEND_SIG_PRIV => SI_KERNEL,
        _ => field(info, Layout::SiginfoCode),
    };
    let mut sender_flags = 0;
    if field::<u32>(sender, Layout::TaskFlags) & PF_EXITING != 0 {
        sender_flags |= SENDER_EXITING;
    }
    let sender_signal: KernelPtr = field(sender, Layout::TaskSignal);
    if field::<i32>(sender_signal, Layout::SignalLive) == 0 {
        sender_flags |= SENDER_GROUP_DEAD;
    }
    // SAFETY: as above; every field is written before submit.
    unsafe {
        (*record).sender_pid = tgid(sender);
        (*record).sig = sig as u32;
        (*record).code = code;
        (*record).result = result;
        (*record).sender_start_time = process_start_time(sender);
        copy_comm(&raw mut (*record).sender_comm, group_leader(sender));
        (*record).sender_flags = sender_flags;
        (*record).target_pdeath_signal = field::<i32>(target, Layout::TaskPdeathSignal) as u32;
    }
    entry.submit(wakeup_flags());
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
