//! Real-world scenarios: real billiard, multiprocessing, Celery (with Redis) and Airflow 2,
//! under the real tracer, asserting on the findings it recorded. The Python stacks come from
//! `cargo xtask test` (venvs it builds once, named by TRACER_TEST_VENVS); these tests fail,
//! never skip, without them. Each scenario runs in a session of its own and is cleaned up by
//! session id: orphans escape to PID 1 but keep their session.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Recording, TRACER, Trace, kernel_test, proc_stat, wait_bounded};
use tracer_core::event::{Event, FindingKind, SpawnHow};
use tracer_core::ingest::Sink;
use tracer_core::model::Model;

const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

fn scenarios() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

/// A program of one of the test venvs.
fn venv_bin(venv: &str, program: &str) -> PathBuf {
    let venvs = std::env::var_os("TRACER_TEST_VENVS").expect(
        "TRACER_TEST_VENVS is not set: run `cargo xtask test`, which installs the Python \
         stacks (Celery, Airflow 2, Redis) these tests run",
    );
    let path = Path::new(&venvs).join(venv).join("bin").join(program);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask test`",
        path.display()
    );
    path
}

fn text(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Processes in session `sid` that can still be killed (zombies wait for their reaper).
fn session_members(sid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            proc_stat(pid as u32)
                .is_some_and(|stat| stat.state != 'Z' && stat.session == sid as u32)
        })
        .collect()
}

/// A program started as the leader of a new session; dropping it kills the whole session.
struct Session {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Session {
    fn start(command: &mut Command) -> Session {
        // SAFETY: setsid is async-signal-safe and the closure allocates nothing.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid()
                    .map(|_| ())
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the scenario");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        // Children inherit stdout and may outlive the leader: read lines, never to EOF.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Session { child, lines }
    }

    fn sid(&self) -> i32 {
        self.child.id() as i32
    }

    /// The first line the leader prints, as JSON.
    fn report(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(SCENARIO_TIMEOUT)
            .expect("the scenario reports within its time");
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"))
    }

    fn wait(&mut self) {
        let status = wait_bounded(&mut self.child, SCENARIO_TIMEOUT, "scenario");
        assert!(status.success(), "scenario failed: {status}");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let members = session_members(self.sid());
            if members.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                // A leak would skew the next scenario; a test already failing says why itself.
                assert!(
                    std::thread::panicking(),
                    "session {} could not be emptied: {members:?} still alive",
                    self.sid()
                );
                break;
            }
            for pid in members {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A list of pids in a scenario's report.
fn pids_of(value: &Value) -> HashSet<u32> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list of pids: {value}"))
        .iter()
        .map(pid_of)
        .collect()
}

fn pid_of(value: &Value) -> u32 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a pid: {value}")) as u32
}

/// Prints how many findings of each kind a scenario produced and how long it took (for the
/// record of a run), and holds it to its time bound.
fn tally(scenario: &str, trace: &Trace, started: Instant) {
    let mut counts = BTreeMap::new();
    for finding in trace.findings() {
        *counts.entry(format!("{:?}", finding.kind)).or_insert(0) += 1;
    }
    let elapsed = started.elapsed();
    println!("scenario {scenario}: findings {counts:?} in {elapsed:.1?}");
    assert!(elapsed < SCENARIO_TIMEOUT, "{scenario} took {elapsed:?}");
}

/// How many findings of each kind are about the processes in `pids`.
fn counts_about(trace: &Trace, pids: &HashSet<u32>) -> BTreeMap<FindingKind, usize> {
    let mut counts = BTreeMap::new();
    for finding in trace.findings().filter(|f| pids.contains(&f.pid)) {
        assert!(finding.uncertain.is_none(), "{finding:#?}");
        *counts.entry(finding.kind).or_insert(0) += 1;
    }
    counts
}

/// The last role the replayed model gave each process it saw (a fork of the Celery main
/// process looks like a pool worker until it execs), and whether it was daemonic then.
#[derive(Default)]
struct LastRoles(BTreeMap<u32, Option<(String, bool)>>);

impl Sink for LastRoles {
    fn event(&mut self, event: &Event, model: &Model) -> std::io::Result<()> {
        if let Some(process) = model.find(event.key()).map(|index| model.get(index)) {
            let role = process.class.role.as_ref();
            self.0.insert(
                process.key.pid,
                role.map(|role| (role.id.clone(), process.class.is_daemonic())),
            );
        }
        Ok(())
    }
}

/// Each role processes ended up with, and those processes, each with its daemonic verdict.
fn roles_seen(trace: &Trace, rules: Option<&Path>) -> BTreeMap<String, BTreeMap<u32, bool>> {
    let rules = support::rules_file(rules);
    let (pipeline, _, _) = support::replay(trace.path(), None, Some(rules), LastRoles::default())
        .expect("the trace replays");
    let mut roles: BTreeMap<String, BTreeMap<u32, bool>> = BTreeMap::new();
    for (pid, role) in pipeline.sink.0 {
        if let Some((role, daemonic)) = role {
            roles.entry(role).or_default().insert(pid, daemonic);
        }
    }
    roles
}

/// The processes of session `sid` that started while `trace` was recorded, and its leader.
fn session_pids(trace: &Trace, sid: u32) -> HashSet<u32> {
    trace
        .starts()
        .filter(|s| s.sid == sid)
        .map(|s| s.pid)
        .chain([sid])
        .collect()
}

/// `tracer report` on the trace, printed for the record of the run.
fn report_of(trace: &Trace) -> String {
    let output = Command::new(TRACER)
        .args(["report", text(trace.path())])
        .output()
        .unwrap();
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{report}");
    println!("{report}");
    report
}

/// The lines `tracer report` wrote about one process: its heading (which starts with
/// `heading`) and the indented lines under it.
fn report_block<'a>(report: &'a str, heading: &str) -> Vec<&'a str> {
    let mut lines = report.lines().skip_while(|l| !l.starts_with(heading));
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no {heading:?} in\n{report}"));
    std::iter::once(first)
        .chain(lines.take_while(|l| l.starts_with("    ")))
        .collect()
}

/// The evidence a daemonic verdict rests on: the interpreter's daemon flag, or (where the
/// process could not be read, or `read` is false and it died too soon) the title rule
/// `rule`. Printed for the record of the run.
fn rests_on(root: Option<&tracer_core::roles::Evidence>, rule: &str, read: bool) {
    let root = root.expect("evidence");
    let by_interpreter = root
        .reason
        .contains("daemon=True, read from the interpreter");
    println!("verdict rests on: {}", root.reason);
    if read {
        assert!(by_interpreter, "{root:?}");
    } else {
        assert!(by_interpreter || root.reason.contains(rule), "{root:?}");
    }
}

fn findings(
    trace: &Trace,
    kind: FindingKind,
) -> impl Iterator<Item = &tracer_core::event::Finding> {
    trace.findings().filter(move |f| f.kind == kind)
}

#[test]
fn a_daemonic_billiard_process_starts_children_and_is_killed() {
    let _kernel = kernel_test();
    let started = Instant::now();
    let rules = scenarios().join("daemonic_rules.toml");
    let recording = Recording::start(&["--rules", text(&rules)]);
    let mut scenario = Session::start(
        Command::new(venv_bin("celery", "python3")).arg(scenarios().join("billiard_daemonic.py")),
    );
    let report = scenario.report();
    scenario.wait();
    let trace = recording.stop();
    let sid = scenario.sid() as u32;
    drop(scenario);
    tally("billiard daemonic process killed", &trace, started);

    let (parent, daemonic) = (pid_of(&report["parent"]), pid_of(&report["daemonic"]));
    let children: Vec<u32> = report["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(pid_of)
        .collect();
    for child in &children {
        let spawn = trace.only(
            "daemonic_spawn of a child",
            findings(&trace, FindingKind::DaemonicSpawn).filter(|f| f.pid == *child),
        );
        assert_eq!(spawn.parent_pid, Some(daemonic));
        assert_eq!(spawn.how, Some(SpawnHow::Fork));
        // Killed a moment after its forks: its interpreter may be gone before it is read.
        rests_on(spawn.evidence.last(), "Scenario daemonic worker", false);

        let orphaned = trace.only(
            "orphaned child",
            findings(&trace, FindingKind::Orphaned).filter(|f| f.pid == *child),
        );
        let dead = orphaned.dead_parent.as_ref().unwrap();
        assert_eq!(
            (dead.pid, dead.role.as_deref()),
            (daemonic, Some("test.daemonic_worker"))
        );
        let killer = orphaned
            .death
            .as_ref()
            .unwrap()
            .killer
            .as_ref()
            .expect("who killed it");
        assert_eq!((killer.process.pid, killer.sig), (parent, 9));
        assert_eq!(orphaned.identity["scenario"], "billiard");
        assert!(
            orphaned.process.daemonic,
            "a fork of a daemonic process is daemonic"
        );
    }
    let killed = trace.only(
        "the daemonic worker's kill",
        findings(&trace, FindingKind::Killed).filter(|f| f.pid == daemonic),
    );
    assert_eq!(killed.death.as_ref().unwrap().signal, Some(9));
    assert_eq!(
        counts_about(&trace, &session_pids(&trace, sid)),
        [
            (FindingKind::DaemonicSpawn, children.len()),
            (FindingKind::Orphaned, children.len()),
            (FindingKind::Killed, 1),
        ]
        .into(),
        "a spawn and an orphan per child, one kill, nothing else"
    );
    // The script's main process is not daemonic: starting the worker is no finding.
    assert_eq!(
        findings(&trace, FindingKind::DaemonicSpawn)
            .filter(|f| f.pid == daemonic)
            .count(),
        0
    );
}

#[test]
fn a_daemonic_multiprocessing_process_calling_pool() {
    let _kernel = kernel_test();
    let started = Instant::now();
    let rules = scenarios().join("daemonic_rules.toml");
    let recording = Recording::start(&["--rules", text(&rules)]);
    let run = |optimize: bool| {
        let mut command = Command::new(venv_bin("celery", "python3"));
        command.arg(scenarios().join("mp_pool_in_daemonic.py"));
        if optimize {
            command.env("PYTHONOPTIMIZE", "1");
        } else {
            command.env_remove("PYTHONOPTIMIZE");
        }
        let mut scenario = Session::start(&mut command);
        let report = scenario.report();
        scenario.wait();
        report
    };
    let refused = run(false);
    let allowed = run(true);
    let trace = recording.stop();
    tally(
        "multiprocessing Pool() in a daemonic process, without then with PYTHONOPTIMIZE=1",
        &trace,
        started,
    );

    assert_eq!(refused["outcome"], "refused", "{refused}");
    assert_eq!(
        refused["detail"],
        "daemonic processes are not allowed to have children"
    );
    let spawns_of = |report: &Value| {
        let daemonic = pid_of(&report["daemonic"]);
        findings(&trace, FindingKind::DaemonicSpawn)
            .filter(|f| f.parent_pid == Some(daemonic))
            .count()
    };
    assert_eq!(
        spawns_of(&refused),
        0,
        "the assert stopped it: no child, no finding"
    );
    // ... and not because the worker went unseen.
    let roles = roles_seen(&trace, Some(&rules));
    let daemonic_workers = &roles["test.daemonic_worker"];
    for report in [&refused, &allowed] {
        assert_eq!(
            daemonic_workers.get(&pid_of(&report["daemonic"])),
            Some(&true),
            "{roles:?}"
        );
    }

    assert_eq!(allowed["outcome"], "pool", "{allowed}");
    assert_eq!(
        spawns_of(&allowed),
        2,
        "PYTHONOPTIMIZE=1: Pool(2) forked two workers"
    );
    for spawn in findings(&trace, FindingKind::DaemonicSpawn)
        .filter(|f| f.parent_pid == Some(pid_of(&allowed["daemonic"])))
    {
        assert_eq!(spawn.how, Some(SpawnHow::Fork));
        rests_on(spawn.evidence.last(), "test.daemonic_worker", false);
    }
}

/// A Redis server on a free port, in its own session.
struct Redis {
    port: u16,
    _session: Session,
}

impl Redis {
    fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let session = Session::start(Command::new("redis-server").args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis {
            port,
            _session: session,
        }
    }
}

/// Runs a Celery worker and the client under a recording; returns the trace, the client's
/// report, and the worker's session id.
fn celery(client: &str) -> (Trace, Value, u32) {
    let redis = Redis::start();
    let broker = format!("redis://127.0.0.1:{}/0", redis.port);
    let app = scenarios().join("celery_app");
    // The app imports the tracer's recipe that names the running task in pool worker titles.
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib");
    let recording = Recording::start(&[]);
    let worker = Session::start(
        Command::new(venv_bin("celery", "celery"))
            .args([
                "-A",
                "tasks",
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "2",
            ])
            .args(["-n", "w1@lineage", "--without-mingle", "--without-gossip"])
            .args(["--without-heartbeat", "--loglevel", "WARNING"])
            .current_dir(&app)
            .env("LINEAGE_BROKER", &broker)
            .env("PYTHONPATH", &contrib),
    );
    let mut sender = Session::start(
        Command::new(venv_bin("celery", "python3"))
            .args([text(&app.join("client.py")), client])
            .current_dir(&app)
            .env("LINEAGE_BROKER", &broker)
            .env("PYTHONPATH", &contrib),
    );
    let report = sender.report();
    sender.wait();
    let trace = recording.stop();
    let sid = worker.sid() as u32;
    drop(worker);
    (trace, report, sid)
}

#[test]
fn a_celery_task_hits_its_hard_time_limit_and_another_leaves_a_child() {
    let _kernel = kernel_test();
    let started = Instant::now();
    let (trace, report, main) = celery("incident");
    tally("Celery hard time limit and a Popen child", &trace, started);
    assert_eq!(report["hang"], "TimeLimitExceeded", "{report}");
    let hang_id = report["hang_id"].as_str().unwrap();
    let popen_id = report["popen_id"].as_str().unwrap();
    let popen = pid_of(&report["popen_child"]);
    let task = |finding: &tracer_core::event::Finding| {
        (
            finding.identity.get("celery_task").cloned(),
            finding.identity.get("celery_task_id").cloned(),
        )
    };
    let hang = (
        Some("tasks.spawn_and_hang".to_owned()),
        Some(hang_id.to_owned()),
    );

    // Everything about the worker's session, and nothing else from it.
    assert_eq!(
        counts_about(&trace, &session_pids(&trace, main)),
        [
            (FindingKind::DaemonicSpawn, 3),
            (FindingKind::Orphaned, 2),
            (FindingKind::Killed, 1),
        ]
        .into(),
        "two billiard children and a Popen child spawned, two orphaned, one worker killed"
    );

    let killed = trace.only(
        "the pool worker's kill",
        findings(&trace, FindingKind::Killed)
            .filter(|f| f.process.role.as_deref() == Some("celery.pool_worker")),
    );
    let worker = killed.pid;
    assert_eq!(task(killed), hang, "it died running the hanging task");
    let death = killed.death.as_ref().unwrap();
    assert_eq!(death.signal, Some(9));
    let killer = death.killer.as_ref().unwrap();
    assert_eq!(
        (killer.process.pid, killer.sig),
        (main, 9),
        "the Celery main process killed it"
    );
    assert!(
        killer
            .what
            .contains("enforcing a hard time limit (SIGTERM, then SIGKILL"),
        "{}",
        killer.what
    );

    let orphans: Vec<_> = findings(&trace, FindingKind::Orphaned)
        .filter(|f| f.parent_pid == Some(worker))
        .collect();
    assert_eq!(orphans.len(), 2, "the task's two billiard children");
    for orphan in &orphans {
        assert!(
            orphan.summary.contains("hard time limit"),
            "{}",
            orphan.summary
        );
        let dead = orphan.dead_parent.as_ref().unwrap();
        assert_eq!(
            (dead.pid, dead.role.as_deref()),
            (worker, Some("celery.pool_worker"))
        );
        assert_eq!(orphan.identity["celery_node"], "w1@lineage");
        assert_eq!(
            orphan.identity["celery_worker"],
            killed.identity["celery_worker"]
        );
        assert_eq!(task(orphan), hang);
        let orphan_killer = orphan.death.as_ref().unwrap().killer.as_ref().unwrap();
        assert_eq!(orphan_killer.process.pid, main);
        let adopted = orphan.new_ppid.expect("adopted");
        assert_ne!(adopted, worker);
        let reparent = trace.only(
            "its reparent",
            trace.reparents().filter(|r| r.pid == orphan.pid),
        );
        assert_eq!(reparent.new_ppid, adopted);
        let spawn = trace.only(
            "its spawn",
            findings(&trace, FindingKind::DaemonicSpawn).filter(|f| f.pid == orphan.pid),
        );
        assert_eq!(
            (spawn.parent_pid, spawn.how),
            (Some(worker), Some(SpawnHow::Fork))
        );
        assert_eq!(task(spawn), hang);
    }

    let spawn = trace.only(
        "the Popen child's spawn",
        findings(&trace, FindingKind::DaemonicSpawn).filter(|f| f.pid == popen),
    );
    assert_eq!(spawn.how, Some(SpawnHow::Exec));
    assert!(spawn.program.as_deref().unwrap().ends_with("/sleep"));
    assert_eq!(spawn.identity["celery_node"], "w1@lineage");
    assert_eq!(
        task(spawn),
        (
            Some("tasks.leave_popen".to_owned()),
            Some(popen_id.to_owned())
        )
    );
    let popen_worker = spawn.parent_pid.unwrap();

    // The postmortem tells it in a few lines: which task left which children, who killed it.
    let text = report_of(&trace);
    let block = |pid: u32| report_block(&text, &format!("  Celery prefork pool worker {pid} `"));
    let hang_task = format!("tasks.spawn_and_hang[{hang_id}]");
    let killed_block = block(worker);
    assert_eq!(killed_block.len(), 9, "{killed_block:#?}");
    assert!(
        killed_block[1].starts_with(&format!(
            "    was killed by SIGKILL from {main}, the Celery main process enforcing a hard \
             time limit (SIGTERM, then SIGKILL "
        )) && killed_block[1].ends_with(&format!(", while running task {hang_task}")),
        "{}",
        killed_block[1]
    );
    // The pool worker lived on after its forks: its verdict is its interpreter's.
    assert!(
        killed_block[2].contains("has daemon=True, read from the interpreter"),
        "{killed_block:#?}"
    );
    assert_eq!(
        killed_block[3],
        format!("    started 2 children while daemonic, in task {hang_task}:")
    );
    assert_eq!(killed_block[6], "    left 2 orphans when it died:");
    for orphan in &orphans {
        let line = format!("      {} `", orphan.pid);
        assert!(
            killed_block[4..6]
                .iter()
                .any(|l| l.starts_with(&line) && l.ends_with("` (fork without exec)")),
            "{killed_block:#?}"
        );
        let fate = format!(
            ": still alive under {} at the end",
            orphan.new_ppid.unwrap()
        );
        assert!(
            killed_block[7..9]
                .iter()
                .any(|l| l.starts_with(&line) && l.ends_with(&fate)),
            "{killed_block:#?}"
        );
    }
    let popen_block = block(popen_worker);
    assert!(
        popen_block[1].contains("has daemon=True, read from the interpreter"),
        "{popen_block:#?}"
    );
    assert_eq!(
        &popen_block[2..],
        [
            format!("    started 1 child while daemonic, in task tasks.leave_popen[{popen_id}]:"),
            format!("      {popen} `sleep 600` (exec of /usr/bin/sleep)"),
        ],
        "{text}"
    );
    assert!(
        text.lines().count() <= 18,
        "a few lines, not a log:\n{text}"
    );
}

