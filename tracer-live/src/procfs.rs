//! Reading processes from `/proc`: the bootstrap snapshot, and the few facts the live tracer
//! re-reads (long command lines, a reparented process's parent).

use std::io::Read;
use std::path::{Path, PathBuf};

use tracer_core::event::{Environment, ProcessKey, Snapshot};
use tracer_core::privacy::Privacy;
use tracer_core::text::split_args;

/// Longest environment read from `/proc/PID/environ`; variables past it are not captured.
pub const ENVIRON_CAP: usize = 256 << 10;

/// `task_struct::flags` bit of kernel threads, as `/proc/PID/stat` shows it.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Longest command line read from `/proc`. Argument lists can be megabytes; a title a human
/// reads is not, and a trace line must stay well under the reader's line limit.
pub const CMDLINE_CAP: usize = 64 << 10;

/// Reads at most `cap` bytes; true if there was more.
fn read_capped(path: &Path, cap: usize) -> Option<(Vec<u8>, bool)> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    let truncated = bytes.len() > cap;
    bytes.truncate(cap);
    Some((bytes, truncated))
}

/// The fields of `/proc/PID/stat` the tracer uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    pub session: u32,
    pub flags: u64,
    pub num_threads: u32,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
}

/// Parses `/proc/PID/stat`. The comm sits between the first `(` and the *last* `)`: it may
/// itself hold spaces and parentheses.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = text.get(close + 1..)?.split_ascii_whitespace().collect();
    // fields[0] is field 3 of proc(5).
    let field = |n: usize| fields.get(n - 3).copied();
    Some(Stat {
        comm,
        state: field(3)?.chars().next()?,
        ppid: field(4)?.parse().ok()?,
        pgrp: field(5)?.parse().ok()?,
        session: field(6)?.parse().ok()?,
        flags: field(9)?.parse().ok()?,
        num_threads: field(20)?.parse().ok()?,
        start_ticks: field(22)?.parse().ok()?,
    })
}

/// The real uid from `/proc/PID/status`.
pub fn parse_real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

#[derive(Clone, Debug)]
pub struct ProcFs {
    root: PathBuf,
    tick_ns: u64,
}

impl ProcFs {
    pub fn new(root: impl Into<PathBuf>, tick_ns: u64) -> ProcFs {
        ProcFs {
            root: root.into(),
            tick_ns,
        }
    }

    pub fn host(tick_ns: u64) -> ProcFs {
        ProcFs::new("/proc", tick_ns)
    }

    fn path(&self, pid: u32, file: &str) -> PathBuf {
        self.root.join(pid.to_string()).join(file)
    }

    pub fn stat(&self, pid: u32) -> Option<Stat> {
        parse_stat(&std::fs::read_to_string(self.path(pid, "stat")).ok()?)
    }

    fn start_time(&self, stat: &Stat) -> u64 {
        stat.start_ticks * self.tick_ns
    }

    fn is_same(&self, key: ProcessKey, stat: &Stat) -> bool {
        stat.start_ticks == key.start_time / self.tick_ns
    }

    /// The command line of `key` (and whether it was cut at [`CMDLINE_CAP`]), if that process
    /// (not a later holder of its pid) still lives.
    pub fn cmdline_of(&self, key: ProcessKey) -> Option<(Vec<String>, bool)> {
        let (raw, truncated) = read_capped(&self.path(key.pid, "cmdline"), CMDLINE_CAP)?;
        // Read stat after the command line: if it still names the same process, so did the
        // command line.
        let stat = self.stat(key.pid)?;
        (self.is_same(key, &stat) && !raw.is_empty()).then(|| (split_args(&raw), truncated))
    }

    /// The variables of `key`'s environment that `privacy` allowlists, if that process still
    /// lives. Nothing is read when it allowlists none.
    pub fn allowlisted_env(&self, key: ProcessKey, privacy: &Privacy) -> Option<Environment> {
        if !privacy.captures_env() {
            return None;
        }
        let (raw, _) = read_capped(&self.path(key.pid, "environ"), ENVIRON_CAP)?;
        let stat = self.stat(key.pid)?;
        self.is_same(key, &stat).then(|| privacy.env_from(&raw))
    }

    /// The current parent of `key`, if that process still lives.
    pub fn ppid_of(&self, key: ProcessKey) -> Option<u32> {
        let stat = self.stat(key.pid)?;
        (self.is_same(key, &stat) && stat.state != 'Z').then_some(stat.ppid)
    }

    /// A zombie leader is still a live process while other threads of it run.
    fn has_live_threads(&self, pid: u32) -> bool {
        std::fs::read_dir(self.path(pid, "task")).is_ok_and(|tasks| tasks.count() > 1)
    }

