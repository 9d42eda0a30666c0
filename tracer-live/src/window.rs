//! The start-up window. A process that exits after the probes attach but before the scan
//! reads it is in neither: its exit record arrives for a process the model never had, and
//! its children, already handed to their reaper, show no sign of it. A quick look at every
//! process's parent just before the probes attach keeps what the scan comes too late to see:
//! such a process is put back, as it was then, so that its recorded exit orphans its children
//! as the kernel did.

use std::collections::{HashMap, HashSet};

use tracer_core::event::{Event, Exit, Snapshot};

use crate::procfs::{ProcFs, Stat};

/// Every process's `stat` as it was just before the probes attached.
#[derive(Debug, Default)]
pub struct BeforeAttach {
    by_pid: HashMap<u32, Stat>,
    tick_ns: u64,
}

impl BeforeAttach {
    pub fn read(procfs: &ProcFs) -> BeforeAttach {
        BeforeAttach::from_stats(procfs.stats(), procfs.tick_ns())
    }

    fn from_stats(stats: Vec<(u32, Stat)>, tick_ns: u64) -> BeforeAttach {
        BeforeAttach {
            by_pid: stats.into_iter().collect(),
            tick_ns: tick_ns.max(1),
        }
    }

    /// Adds to `snapshot` the processes seen before the probes attached, missing from the scan,
    /// whose exit is among the `raced` events; their children that the kernel has since
    /// reparented are listed under them again, for that exit to orphan.
    pub fn restore(&self, snapshot: &mut Vec<Snapshot>, raced: &[Event], ts: u64) {
        let exits: HashMap<u32, &Exit> = raced
            .iter()
            .filter_map(|event| match event {
                Event::Exit(exit) => Some((exit.pid, exit)),
                _ => None,
            })
            .collect();
        let scanned: HashMap<u32, u64> = snapshot
            .iter()
            .map(|s| (s.pid, s.start_time / self.tick_ns))
            .collect();
        let mut restored = HashSet::new();
        let mut missing = Vec::new();
        for (&pid, stat) in &self.by_pid {
            let gone = scanned.get(&pid) != Some(&stat.start_ticks);
            let exited = exits
                .get(&pid)
                .is_some_and(|exit| exit.start_time / self.tick_ns == stat.start_ticks);
            if gone && exited {
                restored.insert(pid);
                missing.push(self.as_snapshot(pid, stat, ts));
            }
        }
        for process in snapshot.iter_mut() {
            let Some(before) = self.by_pid.get(&process.pid) else {
                continue;
            };
            let same = before.start_ticks == process.start_time / self.tick_ns;
            if same && process.ppid != before.ppid && restored.contains(&before.ppid) {
                process.ppid = before.ppid;
            }
        }
        // A process put back may have had a parent put back too: theirs is the old parent
        // already, as read before the probes attached.
        snapshot.extend(missing);
    }

    fn as_snapshot(&self, pid: u32, stat: &Stat, ts: u64) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.ts = ts;
        snapshot.pid = pid;
        snapshot.start_time = stat.start_ticks * self.tick_ns;
        snapshot.ppid = stat.ppid;
        snapshot.comm.clone_from(&stat.comm);
        snapshot.pgid = stat.pgrp;
        snapshot.sid = stat.session;
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_core::event::ProcessKey;
    use tracer_core::fixtures;

    const TICK: u64 = 10_000_000;

    fn stat(ppid: u32, start_ticks: u64, comm: &str) -> Stat {
        Stat {
            comm: comm.to_owned(),
            state: 'S',
            ppid,
            pgrp: 0,
            session: 0,
            flags: 0,
            num_threads: 1,
            start_ticks,
        }
    }

    fn scanned(pid: u32, ppid: u32, start_ticks: u64) -> Snapshot {
        let mut snapshot = Snapshot::default();
        snapshot.pid = pid;
        snapshot.ppid = ppid;
        snapshot.start_time = start_ticks * TICK;
        snapshot
    }

    fn exit_of(pid: u32, start_ticks: u64) -> Event {
        let key = ProcessKey {
            pid,
            start_time: start_ticks * TICK + 1234,
        };
        fixtures::exit(50 * TICK, key, 1, (None, Some(9)), 1)
    }

    #[test]
    fn a_parent_that_exited_in_the_window_is_put_back_with_its_children() {
        let before = BeforeAttach::from_stats(
            vec![
                (1, stat(0, 0, "init")),
                (300, stat(1, 30, "parent")),
                (301, stat(300, 31, "child")),
                (302, stat(300, 32, "unrelated")),
            ],
            TICK,
        );
        // The scan came after the parent's exit: its children are init's now.
        let mut snapshot = vec![scanned(1, 0, 0), scanned(301, 1, 31), scanned(302, 1, 99)];
        before.restore(&mut snapshot, &[exit_of(300, 30)], 60 * TICK);
        assert_eq!(snapshot.len(), 4, "the parent is back");
        let ppid_of = |pid| snapshot.iter().find(|s| s.pid == pid).unwrap().ppid;
        assert_eq!(ppid_of(300), 1);
        assert_eq!(ppid_of(301), 300, "its child is its child again");
        assert_eq!(ppid_of(302), 1, "a later holder of a pid is left alone");
        let parent = snapshot.iter().find(|s| s.pid == 300).unwrap();
        assert_eq!(
            (parent.comm.as_str(), parent.start_time),
            ("parent", 30 * TICK)
        );
    }

    #[test]
    fn nothing_is_put_back_without_its_exit() {
        let before =
            BeforeAttach::from_stats(vec![(1, stat(0, 0, "init")), (300, stat(1, 30, "p"))], TICK);
        // Exited before the probes attached (no exit record), or another process's exit.
        let mut snapshot = vec![scanned(1, 0, 0)];
        before.restore(&mut snapshot, &[exit_of(300, 31)], 0);
        before.restore(&mut snapshot, &[], 0);
        assert_eq!(snapshot.len(), 1);
    }
}