/// A memory cgroup of the test's own, limited to `limit` bytes, removed when dropped (after
/// the session in it).
struct MemoryCgroup {
    dir: std::path::PathBuf,
    relative: String,
}

impl MemoryCgroup {
    fn new(limit: u64) -> MemoryCgroup {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = tracer_live::procfs::memory_cgroup_mount(&mountinfo).expect("memory cgroups");
        let relative = format!("tracer-celery-oom-{}", std::process::id());
        let dir = mount.join(&relative);
        let v1 = dir.parent().unwrap().join("memory.limit_in_bytes").exists();
        if !v1 {
            let _ = std::fs::write(mount.join("cgroup.subtree_control"), "+memory");
        }
        std::fs::create_dir(&dir).expect("create the memory cgroup");
        let limit_file = if v1 {
            "memory.limit_in_bytes"
        } else {
            "memory.max"
        };
        std::fs::write(dir.join(limit_file), limit.to_string()).expect("limit it");
        MemoryCgroup {
            dir,
            relative: format!("/{relative}"),
        }
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A Celery worker started as fleets start it, through `timeout -s KILL`, named with
/// Celery's `%h`, in a memory cgroup of 512 MiB; a task allocates until the kernel's OOM
/// killer ends its pool worker. The kill is the kernel's (never a process's), with the
/// cgroup and its limit; `timeout` takes no role; the worker is `oom@HOST`, not `oom@%h`.
#[test]
fn a_celery_pool_worker_killed_by_the_oom_killer_under_timeout() {
    let _kernel = kernel_test();
    let started = Instant::now();
    let redis = Redis::start();
    let broker = format!("redis://127.0.0.1:{}/0", redis.port);
    let app = scenarios().join("celery_app");
    let contrib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib");
    let cgroup = MemoryCgroup::new(512 << 20);
    let recording = Recording::start(&[]);
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec timeout -s KILL 300 {} -A tasks worker --pool prefork \
         --concurrency 2 -n oom@%h --without-mingle --without-gossip --without-heartbeat \
         --loglevel WARNING",
        cgroup.dir.display(),
        venv_bin("celery", "celery").display()
    );
    let worker = Session::start(
        Command::new("sh")
            .args(["-c", &script])
            .current_dir(&app)
            .env("LINEAGE_BROKER", &broker)
            .env("PYTHONPATH", &contrib),
    );
    let mut sender = Session::start(
        Command::new(venv_bin("celery", "python3"))
            .args([text(&app.join("client.py")), "oom"])
            .current_dir(&app)
            .env("LINEAGE_BROKER", &broker)
            .env("PYTHONPATH", &contrib),
    );
    let report = sender.report();
    sender.wait();
    let trace = recording.stop();
    let leader = worker.sid() as u32;
    drop(worker);
    tally(
        "Celery pool worker OOM-killed under timeout",
        &trace,
        started,
    );
    assert_eq!(report["hog"], "WorkerLostError", "{report}");
    let host = trace.header.host.clone();

    let killed: Vec<_> = findings(&trace, FindingKind::Killed).collect();
    assert_eq!(killed.len(), 1, "{killed:#?}");
    let death = killed[0].death.as_ref().unwrap();
    let killer = death.killer.as_ref().unwrap();
    assert_eq!(killer.process.pid, 0, "the kernel, not a process");
    assert_eq!(
        killer.what,
        format!(
            "SIGKILL from the kernel (OOM killer, memory cgroup {} limited to 512 MiB)",
            cgroup.relative
        )
    );
    assert_eq!(
        killed[0].process.role.as_deref(),
        Some("celery.pool_worker")
    );
    assert_eq!(
        killed[0].identity.get("celery_node"),
        Some(&format!("oom@{host}")),
        "%h expanded as Celery does"
    );

    // `timeout` (the session leader, exec'd by sh) is a wrapper: no role.
    let roles = roles_seen(&trace, None);
    assert!(
        roles.values().all(|pids| !pids.contains_key(&leader)),
        "timeout took a role: {roles:?}"
    );
    let mains: Vec<u32> = roles["celery.main"].keys().copied().collect();
    assert_eq!(mains.len(), 1, "{roles:?}");
    assert_ne!(mains[0], leader);

    let text = report_of(&trace);
    assert!(!text.contains("%h"), "{text}");
    let headings: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("Celery worker"))
        .collect();
    assert_eq!(headings, [format!("Celery worker oom@{host}").as_str()]);
    let block = report_block(&text, "  Celery prefork pool worker");
    assert!(
        block.iter().any(|l| l.contains(&format!(
            "was killed by SIGKILL from the kernel (OOM killer, memory cgroup {} limited to 512 MiB)",
            cgroup.relative
        ))),
        "{block:#?}"
    );
}