    /// One process as a snapshot line; None if it is gone or already dead.
    pub fn snapshot_of(&self, pid: u32, ts: u64) -> Option<Snapshot> {
        let stat = self.stat(pid)?;
        if stat.state == 'Z' && !self.has_live_threads(pid) {
            return None;
        }
        let kernel_thread = stat.flags & PF_KTHREAD != 0;
        let (cmdline, cmdline_truncated) = if kernel_thread {
            (Vec::new(), false)
        } else {
            read_capped(&self.path(pid, "cmdline"), CMDLINE_CAP)
                .map(|(raw, truncated)| (split_args(&raw), truncated))
                .unwrap_or_default()
        };
        let uid = std::fs::read_to_string(self.path(pid, "status"))
            .ok()
            .and_then(|status| parse_real_uid(&status))
            .unwrap_or(0);
        let mut snapshot = Snapshot::default();
        snapshot.ts = ts;
        snapshot.pid = pid;
        snapshot.start_time = self.start_time(&stat);
        snapshot.ppid = stat.ppid;
        snapshot.comm = stat.comm;
        snapshot.cmdline = cmdline;
        snapshot.cmdline_truncated = cmdline_truncated;
        snapshot.uid = uid;
        snapshot.pgid = stat.pgrp;
        snapshot.sid = stat.session;
        snapshot.kernel_thread = kernel_thread;
        Some(snapshot)
    }

    /// Every process in `/proc`, by pid.
    pub fn snapshot(&self, ts: u64) -> Vec<Snapshot> {
        self.pids()
            .into_iter()
            .filter_map(|pid| self.snapshot_of(pid, ts))
            .collect()
    }

    /// The `stat` line of every process in `/proc`: a quick look, without command lines.
    pub fn stats(&self) -> Vec<(u32, Stat)> {
        self.pids()
            .into_iter()
            .filter_map(|pid| Some((pid, self.stat(pid)?)))
            .collect()
    }

    fn pids(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut pids: Vec<u32> = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        pids
    }

    /// The cgroup `pid` is in: the v2 path of `/proc/PID/cgroup`, or on a v1-only host the
    /// path of a controller every container has.
    pub fn cgroup_path(&self, pid: u32) -> Option<String> {
        let (raw, _) = read_capped(&self.path(pid, "cgroup"), 16 << 10)?;
        cgroup_path_in(&String::from_utf8_lossy(&raw)).map(str::to_owned)
    }

    pub fn tick_ns(&self) -> u64 {
        self.tick_ns
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// The path in `/proc/PID/cgroup` text: the unified (`0::`) line, else the line of the
/// `memory`, `pids` or `name=systemd` hierarchy.
pub fn cgroup_path_in(text: &str) -> Option<&str> {
    let unified = text.lines().find_map(|line| line.strip_prefix("0::"));
    unified.or_else(|| {
        text.lines().find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory" || c == "pids" || c == "name=systemd")
                .then_some(path)
        })
    })
}

/// Where the memory controller's hierarchy is mounted: a cgroup v1 mount with the `memory`
/// option, else the cgroup v2 mount (from `/proc/self/mountinfo` text).
pub fn memory_cgroup_mount(mountinfo: &str) -> Option<PathBuf> {
    let mut unified = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(separator) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        let (Some(mount), Some(kind)) = (fields.get(4), fields.get(separator + 1)) else {
            continue;
        };
        let options = fields.get(separator + 3).copied().unwrap_or("");
        match *kind {
            "cgroup" if options.split(',').any(|o| o == "memory") => {
                return Some(PathBuf::from(mount));
            }
            "cgroup2" if unified.is_none() => unified = Some(PathBuf::from(mount)),
            _ => {}
        }
    }
    unified
}

/// Most directories searched for a memory cgroup: a host has hundreds, not thousands.
const CGROUP_SEARCH_MAX: usize = 20_000;

