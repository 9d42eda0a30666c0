//! Resolves the kernel layout the probes need (`tracer_common::Layout`) from BTF, and checks
//! that the tracepoints still have the prototypes the probes were written for.

use tracer_common::{LAYOUT_LEN, Layout, LayoutTable};

use crate::btf::{Btf, Shape};

enum Query {
    /// Byte offset of a member whose type must be `size` bytes (`None`: any size).
    Offset {
        composite: &'static str,
        path: &'static str,
        size: Option<u32>,
    },
    /// The byte holding a one-bit bitfield.
    BitByte {
        composite: &'static str,
        path: &'static str,
    },
    /// The mask of a one-bit bitfield within its byte.
    BitMask {
        composite: &'static str,
        path: &'static str,
    },
    SizeOf(&'static str),
    EnumValue {
        enumeration: &'static str,
        variant: &'static str,
    },
}

struct Spec {
    entry: Layout,
    query: Query,
    /// Optional entries resolve to 0 when absent; the probes then do without them.
    required: bool,
}

const fn offset(entry: Layout, composite: &'static str, path: &'static str, size: u32) -> Spec {
    Spec {
        entry,
        query: Query::Offset {
            composite,
            path,
            size: Some(size),
        },
        required: true,
    }
}

const fn array(entry: Layout, composite: &'static str, path: &'static str) -> Spec {
    Spec {
        entry,
        query: Query::Offset {
            composite,
            path,
            size: None,
        },
        required: true,
    }
}

const fn bit(entry: Layout, mask: bool, composite: &'static str, path: &'static str) -> Spec {
    Spec {
        entry,
        query: if mask {
            Query::BitMask { composite, path }
        } else {
            Query::BitByte { composite, path }
        },
        required: false,
    }
}

/// A member the probes can do without (see `Layout`'s optional entries).
const fn optional(mut spec: Spec) -> Spec {
    spec.required = false;
    spec
}

const POINTER: u32 = 8;

const SPECS: &[Spec] = &[
    offset(Layout::TaskPid, "task_struct", "pid", 4),
    offset(Layout::TaskTgid, "task_struct", "tgid", 4),
    offset(
        Layout::TaskRealParent,
        "task_struct",
        "real_parent",
        POINTER,
    ),
    offset(
        Layout::TaskGroupLeader,
        "task_struct",
        "group_leader",
        POINTER,
    ),
    offset(
        Layout::TaskStartBoottime,
        "task_struct",
        "start_boottime",
        8,
    ),
    offset(Layout::TaskComm, "task_struct", "comm", 16),
    offset(Layout::TaskRealCred, "task_struct", "real_cred", POINTER),
    offset(Layout::TaskSignal, "task_struct", "signal", POINTER),
    offset(Layout::TaskExitCode, "task_struct", "exit_code", 4),
    offset(Layout::TaskMm, "task_struct", "mm", POINTER),
    offset(Layout::TaskCgroups, "task_struct", "cgroups", POINTER),
    offset(Layout::TaskThreadPid, "task_struct", "thread_pid", POINTER),
    bit(Layout::TaskInExecveByte, false, "task_struct", "in_execve"),
    bit(Layout::TaskInExecveMask, true, "task_struct", "in_execve"),
    offset(Layout::CredUid, "cred", "uid", 4),
    offset(Layout::SignalLive, "signal_struct", "live", 4),
    offset(Layout::SignalFlags, "signal_struct", "flags", 4),
    offset(
        Layout::SignalGroupExitCode,
        "signal_struct",
        "group_exit_code",
        4,
    ),
    bit(
        Layout::SignalIsSubreaperByte,
        false,
        "signal_struct",
        "is_child_subreaper",
    ),
    bit(
        Layout::SignalIsSubreaperMask,
        true,
        "signal_struct",
        "is_child_subreaper",
    ),
    bit(
        Layout::SignalHasSubreaperByte,
        false,
        "signal_struct",
        "has_child_subreaper",
    ),
    bit(
        Layout::SignalHasSubreaperMask,
        true,
        "signal_struct",
        "has_child_subreaper",
    ),
    array(Layout::SignalPids, "signal_struct", "pids"),
    offset(Layout::PidLevel, "pid", "level", 4),
    array(Layout::PidNumbers, "pid", "numbers"),
    Spec {
        entry: Layout::UpidSize,
        query: Query::SizeOf("upid"),
        required: true,
    },
    offset(Layout::UpidNr, "upid", "nr", 4),
    offset(Layout::UpidNs, "upid", "ns", POINTER),
    offset(
        Layout::PidNsChildReaper,
        "pid_namespace",
        "child_reaper",
        POINTER,
    ),
    offset(Layout::CssSetDflCgrp, "css_set", "dfl_cgrp", POINTER),
    offset(Layout::CgroupKn, "cgroup", "kn", POINTER),
    offset(Layout::KernfsNodeId, "kernfs_node", "id", 8),
    offset(Layout::MmArgStart, "mm_struct", "arg_start", 8),
    offset(Layout::MmArgEnd, "mm_struct", "arg_end", 8),
    offset(Layout::BinprmFilename, "linux_binprm", "filename", POINTER),
    offset(Layout::SiginfoCode, "kernel_siginfo", "si_code", 4),
    Spec {
        entry: Layout::PidTypePgid,
        query: Query::EnumValue {
            enumeration: "pid_type",
            variant: "PIDTYPE_PGID",
        },
        required: true,
    },
    Spec {
        entry: Layout::PidTypeSid,
        query: Query::EnumValue {
            enumeration: "pid_type",
            variant: "PIDTYPE_SID",
        },
        required: true,
    },
    offset(Layout::TaskFlags, "task_struct", "flags", 4),
    offset(Layout::TaskPdeathSignal, "task_struct", "pdeath_signal", 4),
    // Who the OOM killer chose, and its memory cgroup's limit.
    optional(offset(
        Layout::SignalOomMm,
        "signal_struct",
        "oom_mm",
        POINTER,
    )),
    optional(array(Layout::CssSetSubsys, "css_set", "subsys")),
    optional(Spec {
        entry: Layout::MemoryCgrpId,
        query: Query::EnumValue {
            enumeration: "cgroup_subsys_id",
            variant: "memory_cgrp_id",
        },
        required: true,
    }),
    optional(offset(
        Layout::CssCgroup,
        "cgroup_subsys_state",
        "cgroup",
        POINTER,
    )),
    optional(array(Layout::MemCgroupCss, "mem_cgroup", "css")),
    optional(array(Layout::MemCgroupMemory, "mem_cgroup", "memory")),
    optional(offset(Layout::PageCounterMax, "page_counter", "max", 8)),
];

fn evaluate(btf: &Btf, query: &Query) -> Result<u32, String> {
    match *query {
        Query::Offset {
            composite,
            path,
            size,
        } => {
            let location = btf
                .member(composite, path)
                .ok_or_else(|| format!("{composite}.{path}"))?;
            let actual = btf.size_of(location.type_id);
            match size {
                Some(expected) if actual != Some(expected) => Err(format!(
                    "{composite}.{path} (is {} bytes, the probes read {expected})",
                    actual.map_or_else(|| "unsized".to_owned(), |s| s.to_string())
                )),
                _ if location.bit_size != 0 => Err(format!("{composite}.{path} (a bitfield)")),
                _ => Ok(location.byte_offset()),
            }
        }
        Query::BitByte { composite, path } | Query::BitMask { composite, path } => {
            let location = btf
                .member(composite, path)
                .filter(|l| l.bit_size == 1)
                .ok_or_else(|| format!("{composite}.{path}"))?;
            Ok(match query {
                Query::BitByte { .. } => location.bit_offset / 8,
                _ => 1 << (location.bit_offset % 8),
            })
        }
        Query::SizeOf(name) => btf
            .composite(name)
            .and_then(|id| btf.size_of(id))
            .ok_or_else(|| format!("struct {name}")),
        Query::EnumValue {
            enumeration,
            variant,
        } => btf
            .enum_value(enumeration, variant)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| format!("{enumeration}::{variant}")),
    }
}