#[test]
fn plain_celery_tasks_give_no_findings() {
    let _kernel = kernel_test();
    let started = Instant::now();
    let (trace, report, sid) = celery("control");
    tally("Celery plain tasks (control)", &trace, started);
    assert_eq!(report["results"], serde_json::json!([0, 2, 4]));
    let session = session_pids(&trace, sid);
    let roles = roles_seen(&trace, None);
    let workers = &roles["celery.pool_worker"];
    assert_eq!(workers.len(), 2, "--concurrency 2: {roles:?}");
    assert!(
        workers.keys().all(|pid| session.contains(pid)) && workers.values().all(|&d| d),
        "the pool workers were seen starting, daemonic: {roles:?}"
    );
    assert_eq!(roles["celery.main"].keys().collect::<Vec<_>>(), [&sid]);
    let about_the_worker: Vec<_> = trace
        .findings()
        .filter(|f| session.contains(&f.pid))
        .collect();
    assert!(about_the_worker.is_empty(), "{about_the_worker:#?}");
}

/// An Airflow 2 scheduler with the LocalExecutor on SQLite, running `lineage_spawner` once.
/// With `kill_supervisor`, the task's supervisor is SIGKILLed once the task has started its
/// children. Returns the trace and the task's report.
fn airflow(new_interpreter: bool, kill_supervisor: bool) -> (Trace, Value) {
    let home = tempfile::tempdir().unwrap();
    let airflow = venv_bin("airflow2", "airflow");
    // The LocalExecutor runs `airflow tasks run ...` by name in a new interpreter.
    let path = format!(
        "{}:{}",
        text(airflow.parent().unwrap()),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("PATH", path),
        ("AIRFLOW_HOME", text(home.path()).to_owned()),
        ("AIRFLOW__CORE__EXECUTOR", "LocalExecutor".into()),
        ("AIRFLOW__CORE__PARALLELISM", "4".into()),
        (
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            format!("sqlite:///{}/airflow.db", text(home.path())),
        ),
        (
            "_AIRFLOW__SKIP_DATABASE_EXECUTOR_COMPATIBILITY_CHECK",
            "1".into(),
        ),
        ("AIRFLOW__CORE__LOAD_EXAMPLES", "False".into()),
        (
            "AIRFLOW__CORE__DAGS_FOLDER",
            text(&scenarios().join("airflow_dags")).into(),
        ),
        ("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "False".into()),
        ("AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC", "1".into()),
        ("AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL", "1".into()),
        (
            "AIRFLOW__CORE__EXECUTE_TASKS_NEW_PYTHON_INTERPRETER",
            if new_interpreter { "True" } else { "False" }.into(),
        ),
        ("LINEAGE_REPORT_DIR", text(home.path()).into()),
    ];
    let airflow_command = |args: &[&str]| {
        let mut command = Command::new(&airflow);
        command
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    };
    let mut migrate = airflow_command(&["db", "migrate"]).spawn().unwrap();
    assert!(wait_bounded(&mut migrate, SCENARIO_TIMEOUT, "airflow db migrate").success());

    let recording = Recording::start(&[]);
    let _scheduler = Session::start(&mut airflow_command(&["scheduler"]));
    let deadline = Instant::now() + SCENARIO_TIMEOUT;
    // The trigger fails until the scheduler has parsed the DAG.
    loop {
        let mut trigger = airflow_command(&["dags", "trigger", "lineage_spawner"])
            .spawn()
            .unwrap();
        if wait_bounded(&mut trigger, SCENARIO_TIMEOUT, "airflow dags trigger").success() {
            break;
        }
        assert!(Instant::now() < deadline, "the DAG was never triggered");
        std::thread::sleep(Duration::from_millis(500));
    }
    let task_report = home.path().join("task.json");
    while !task_report.exists() {
        assert!(
            Instant::now() < deadline,
            "the task never started its children"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&task_report).unwrap()).unwrap();
    println!("task report: {report}");
    if kill_supervisor {
        let (runner, supervisor) = (pid_of(&report["task_pid"]), pid_of(&report["task_ppid"]));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(supervisor as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // The runner is reparented as the supervisor's exit completes.
        while proc_stat(runner).is_some_and(|stat| stat.ppid == supervisor) {
            assert!(Instant::now() < deadline, "the runner was never reparented");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    (recording.stop(), report)
}

#[test]
fn an_airflow_task_supervisor_is_killed_and_its_runner_orphaned() {
    let _kernel = kernel_test();
    let started = Instant::now();
    let (trace, report) = airflow(false, true);
    tally(
        "Airflow 2 LocalExecutor task, supervisor killed",
        &trace,
        started,
    );
    let (runner, supervisor) = (pid_of(&report["task_pid"]), pid_of(&report["task_ppid"]));
    let task = [("dag_id", "lineage_spawner"), ("task_id", "spawn")];

    let killed = trace.only(
        "the supervisor's kill",
        findings(&trace, FindingKind::Killed).filter(|f| f.pid == supervisor),
    );
    assert_eq!(
        killed.process.role.as_deref(),
        Some("airflow.task_supervisor")
    );

    let orphaned = trace.only(
        "the runner orphaned",
        findings(&trace, FindingKind::Orphaned).filter(|f| f.pid == runner),
    );
    assert_eq!(
        orphaned.process.role.as_deref(),
        Some("airflow.task_runner")
    );
    assert!(
        orphaned.process.daemonic,
        "forked, without exec, from a LocalExecutor worker"
    );
    assert_eq!(orphaned.parent_pid, Some(supervisor));
    for (key, value) in task {
        assert_eq!(orphaned.identity[key], value, "{key}");
    }
    assert!(orphaned.identity["run_id"].starts_with("manual__"));
    assert!(
        orphaned.identity["job_id"].parse::<u64>().is_ok(),
        "{:?}",
        orphaned.identity
    );
    // The worker lives on after it forks: its interpreter is read.
    rests_on(
        orphaned.evidence.last(),
        "Airflow 2 LocalExecutor worker",
        true,
    );
    let dead = orphaned.dead_parent.as_ref().unwrap();
    assert_eq!(
        (dead.pid, dead.role.as_deref()),
        (supervisor, Some("airflow.task_supervisor"))
    );
    // The test itself sent the SIGKILL.
    for death in [&orphaned.death, &killed.death] {
        let death = death.as_ref().unwrap();
        assert_eq!(death.signal, Some(9));
        let killer = death.killer.as_ref().unwrap();
        assert_eq!((killer.process.pid, killer.sig), (std::process::id(), 9));
    }
    let reparent = trace.only(
        "the runner's reparent",
        trace.reparents().filter(|r| r.pid == runner),
    );
    assert_eq!(orphaned.new_ppid, Some(reparent.new_ppid));
    let lineage: Vec<Option<&str>> = orphaned
        .lineage
        .iter()
        .map(|ancestor| ancestor.role.as_deref())
        .collect();
    assert_eq!(
        lineage[..3],
        [
            Some("airflow.task_supervisor"),
            Some("airflow.local_worker"),
            Some("airflow.scheduler"),
        ],
        "{:#?}",
        orphaned.lineage
    );

    // Every Airflow 2 role of a LocalExecutor scheduler was recognised, daemonic where it is.
    // (`airflow executor -- LocalExecutor` is the scheduler's own title only while it starts
    // its workers, so the scheduler ends up a scheduler.)
    let roles = roles_seen(&trace, None);
    for (role, daemonic) in [
        ("airflow.scheduler", false),
        ("airflow.local_worker", true),
        ("airflow.dag_processor_manager", false),
        ("airflow.dag_file_processor", false),
        ("airflow.task_supervisor", true),
        ("airflow.task_runner", true),
    ] {
        let seen = roles
            .get(role)
            .unwrap_or_else(|| panic!("no {role} in {roles:?}"));
        assert!(seen.values().all(|&d| d == daemonic), "{role}: {seen:?}");
    }

    let children: Vec<u32> = report["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(pid_of)
        .collect();
    for &child in &children {
        let spawn = trace.only(
            "the task's child",
            findings(&trace, FindingKind::DaemonicSpawn).filter(|f| f.pid == child),
        );
        assert_eq!(spawn.parent_pid, Some(runner));
        for (key, value) in task {
            assert_eq!(spawn.identity[key], value, "{key}");
        }
    }
    // The postmortem groups it under the task and run.
    let text = report_of(&trace);
    let run_id = &orphaned.identity["run_id"];
    let group: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != format!("Airflow task lineage_spawner.spawn, run {run_id}"))
        .collect();
    assert!(!group.is_empty(), "no group for the task in\n{text}");
    let group = group.join("\n");
    let supervisor_block =
        report_block(&group, &format!("  Airflow task supervisor {supervisor} `"));
    let runner_line =
        format!("      {runner} `airflow task runner: lineage_spawner spawn {run_id} ");
    assert!(
        supervisor_block[1].starts_with(&format!(
            "    was killed by SIGKILL from {} `",
            std::process::id()
        )),
        "{supervisor_block:#?}"
    );
    // Daemonic as the LocalExecutor worker it was forked from, whose interpreter was read.
    assert!(
        supervisor_block[2].contains("has daemon=True, read from the interpreter"),
        "{supervisor_block:#?}"
    );
    assert_eq!(supervisor_block[3], "    started 1 child while daemonic:");
    assert!(supervisor_block[4].starts_with(&runner_line));
    assert_eq!(supervisor_block[5], "    left 1 orphan when it died:");
    assert!(
        supervisor_block[6].starts_with(&runner_line)
            && supervisor_block[6].ends_with(&format!(
                ": still alive under {} at the end",
                reparent.new_ppid
            )),
        "{supervisor_block:#?}"
    );
    let runner_block = report_block(&group, &format!("  Airflow task runner {runner} `"));
    assert_eq!(runner_block[2], "    started 2 children while daemonic:");
    for child in &children {
        assert!(
            runner_block[3..]
                .iter()
                .any(|l| l.starts_with(&format!("      {child} `"))),
            "{runner_block:#?}"
        );
    }

    // The worker forked the supervisor, the supervisor the runner, the runner two children.
    let task_processes = children
        .iter()
        .copied()
        .chain([runner, supervisor])
        .collect();
    assert_eq!(
        counts_about(&trace, &task_processes),
        [
            (FindingKind::DaemonicSpawn, 4),
            (FindingKind::Orphaned, 1),
            (FindingKind::Killed, 1),
        ]
        .into()
    );
}

#[test]
fn an_airflow_task_in_a_new_interpreter_is_not_daemonic() {
    let _kernel = kernel_test();
    let started = Instant::now();
    let (trace, report) = airflow(true, false);
    tally(
        "Airflow 2 task in a new interpreter (control)",
        &trace,
        started,
    );
    let (runner, command) = (pid_of(&report["task_pid"]), pid_of(&report["task_ppid"]));
    let (pipeline, _, _) =
        support::replay(trace.path(), None, None, tracer_core::ingest::NullSink).unwrap();
    let model = &pipeline.model;
    let command_process = model.live(command).expect("the task command is alive");
    assert_eq!(
        command_process.class.role.as_ref().map(|r| r.id.as_str()),
        Some("airflow.task_command")
    );
    assert!(
        !command_process.class.is_daemonic(),
        "exec cleared the worker's flag"
    );
    assert!(!model.live(runner).unwrap().class.is_daemonic());
    let children = pids_of(&report["children"]);
    let flagged: Vec<_> = trace
        .findings()
        .filter(|f| children.contains(&f.pid) || f.pid == runner)
        .collect();
    assert!(flagged.is_empty(), "{flagged:#?}");
}

/// The same daemonic billiard process under `tracer agent`: the findings reach an OTLP
/// receiver (decoding with the official protobuf types) as exactly two `daemonic_spawn`, two
/// `orphaned` and one `killed` record about the session, with their lineage attributes.
/// `TRACER_TEST_KEEP_OTLP=FILE` writes the records received about it as JSON.
#[test]
fn the_agent_sends_a_daemonic_billiard_spawn_and_its_orphans_as_otlp_records() {
    use support::agent::{Agent, Receiver, eventually, strings};
    let _kernel = kernel_test();
    let receiver = Receiver::default();
    let collector = receiver.start();
    let rules = scenarios().join("daemonic_rules.toml");
    let agent = Agent::start(&[
        "--rules",
        text(&rules),
        "--otlp-endpoint",
        &format!("http://{collector}"),
    ]);
    let mut scenario = Session::start(
        Command::new(venv_bin("celery", "python3")).arg(scenarios().join("billiard_daemonic.py")),
    );
    let report = scenario.report();
    scenario.wait();
    let daemonic = pid_of(&report["daemonic"]);
    let children = pids_of(&report["children"]);
    let about = |record: &opentelemetry_proto::tonic::logs::v1::LogRecord| {
        strings(&record.attributes)
            .get("process.pid")
            .and_then(|pid| pid.parse::<u32>().ok())
    };
    let findings_about_it = || {
        receiver
            .records()
            .into_iter()
            .filter(|(_, r)| r.event_name.starts_with("lineage."))
            .filter(|(_, r)| about(r).is_some_and(|p| p == daemonic || children.contains(&p)))
            .collect::<Vec<_>>()
    };
    let findings = eventually("five finding records", || {
        let found = findings_about_it();
        (found.len() >= 5).then_some(found)
    });
    drop(scenario);
    let stderr = agent.stop(Duration::from_secs(15));
    let mut names: Vec<&str> = findings
        .iter()
        .map(|(_, r)| r.event_name.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "lineage.daemonic_spawn",
            "lineage.daemonic_spawn",
            "lineage.killed",
            "lineage.orphaned",
            "lineage.orphaned"
        ],
        "{stderr}"
    );
    for (resource, record) in &findings {
        let attributes = strings(&record.attributes);
        assert_eq!(resource["service.name"], "tracer");
        assert_eq!(attributes["lineage.uncertain"], "false", "{attributes:?}");
        assert_eq!(record.severity_text, "WARN");
        let pid = about(record).unwrap();
        match record.event_name.as_str() {
            "lineage.daemonic_spawn" => {
                assert!(children.contains(&pid));
                assert_eq!(attributes["process.parent_pid"], daemonic.to_string());
                assert!(
                    attributes["lineage.parent_process_id"].contains(&format!("/{daemonic}/")),
                    "{attributes:?}"
                );
            }
            "lineage.orphaned" => {
                assert!(children.contains(&pid));
                assert!(
                    attributes["lineage.death"].contains("SIGKILL"),
                    "{attributes:?}"
                );
            }
            _ => {
                assert_eq!(pid, daemonic);
                assert_eq!(attributes["lineage.role"], "test.daemonic_worker");
            }
        }
    }
    // The children's lives, as descendants of a process with a role.
    let lifecycle: Vec<(u32, String)> = receiver
        .records()
        .iter()
        .filter(|(_, r)| r.event_name.starts_with("process."))
        .filter_map(|(_, r)| Some((about(r)?, r.event_name.clone())))
        .filter(|(pid, _)| children.contains(pid))
        .collect();
    for child in &children {
        assert!(
            lifecycle.contains(&(*child, "process.start".to_owned())),
            "{child}: {lifecycle:?}"
        );
    }
    if let Some(path) = std::env::var_os("TRACER_TEST_KEEP_OTLP") {
        let records: Vec<Value> = findings
            .iter()
            .map(|(resource, record)| {
                serde_json::json!({
                    "resource": resource,
                    "event_name": record.event_name,
                    "severity_text": record.severity_text,
                    "time_unix_nano": record.time_unix_nano,
                    "body": match record.body.as_ref().and_then(|b| b.value.as_ref()) {
                        Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                            body,
                        )) => body.clone(),
                        _ => String::new(),
                    },
                    "attributes": strings(&record.attributes),
                })
            })
            .collect();
        std::fs::write(path, serde_json::to_string_pretty(&records).unwrap()).unwrap();
    }
}

/// An interpreter of the version matrix: the host's (a venv of it), or Debian's in a root
/// filesystem `cargo xtask test` made (TRACER_TEST_PYTHONS).
struct Interpreter {
    name: String,
    version: String,
    root: Option<PathBuf>,
    /// Its `python3`, when not the celery venv's (outside a root).
    python: Option<PathBuf>,
}

/// `3.12` of a `python3`.
fn version_of(python: &Path) -> String {
    let output = Command::new(python)
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn interpreters() -> Vec<Interpreter> {
    let roots = std::env::var_os("TRACER_TEST_PYTHONS").expect(
        "TRACER_TEST_PYTHONS is not set: run `cargo xtask test`, which makes the Debian roots \
         (3.9, 3.11, 3.13, 3.14) the interpreter reader is tested on",
    );
    let mut all = vec![Interpreter {
        name: "host".into(),
        version: version_of(&venv_bin("celery", "python3")),
        root: None,
        python: None,
    }];
    // Builds of the minor versions no Debian suite has, where the host has them (pyenv).
    let mut others: Vec<PathBuf> = std::fs::read_dir(Path::new(&roots).join("venvs"))
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path().join("bin/python3")))
        .filter(|python| python.exists())
        .collect();
    others.sort();
    for python in others {
        all.push(Interpreter {
            name: "host (pyenv)".into(),
            version: version_of(&python),
            root: None,
            python: Some(python),
        });
    }
    for (suite, version) in [
        ("bullseye", "3.9"),
        ("bookworm", "3.11"),
        ("trixie", "3.13"),
        ("sid", "3.14"),
    ] {
        let root = Path::new(&roots).join(suite);
        assert!(
            root.join("tracer-root.txt").exists(),
            "{} is missing: run `cargo xtask test`",
            root.display()
        );
        all.push(Interpreter {
            name: format!("Debian {suite}"),
            version: version.into(),
            root: Some(root),
            python: None,
        });
    }
    all
}

