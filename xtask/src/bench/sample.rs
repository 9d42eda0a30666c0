//! What the bench reads about a running tool from `/proc`: CPU time, peak memory, and the
//! in-kernel cost of its BPF programs.

use std::path::Path;

/// CPU time of every live thread of `pid`, in ns (`/proc/PID/task/*/schedstat`, the same
/// utime+stime the scheduler accounts, at ns rather than clock-tick resolution).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue;
        };
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// A `kB` field of `/proc/PID/status` (VmHWM, VmRSS), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Run time and run count summed over the BPF programs `pid` holds open (their fdinfo; the
/// kernel counts only while `kernel.bpf_stats_enabled` is 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BpfStats {
    pub programs: u32,
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

impl BpfStats {
    pub fn since(&self, earlier: &BpfStats) -> BpfStats {
        BpfStats {
            programs: self.programs,
            run_time_ns: self.run_time_ns.saturating_sub(earlier.run_time_ns),
            run_cnt: self.run_cnt.saturating_sub(earlier.run_cnt),
        }
    }
}

pub fn bpf_stats(pid: u32) -> BpfStats {
    let mut stats = BpfStats::default();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return stats;
    };
    for fd in fds.flatten() {
        let is_program = std::fs::read_link(fd.path())
            .is_ok_and(|target| target == Path::new("anon_inode:bpf-prog"));
        if !is_program {
            continue;
        }
        let fdinfo = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
        let Ok(info) = std::fs::read_to_string(fdinfo) else {
            continue;
        };
        let field = |name: &str| -> u64 {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or(0)
        };
        stats.programs += 1;
        stats.run_time_ns += field("run_time_ns:");
        stats.run_cnt += field("run_cnt:");
    }
    stats
}