/// The path (below the memory controller's mount) of the cgroup whose directory has inode
/// `id`, the kernfs id the exit probe read; none if it is gone or the search ran out.
pub fn memory_cgroup_path(id: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let root = memory_cgroup_mount(&mountinfo)?;
    let mut pending = vec![root.clone()];
    let mut searched = 0;
    while let Some(dir) = pending.pop() {
        searched += 1;
        if searched > CGROUP_SEARCH_MAX {
            return None;
        }
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if meta.ino() == id {
            let relative = dir.strip_prefix(&root).ok()?;
            return Some(format!("/{}", relative.display()));
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        pending.extend(
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path()),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_controller_is_found_in_v1_or_v2_mounts() {
        let v1 = "30 25 0:26 / /sys/fs/cgroup/memory rw shared:10 - cgroup cgroup rw,memory\n\
                  31 25 0:27 / /sys/fs/cgroup/unified rw shared:11 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            memory_cgroup_mount(v1),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        let v2 = "31 25 0:27 / /sys/fs/cgroup rw shared:11 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            memory_cgroup_mount(v2),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(memory_cgroup_mount("garbage\n"), None);
    }

    const STAT: &str = "4121 (celery: (w1) ) S 4100 4100 4000 0 -1 4194560 1 0 0 0 5 3 0 0 20 0 7 0 123456 1000 200 0";

    #[test]
    fn cgroup_files_of_v1_and_v2() {
        assert_eq!(
            cgroup_path_in("0::/system.slice/x.service\n"),
            Some("/system.slice/x.service")
        );
        let v1 = "12:pids:/docker/abc\n11:memory:/docker/abc\n1:name=systemd:/docker/abc\n";
        assert_eq!(cgroup_path_in(v1), Some("/docker/abc"));
        assert_eq!(cgroup_path_in("garbage"), None);
    }

    #[test]
    fn stat_with_a_hostile_comm() {
        let stat = parse_stat(STAT).unwrap();
        assert_eq!(stat.comm, "celery: (w1) ");
        assert_eq!(
            (stat.state, stat.ppid, stat.pgrp, stat.session),
            ('S', 4100, 4100, 4000)
        );
        assert_eq!((stat.num_threads, stat.start_ticks), (7, 123456));
        assert_eq!(stat.flags & PF_KTHREAD, 0);
        assert!(parse_stat("12 (x) S 1").is_none());
        assert!(parse_stat("").is_none());
    }

    #[test]
    fn uid_from_status() {
        assert_eq!(
            parse_real_uid("Name:\tx\nUid:\t1000\t0\t0\t0\n"),
            Some(1000)
        );
        assert_eq!(parse_real_uid("Name:\tx\n"), None);
    }

    fn fake_proc(processes: &[(u32, &str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (pid, stat, cmdline) in processes {
            let process = dir.path().join(pid.to_string());
            std::fs::create_dir_all(process.join("task")).unwrap();
            std::fs::write(process.join("stat"), stat).unwrap();
            std::fs::write(process.join("cmdline"), cmdline).unwrap();
            std::fs::write(process.join("status"), "Uid:\t33\t33\t33\t33\n").unwrap();
        }
        std::fs::create_dir_all(dir.path().join("self")).unwrap();
        dir
    }

    #[test]
    fn snapshot_skips_dead_processes_and_marks_kernel_threads() {
        let kthread_flags = PF_KTHREAD.to_string();
        let kthread =
            format!("2 (kthreadd) S 0 0 0 0 -1 {kthread_flags} 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0 0");
        let dir = fake_proc(&[
            (4121, STAT, b"[celeryd: w1@h:MainProcess]\0\0\0"),
            (2, &kthread, b""),
            (
                77,
                "77 (defunct) Z 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0 0",
                b"",
            ),
        ]);
        let procfs = ProcFs::new(dir.path(), 10_000_000);
        let snapshot = procfs.snapshot(99);
        let pids: Vec<u32> = snapshot.iter().map(|s| s.pid).collect();
        assert_eq!(pids, [2, 4121]);
        assert!(snapshot[0].kernel_thread);
        let celery = &snapshot[1];
        assert_eq!(celery.cmdline, ["[celeryd: w1@h:MainProcess]"]);
        assert_eq!(
            (celery.start_time, celery.uid, celery.ts),
            (1_234_560_000_000, 33, 99)
        );

        let key = ProcessKey {
            pid: 4121,
            start_time: 1_234_560_000_000 + 5,
        };
        assert_eq!(procfs.ppid_of(key), Some(4100));
        let reused = ProcessKey {
            pid: 4121,
            start_time: 1,
        };
        assert_eq!(procfs.ppid_of(reused), None);
        assert_eq!(procfs.cmdline_of(reused), None);
        assert!(procfs.cmdline_of(key).is_some());
    }

    #[test]
    fn command_lines_are_capped() {
        let long = vec![b'x'; CMDLINE_CAP + 100];
        let dir = fake_proc(&[(4121, STAT, &long)]);
        let procfs = ProcFs::new(dir.path(), 10_000_000);
        let snapshot = procfs.snapshot_of(4121, 0).unwrap();
        assert!(snapshot.cmdline_truncated);
        assert_eq!(snapshot.cmdline[0].len(), CMDLINE_CAP);
        let key = ProcessKey {
            pid: 4121,
            start_time: 1_234_560_000_000,
        };
        assert!(procfs.cmdline_of(key).unwrap().1);
    }
}