impl Interpreter {
    /// The matrix script in `mode`, in a session of its own; in a root, with `/proc` and
    /// `/dev/shm` (multiprocessing's semaphores) mounted in a mount namespace of its own.
    fn run(&self, mode: &str, optimize: bool) -> Session {
        let script = scenarios().join("daemonic_matrix.py");
        let mut command =
            match &self.root {
                None => {
                    let python = self
                        .python
                        .clone()
                        .unwrap_or_else(|| venv_bin("celery", "python3"));
                    let mut command = Command::new(python);
                    command.arg(&script);
                    command
                }
                Some(root) => {
                    std::fs::copy(&script, root.join("tmp/daemonic_matrix.py")).expect("copy");
                    let mut command = Command::new("unshare");
                    command.args(["--mount", "--propagation", "private", "sh", "-c"]).arg(
                    "mount -t proc proc \"$0/proc\" && mount -t tmpfs tmpfs \"$0/dev/shm\" && \
                     exec chroot \"$0\" python3 /tmp/daemonic_matrix.py \"$1\"",
                );
                    command.arg(root);
                    command
                }
            };
        command.arg(mode);
        if optimize {
            command.env("PYTHONOPTIMIZE", "1");
        }
        Session::start(&mut command)
    }
}

/// One case of the matrix as its script reported it.
struct Case {
    mode: String,
    main: u32,
    daemonic: Option<u32>,
    children: HashSet<u32>,
    controls: HashSet<u32>,
}

