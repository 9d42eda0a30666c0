//! The tracer under abuse, against the real kernel: killed mid-recording, stopped by each
//! signal, flooded, and fed recycled pids. What it recorded must stay readable and right.

mod support;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::{Held, Recording, TRACER, WORKLOAD, kernel_test, peak_rss_kib, pid, wait_bounded};
use tracer_core::event::Event;

/// The eBPF programs a process holds open (its probes and their links).
fn program_ids_of(pid: u32) -> HashSet<u32> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return HashSet::new();
    };
    fds.filter_map(|fd| std::fs::read_to_string(fd.ok()?.path()).ok())
        .flat_map(|info| {
            info.lines()
                .filter_map(|line| line.strip_prefix("prog_id:")?.trim().parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn loaded_program_ids() -> HashSet<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|program| program.id())
        .collect()
}

/// The kernel frees a closed link's program from a workqueue, a moment after the last file
/// descriptor went: wait for that, within a bound.
fn assert_detached(programs: &HashSet<u32>) {
    assert!(!programs.is_empty(), "the tracer held its programs");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let still: Vec<u32> = programs
            .intersection(&loaded_program_ids())
            .copied()
            .collect();
        if still.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "programs {still:?} still loaded");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_killed_recorder_leaves_a_readable_trace_and_a_new_one_resynchronises() {
    let _kernel = kernel_test();
    let held = Held::start(&["hold"]);
    let (child, grandchild) = (pid(&held.report, "child"), pid(&held.report, "grandchild"));
    let first = Recording::start(&[]);
    let programs = program_ids_of(first.pid());

    // Kill it while it is busy writing.
    let mut burst = Command::new(WORKLOAD)
        .args(["burst", "--count", "2000"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let burst_pid = burst.id();
    first.wait_for(
        "the burst's children",
        |e| matches!(e, Event::ProcessStart(s) if s.ppid == burst_pid),
    );
    let crashed = first.kill();
    assert!(
        wait_bounded(&mut burst, Duration::from_secs(300), "burst").success(),
        "the workload is unaffected"
    );
    assert_detached(&programs);

    // Readable up to its last complete line; the torn rest, if any, is reported.
    assert!(crashed.starts().any(|s| s.ppid == burst_pid));
    let replay = Command::new(TRACER)
        .arg("replay")
        .arg(crashed.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&replay.stderr);
    assert!(replay.status.success(), "{stderr}");
    if crashed.trailing_bytes > 0 {
        assert!(
            stderr.contains(&format!(
                "ignored {} bytes of a torn last line",
                crashed.trailing_bytes
            )),
            "{stderr}"
        );
    }
    eprintln!(
        "killed recorder: {} events readable, {} trailing bytes",
        crashed.events.len(),
        crashed.trailing_bytes
    );

    // A new recorder starts from /proc: the held tree is there, parents and all, and it
    // carries on with what happens next.
    let second = Recording::start(&[]);
    let parent = held.pid();
    held.release();
    let trace = second.stop();
    let snapshot = |pid: u32| trace.only("snapshot", trace.snapshots().filter(|s| s.pid == pid));
    assert_eq!(snapshot(child).ppid, parent);
    assert_eq!(snapshot(grandchild).ppid, child);
    for pid in [parent, child, grandchild] {
        trace.only("exit", trace.exits().filter(|x| x.pid == pid));
    }
}

#[test]
fn each_stop_signal_flushes_closes_and_detaches() {
    let _kernel = kernel_test();
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let recording = Recording::start(&[]);
        let programs = program_ids_of(recording.pid());
        let report = support::workload(&["fork-exec-exit", "--code", "5"]);
        let child = pid(&report, "child");
        let trace = recording.stop_with(signal);
        // Every event up to the signal is in the file, ending on a complete line.
        let exit = trace.only("exit", trace.exits().filter(|x| x.pid == child));
        assert_eq!(exit.exit_code, Some(5), "{signal}");
        assert!(trace.stderr.contains("tracer: recorded"), "{signal}");
        assert_detached(&programs);
    }
}

/// Pid reuse, made certain: clone3's set_tid hands a just-freed pid to a new process in the
/// host's pid namespace (the one the tracer keys on; a child pid namespace with a small
/// pid_max recycles only its own numbers, never the host's).
#[test]
fn a_recycled_pid_is_never_merged_with_its_previous_holder() {
    let _kernel = kernel_test();
    let recording = Recording::start(&[]);
    let report = support::workload(&["pid-reuse", "--rounds", "20"]);
    let trace = recording.stop();
    let parent = pid(&report, "parent");
    let rounds = report["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 20);
    for round in rounds {
        let (reused, orphan, creator) = (
            pid(round, "pid"),
            pid(round, "orphan"),
            pid(round, "creator"),
        );
        let first = trace.only(
            "first holder",
            trace
                .starts()
                .filter(|s| s.pid == reused && s.ppid == parent),
        );
        let second = trace.only(
            "second holder",
            trace
                .starts()
                .filter(|s| s.pid == reused && s.ppid == creator),
        );
        assert!(second.start_time > first.start_time);
        let exit_of = |start_time: u64| {
            trace.only(
                "exit",
                trace
                    .exits()
                    .filter(|x| x.pid == reused && x.start_time == start_time),
            )
        };
        assert_eq!(exit_of(first.start_time).exit_code, Some(1));
        assert_eq!(exit_of(second.start_time).exit_code, Some(2));
        let orphan_start = trace.only("orphan", trace.starts().filter(|s| s.pid == orphan));
        assert_eq!(
            (orphan_start.ppid, orphan_start.parent_start_time),
            (reused, first.start_time)
        );
        let reparent = trace.only("reparent", trace.reparents().filter(|r| r.pid == orphan));
        assert_eq!((reparent.old_ppid, reparent.new_ppid), (reused, parent));

        // The model, while the second holder lives: the pid is the second's, and the orphan's
        // lineage still leads to the first, exited one.
        let (pipeline, _, _) = support::replay(
            trace.path(),
            Some(second.ts),
            None,
            tracer_core::ingest::NullSink,
        )
        .unwrap();
        let model = &pipeline.model;
        let holder = model.live(reused).expect("the second holder lives");
        assert_eq!(holder.key.start_time, second.start_time);
        assert_eq!(holder.ppid, creator);
        let orphan_index = model.live_index(orphan).expect("the orphan lives");
        let creator_index = model.creator(orphan_index).expect("its creator is kept");
        let original = model.get(creator_index);
        assert_eq!(original.key.start_time, first.start_time);
        assert!(!original.is_alive());
        assert_eq!(
            model.get(orphan_index).ppid,
            parent,
            "adopted by the subreaper"
        );
    }
    assert_eq!(trace.lost().total(), 0);
}

fn spawn_workload(args: &[&str]) -> std::process::Child {
    Command::new(WORKLOAD)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish_workload(mut child: std::process::Child, what: &str) -> serde_json::Value {
    use std::io::Read;
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(wait_bounded(&mut child, Duration::from_secs(600), what).success());
    serde_json::from_str(out.trim()).unwrap()
}

/// FLOOD_SECONDS (default 60) of the fastest fork+exec+exit churn the generator makes, with a
/// thread storm beside it, into a small ring buffer; halfway, the recorder is stalled long
/// enough to lose records for certain, while a daemonic tree it already saw is alive.
#[test]
fn a_flood_is_survived_with_every_loss_counted_and_gaps_marked_uncertain() {
    let _kernel = kernel_test();
    let seconds: f64 = std::env::var("FLOOD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[role]]\nid = \"test.daemonic_hold\"\nlabel = \"Daemonic test worker\"\n\
         title = 'tracer-workload hold$'\ndaemonic = true\n",
    )
    .unwrap();
    let recording =
        Recording::start(&["--ring-buffer", "256K", "--rules", rules.to_str().unwrap()]);
    let secs = format!("{seconds}");
    let burst = spawn_workload(&["burst", "--seconds", &secs, "--parallel", "8"]);
    let threads = spawn_workload(&["threads", "--seconds", &secs]);
    let started = Instant::now();

    std::thread::sleep(Duration::from_secs_f64(seconds / 2.0));
    // A daemonic tree, then a stall: the flood overflows the ring while the tree lives, and
    // the spawns in it are judged only after the gap.
    let held = Held::start(&["hold"]);
    let (child, grandchild) = (pid(&held.report, "child"), pid(&held.report, "grandchild"));
    recording.signal(Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(3));
    recording.signal(Signal::SIGCONT);
    let peak_during = peak_rss_kib(recording.pid());
    let burst = finish_workload(burst, "burst");
    let threads = finish_workload(threads, "threads");
    held.release();
    let peak_kib = peak_rss_kib(recording.pid()).max(peak_during);
    let trace = recording.stop();
    let elapsed = started.elapsed();

    let lost = trace.lost();
    let root = pid(&burst, "root");
    let forks = burst["forks"].as_u64().unwrap();
    let starts = trace.starts().filter(|s| s.ppid == root).count() as u64;
    let exits = trace
        .exits()
        .filter(|x| x.ppid == root && x.pid != root)
        .count() as u64;
    eprintln!(
        "flood: {forks} processes in {elapsed:?} ({:.0}/s) and {} threads; {} events \
         recorded, {} lost ({lost:?}); recorder peak RSS {} MiB",
        burst["per_second"].as_f64().unwrap(),
        threads["threads"],
        trace.events.len(),
        lost.total(),
        peak_kib >> 10
    );

    // Memory stays bounded: the ring is 256 KiB; the model holds only live processes.
    assert!(peak_kib < 128 << 10, "peak RSS {peak_kib} KiB");
    // Every record is in the trace or counted as lost, and the stall did lose some.
    assert!(lost.total() > 0, "the stall overflowed the ring");
    assert!(
        starts <= forks && starts + lost.process_start >= forks,
        "{starts} starts"
    );
    assert!(
        exits <= forks && exits + lost.exit >= forks,
        "{exits} exits"
    );
    // Threads are never processes.
    let storm = pid(&threads, "pid");
    assert!(trace.starts().all(|s| s.ppid != storm));
    // Each loss is a line at the point it was seen, saying since when.
    let mut previous = 0;
    for event in &trace.events {
        if let Event::Lost(loss) = event {
            assert!(loss.since < loss.ts && loss.since >= previous, "{loss:?}");
            previous = loss.ts;
        }
    }
    assert!(
        trace
            .stderr
            .contains(&format!("{} KERNEL RECORDS LOST", lost.total())),
        "{}",
        trace.stderr
    );
    // The spawns in the daemonic tree were judged after the gap: uncertain, and said so.
    for pid in [child, grandchild] {
        let spawn = trace.only(
            "spawn",
            trace.findings().filter(|f| {
                f.pid == pid && f.kind == tracer_core::event::FindingKind::DaemonicSpawn
            }),
        );
        let reason = spawn.uncertain.as_deref().expect("uncertain");
        assert!(reason.contains("kernel records were lost"), "{reason}");
    }
}

/// A recorder that was descheduled while a flood filled its 32 MiB ring has a backlog of
/// hundreds of thousands of records and reads full batch after full batch. A SIGTERM then
/// must still stop it within a second (systemd's SIGKILL would follow), with what it read
/// written and every record it did not read counted as lost, never dropped silently.
#[test]
fn a_stop_under_a_backlog_takes_effect_within_a_second_and_counts_what_was_left() {
    let _kernel = kernel_test();
    let recording = Recording::start(&[]);
    recording.signal(Signal::SIGSTOP);
    let report = support::generate(support::LOAD, &["fork-exit", "--seconds", "6"]);
    recording.signal(Signal::SIGCONT);
    // Let it start on the backlog, then stop it as a service manager does.
    std::thread::sleep(Duration::from_millis(100));
    let asked = Instant::now();
    let trace = recording.stop_with(Signal::SIGTERM);
    let took = asked.elapsed();
    let forks = report["forks"].as_u64().unwrap();
    let lost = trace.lost();
    let captured = trace.starts().filter(|s| s.comm == "tracer-load").count() as u64;
    println!(
        "{forks} processes forked while stalled; stop took {took:?}; captured {captured} \
         starts, lost {lost:?}"
    );
    assert!(
        took < Duration::from_secs(1),
        "the stop took {took:?}:\n{}",
        trace.stderr
    );
    assert!(
        captured + lost.process_start >= forks,
        "starts: every one read or counted"
    );
    assert!(lost.total() > 0, "the backlog was not all read");
    assert!(
        trace.stderr.contains("tracer: recorded"),
        "{}",
        trace.stderr
    );
}