/// What the probes need to read an OOM victim's memory cgroup and its limit.
const MEMCG: [Layout; 6] = [
    Layout::CssSetSubsys,
    Layout::MemoryCgrpId,
    Layout::CssCgroup,
    Layout::MemCgroupCss,
    Layout::MemCgroupMemory,
    Layout::PageCounterMax,
];

/// Resolves every layout entry, or names everything the kernel lacks.
pub fn resolve(btf: &Btf) -> Result<LayoutTable, String> {
    let mut table = [0u32; LAYOUT_LEN];
    let mut missing = Vec::new();
    let mut resolved = Vec::new();
    for spec in SPECS {
        match evaluate(btf, &spec.query) {
            Ok(value) => {
                table[spec.entry as usize] = value;
                resolved.push(spec.entry);
            }
            Err(what) if spec.required => missing.push(what),
            Err(_) => {}
        }
    }
    if MEMCG.iter().all(|entry| resolved.contains(entry)) {
        table[Layout::MemcgAvailable as usize] = 1;
    }
    if missing.is_empty() {
        Ok(table)
    } else {
        Err(format!(
            "the kernel's BTF lacks what the probes read: {}",
            missing.join(", ")
        ))
    }
}

/// Which `sched_process_exit` program fits this kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitProbe {
    /// The tracepoint passes `group_dead` (Linux 6.16+).
    GroupDeadArgument,
    /// Older kernels: the probe reads the live-thread count.
    LiveThreadCount,
}