/// CPython 3.9, 3.11 (twice: the host's build and Debian's), 3.13 and 3.14 (and 3.8, 3.10,
/// 3.12 where the host has them) under the real tracer with no rules file: every daemonic process that starts children (stdlib with and
/// without PYTHONOPTIMIZE, a Pool and a ProcessPoolExecutor in it, billiard, the spawn and
/// forkserver start methods) is a `daemonic_spawn` per child resting on the interpreter's
/// daemon flag, and after its SIGKILL each child is `orphaned`; the non-daemonic controls
/// give nothing; under the forkserver the process that asked for the daemonic one is named.
#[test]
fn daemonic_flags_are_read_from_every_cpython_version() {
    let _kernel = kernel_test();
    let mut table = Vec::new();
    for interpreter in interpreters() {
        let started = Instant::now();
        let recording = Recording::start(&[]);
        let mut cases = Vec::new();
        let mut sessions = Vec::new();
        for (mode, optimize) in [
            ("stdlib", false),
            ("stdlib", true),
            ("pool", true),
            ("billiard", false),
            ("spawn", false),
            ("forkserver", false),
            ("control", false),
        ] {
            let mut session = interpreter.run(mode, optimize);
            let report = session.report();
            session.wait();
            cases.push(Case {
                mode: format!("{mode}{}", if optimize { " -O" } else { "" }),
                main: pid_of(&report["main"]),
                daemonic: report["daemonic"].as_array().unwrap().first().map(pid_of),
                children: pids_of(&report["children"]),
                controls: pids_of(&report["controls"]),
            });
            sessions.push(session);
        }
        let trace = recording.stop();
        drop(sessions);
        tally(&format!("python {}", interpreter.name), &trace, started);
        // Replay reaches the same findings from the recorded reads.
        let (replayed, _, _) = support::replay(
            trace.path(),
            None,
            None,
            tracer_core::history::FindingIndex::default(),
        )
        .unwrap();
        let key = |f: &tracer_core::event::Finding| (f.kind, f.pid, f.parent_pid);
        let mut live: Vec<_> = trace.findings().map(key).collect();
        let mut again: Vec<_> = replayed.sink.as_slice().iter().map(key).collect();
        live.sort_unstable();
        again.sort_unstable();
        assert_eq!(live, again, "{}: replay", interpreter.name);
        let read_evidence = format!("read from the interpreter (Python {})", interpreter.version);
        let mut spawns = 0;
        for case in &cases {
            let what = format!("{} {}", interpreter.name, case.mode);
            let Some(daemonic) = case.daemonic else {
                let flagged: Vec<_> = findings(&trace, FindingKind::DaemonicSpawn)
                    .filter(|f| {
                        case.children.contains(&f.pid)
                            || f.parent_pid.is_some_and(|p| case.controls.contains(&p))
                    })
                    .collect();
                assert!(flagged.is_empty(), "{what}: controls flagged: {flagged:#?}");
                continue;
            };
            assert!(!case.children.is_empty(), "{what}: no children");
            for &child in &case.children {
                let spawn = trace.only(
                    &format!("{what}: daemonic_spawn of {child}"),
                    findings(&trace, FindingKind::DaemonicSpawn).filter(|f| f.pid == child),
                );
                assert_eq!(spawn.parent_pid, Some(daemonic), "{what}");
                let root = spawn.evidence.last().expect("evidence");
                assert!(root.reason.contains(&read_evidence), "{what}: {root:?}");
                let orphaned = trace.only(
                    &format!("{what}: orphaned {child}"),
                    findings(&trace, FindingKind::Orphaned).filter(|f| f.pid == child),
                );
                assert_eq!(
                    orphaned.dead_parent.as_ref().unwrap().pid,
                    daemonic,
                    "{what}"
                );
                spawns += 1;
                if case.mode == "forkserver" {
                    assert_eq!(
                        spawn.lineage[0].started_by,
                        Some(case.main),
                        "{what}: the process that asked the forkserver for it"
                    );
                }
            }
            // Starting the daemonic process is no finding: its parent is not daemonic.
            assert_eq!(
                findings(&trace, FindingKind::DaemonicSpawn)
                    .filter(|f| f.pid == daemonic)
                    .count(),
                0,
                "{what}"
            );
        }
        table.push(format!(
            "{:<16} Python {:<5} {} daemonic spawns and orphans read, {} cases, {:.1?}",
            interpreter.name,
            interpreter.version,
            spawns,
            cases.len(),
            started.elapsed()
        ));
    }
    println!("{}", table.join("\n"));
}

/// With interpreter reads off, the kernel-visible evidence: a daemonic process that set
/// PR_SET_PDEATHSIG(SIGKILL) with billiard's helper, as Celery's pool workers do, is daemonic
/// on that evidence, its fork and its subprocess are `daemonic_spawn`s naming it, and the
/// tracer kept no capability.
#[test]
fn a_parent_death_sigkill_is_the_evidence_when_interpreters_are_not_read() {
    let _kernel = kernel_test();
    let recording = Recording::start(&["--python-inspect", "off"]);
    assert!(recording.stderr().contains("all capabilities dropped"));
    let host = interpreters().remove(0);
    let mut session = host.run("pdeathsig", false);
    let report = session.report();
    session.wait();
    let trace = recording.stop();
    drop(session);
    assert_eq!(trace.interpreters().count(), 0, "nothing read");
    let daemonic = pid_of(&report["daemonic"][0]);
    let children = pids_of(&report["children"]);
    assert_eq!(children.len(), 2);
    for child in children {
        let spawn = trace.only(
            "daemonic_spawn",
            findings(&trace, FindingKind::DaemonicSpawn).filter(|f| f.pid == child),
        );
        assert_eq!(spawn.parent_pid, Some(daemonic));
        rests_on(
            spawn.evidence.last(),
            "set PR_SET_PDEATHSIG to SIGKILL",
            false,
        );
        assert!(
            !spawn.evidence.last().unwrap().reason.contains("read from"),
            "{:?}",
            spawn.evidence
        );
    }
}