fn task() -> Shape {
    Shape::PtrTo("task_struct".into())
}

/// Checks the tracepoint prototypes the probes were written for.
pub fn check_tracepoints(btf: &Btf) -> Result<ExitProbe, String> {
    let expectations = [
        ("sched_process_fork", vec![task(), task()]),
        (
            "sched_process_exec",
            vec![task(), Shape::Int(4), Shape::PtrTo("linux_binprm".into())],
        ),
        ("task_rename", vec![task(), Shape::Ptr]),
        (
            "signal_generate",
            vec![
                Shape::Int(4),
                Shape::PtrTo("kernel_siginfo".into()),
                task(),
                Shape::Int(4),
                Shape::Int(4),
            ],
        ),
    ];
    let mut problems = Vec::new();
    for (tracepoint, expected) in expectations {
        match btf.tracepoint_args(tracepoint) {
            Some(args) if args == expected => {}
            Some(args) => problems.push(format!("{tracepoint} has arguments {args:?}")),
            None => problems.push(format!("{tracepoint} is missing")),
        }
    }
    let exit = match btf.tracepoint_args("sched_process_exit").as_deref() {
        Some([first, Shape::Int(1)]) if *first == task() => Some(ExitProbe::GroupDeadArgument),
        Some([first]) if *first == task() => Some(ExitProbe::LiveThreadCount),
        Some(args) => {
            problems.push(format!("sched_process_exit has arguments {args:?}"));
            None
        }
        None => {
            problems.push("sched_process_exit is missing".into());
            None
        }
    };
    match exit {
        Some(exit) if problems.is_empty() => Ok(exit),
        _ => Err(format!(
            "this kernel's tracepoints differ from what the probes expect: {}",
            problems.join("; ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::tests::Builder;

    #[test]
    fn this_kernel_resolves_completely() {
        let data = std::fs::read("/sys/kernel/btf/vmlinux").expect("the tracer needs kernel BTF");
        let btf = Btf::parse(&data).unwrap();
        let table = resolve(&btf).unwrap();
        // Fields every supported kernel has at a non-zero offset.
        for entry in [
            Layout::TaskTgid,
            Layout::TaskRealParent,
            Layout::TaskStartBoottime,
        ] {
            assert_ne!(table[entry as usize], 0, "{entry:?}");
        }
        assert_eq!(table[Layout::UpidSize as usize], 16);
        assert_ne!(table[Layout::SignalOomMm as usize], 0);
        assert_eq!(table[Layout::MemcgAvailable as usize], 1, "{table:?}");
        assert!(check_tracepoints(&btf).is_ok());
    }

    #[test]
    fn names_every_missing_member_and_wrong_size() {
        let mut b = Builder::new();
        let short = b.int("short", 2);
        b.composite(4, "task_struct", 8, &[("pid", short, 0, 0)]);
        let btf = Btf::parse(&b.build()).unwrap();
        let error = resolve(&btf).unwrap_err();
        assert!(
            error.contains("task_struct.pid (is 2 bytes, the probes read 4)"),
            "{error}"
        );
        assert!(error.contains("task_struct.tgid"), "{error}");
        assert!(error.contains("pid_type::PIDTYPE_SID"), "{error}");
        assert!(!error.contains('\n'));
    }

    #[test]
    fn picks_the_exit_probe_by_prototype() {
        let build = |with_group_dead: bool| {
            let mut b = Builder::new();
            let int = b.int("int", 4);
            let boolean = b.int("_Bool", 1);
            let task = b.composite(4, "task_struct", 8, &[("pid", int, 0, 0)]);
            let task_ptr = b.ptr(task);
            let void_ptr = b.ptr(0);
            let params = if with_group_dead {
                vec![void_ptr, task_ptr, boolean]
            } else {
                vec![void_ptr, task_ptr]
            };
            let proto = b.func_proto(&params);
            let proto_ptr = b.ptr(proto);
            b.typedef("btf_trace_sched_process_exit", proto_ptr);
            Btf::parse(&b.build()).unwrap()
        };
        // Only the exit prototype exists, so the check fails, naming the others.
        let error = check_tracepoints(&build(true)).unwrap_err();
        assert!(error.contains("sched_process_fork is missing"), "{error}");
        assert!(!error.contains("sched_process_exit"), "{error}");
        let error = check_tracepoints(&build(false)).unwrap_err();
        assert!(!error.contains("sched_process_exit"), "{error}");
    }
}
