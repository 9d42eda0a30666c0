//! The command line on bad input and on hand-written traces: no kernel needed. Every error is
//! one line naming what to fix, with a non-zero exit; nothing panics.

use std::path::Path;
use std::process::{Command, Output};

const TRACER: &str = env!("CARGO_BIN_EXE_tracer-e2e");

const HEADER: &str = r#"{"event":"header","format":"process-lineage-trace","version":1,"tracer_version":"0.1.0","host":"worker-7","kernel":"6.18.0","boot_id":"b","ts":1000000000,"wall_clock_ns":0,"clock_tick_ns":10000000}"#;

fn tracer(args: &[&str]) -> Output {
    Command::new(TRACER)
        .args(args)
        .output()
        .expect("run tracer")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failure: exit 1, one line on stderr, which contains `needle`.
fn assert_one_line_error(output: &Output, needle: &str) {
    let text = stderr(output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    assert!(text.starts_with("tracer: error: "), "{text}");
    assert!(text.contains(needle), "{needle:?} in {text}");
    assert!(!text.contains("panicked"), "{text}");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// init (1) → celery (100) → pool worker (101) → task child (102); the worker is killed, its
/// child is adopted by init.
fn incident() -> String {
    [
        HEADER,
        r#"{"event":"snapshot","ts":1000000000,"pid":1,"start_time":0,"ppid":0,"comm":"init","cmdline":["/sbin/init"],"uid":0,"pgid":1,"sid":1}"#,
        r#"{"event":"snapshot","ts":1000000000,"pid":100,"start_time":500000000,"ppid":1,"comm":"celery","cmdline":["[celeryd: w1@host:MainProcess]"],"uid":33,"pgid":100,"sid":100}"#,
        r#"{"event":"process_start","ts":2000000000,"pid":101,"start_time":2000000000,"ppid":100,"parent_start_time":500000000,"tid":100,"caller_pid":100,"comm":"celery","uid":33,"pgid":100,"sid":100,"cgroup_id":1}"#,
        r#"{"event":"rename","ts":2100000000,"pid":101,"start_time":2000000000,"comm":"[celeryd: w1@ho","cmdline":["[celeryd: w1@host:ForkPoolWorker-1]"],"pgid":100,"sid":100}"#,
        r#"{"event":"process_start","ts":3000000000,"pid":102,"start_time":3000000000,"ppid":101,"parent_start_time":2000000000,"tid":101,"caller_pid":101,"comm":"celery","uid":33,"pgid":100,"sid":100,"cgroup_id":1}"#,
        r#"{"event":"exec","ts":3100000000,"pid":102,"start_time":3000000000,"ppid":101,"old_pid":102,"filename":"/usr/bin/python3","cmdline":["python3","train.py","\u001b[2J"],"comm":"python3","uid":33,"pgid":100,"sid":100}"#,
        r#"{"event":"signal","ts":4000000000,"pid":101,"start_time":2000000000,"target_pid":101,"sender_pid":100,"sender_start_time":500000000,"sender_comm":"celery","sig":9,"code":0,"result":"delivered"}"#,
        r#"{"event":"exit","ts":4000100000,"pid":101,"start_time":2000000000,"ppid":100,"exit_code":null,"signal":9,"core_dumped":false,"reaper_pid":1,"pgid":100,"sid":100,"comm":"[celeryd: w1@ho"}"#,
        r#"{"event":"reparent","ts":4000100000,"pid":102,"start_time":3000000000,"old_ppid":101,"new_ppid":1,"source":"exit"}"#,
    ]
    .join("\n")
        + "\n"
}

#[test]
fn replay_shows_the_orphan_under_init_with_its_lost_parent() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "incident.jsonl", &incident());
    let output = tracer(&["replay", &path]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1 /sbin/init");
    assert_eq!(
        lines[1],
        "├─ 100 [celeryd: w1@host:MainProcess]  (Celery main process)"
    );
    assert_eq!(
        lines[2],
        "└─ 102 python3 train.py \\x1b[2J  orphaned: parent 101 [[celeryd: w1@ho] exited 0ms ago"
    );
    // The orphans again, with what they belonged to: on a busy host the tree hides them.
    assert_eq!(
        lines[3],
        "-- orphan 102 python3 train.py \\x1b[2J under 1, parent 101 [[celeryd: w1@ho] died 0ms ago \
         [celery_node=w1@host celery_worker=1]"
    );
    assert!(
        lines[4].starts_with("-- worker-7 at +3.0s (8 events): 3 processes alive, 1 orphaned"),
        "{}",
        lines[4]
    );

    // Before the kill, the worker and its child sit under the main process.
    let before = tracer(&["replay", &path, "--at", "+2.5s"]);
    let text = String::from_utf8(before.stdout).unwrap();
    assert!(
        text.contains("   └─ 101 [celeryd: w1@host:ForkPoolWorker-1]"),
        "{text}"
    );
    assert!(text.contains("      └─ 102 python3 train.py"), "{text}");

    let json = tracer(&["replay", &path, "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let orphan = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["pid"] == 102)
        .unwrap();
    assert_eq!(orphan["ppid"], 1);
    assert_eq!(orphan["original_ppid"], 101);
    assert_eq!(orphan["lineage"][0]["pid"], 101);
    assert_eq!(orphan["lineage"][1]["pid"], 100);
    let worker = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["pid"] == 101)
        .unwrap();
    assert_eq!(worker["exit"]["signal"], 9);
    assert_eq!(worker["signals"][0]["sender"]["pid"], 100);
}

#[test]
fn report_tells_who_killed_the_worker_and_what_it_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "incident.jsonl", &incident());
    let output = tracer(&["report", &path]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    let expected = [
        "1 daemonic spawn, 1 orphan (1 alive at the end, 0 exited), 1 kill",
        "Celery worker w1@host",
        "  Celery prefork pool worker 101 `[celeryd: w1@host:ForkPoolWorker-1]`",
        "    was killed by SIGKILL from 100, the Celery main process stopping its pool worker at 1970-01-01 00:00:03Z",
        "    started 1 child while daemonic:",
        "      102 `python3 train.py \\x1b[2J` (exec of /usr/bin/python3)",
        "    left 1 orphan when it died:",
        "      102 `python3 train.py \\x1b[2J`: still alive under 1 at the end",
    ];
    for line in expected {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
    assert!(!text.contains('\x1b'), "escapes are shown, not sent");

    let json = tracer(&["report", &path, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["totals"]["daemonic_spawns"], 1);
    let group = &report["groups"][0];
    assert_eq!(group["subject"]["kind"], "celery_worker");
    assert_eq!(group["subject"]["node"], "w1@host");
    let worker = &group["actors"][0];
    assert_eq!(worker["pid"], 101);
    assert_eq!(worker["spawns"][0]["how"], "exec");
    assert_eq!(
        worker["orphans"][0]["orphaned"]["identity"]["celery_worker"],
        "1"
    );
}

/// A pool worker retitled by contrib/celery_task_titles.py: one task leaves a Popen child, the
/// next forks two children and is killed at its hard time limit.
fn incident_with_task_titles() -> String {
    let task_a = "tasks.leave_popen[aaaa-1]";
    let task_b = "tasks.spawn_and_hang[bbbb-2]";
    let rename = |ts: u64, title: &str| {
        format!(
            r#"{{"event":"rename","ts":{ts},"pid":101,"start_time":2000000000,"comm":"[celeryd: w1@ho","cmdline":["{title}"],"pgid":100,"sid":100}}"#
        )
    };
    let fork = |ts: u64, pid: u32| {
        format!(
            r#"{{"event":"process_start","ts":{ts},"pid":{pid},"start_time":{ts},"ppid":101,"parent_start_time":2000000000,"tid":101,"caller_pid":101,"comm":"[celeryd: w1@ho","uid":33,"pgid":100,"sid":100,"cgroup_id":1}}"#
        )
    };
    let reparent = |pid: u32, start: u64| {
        format!(
            r#"{{"event":"reparent","ts":9000100000,"pid":{pid},"start_time":{start},"old_ppid":101,"new_ppid":1,"source":"exit"}}"#
        )
    };
    let signal = |ts: u64, sig: i32| {
        format!(
            r#"{{"event":"signal","ts":{ts},"pid":101,"start_time":2000000000,"target_pid":101,"sender_pid":100,"sender_start_time":500000000,"sender_comm":"celery","sig":{sig},"code":0,"result":"delivered"}}"#
        )
    };
    let lines = [
        HEADER.to_owned(),
        incident().lines().nth(1).unwrap().to_owned(),
        incident().lines().nth(2).unwrap().to_owned(),
        incident().lines().nth(3).unwrap().to_owned(),
        rename(2100000000, "[celeryd: w1@host:ForkPoolWorker-1]"),
        rename(3000000000, &format!("[celeryd: w1@host:ForkPoolWorker-1] {task_a}")),
        fork(3100000000, 102),
        r#"{"event":"exec","ts":3200000000,"pid":102,"start_time":3100000000,"ppid":101,"old_pid":102,"filename":"/usr/bin/sleep","cmdline":["sleep","600"],"comm":"sleep","uid":33,"pgid":100,"sid":100}"#.to_owned(),
        rename(3300000000, "[celeryd: w1@host:ForkPoolWorker-1]"),
        rename(4000000000, &format!("[celeryd: w1@host:ForkPoolWorker-1] {task_b}")),
        fork(4100000000, 103),
        fork(4200000000, 104),
        signal(8900000000, 15),
        signal(9000000000, 9),
        r#"{"event":"exit","ts":9000100000,"pid":101,"start_time":2000000000,"ppid":100,"exit_code":null,"signal":9,"core_dumped":false,"reaper_pid":1,"pgid":100,"sid":100,"comm":"[celeryd: w1@ho"}"#.to_owned(),
        reparent(102, 3100000000),
        reparent(103, 4100000000),
        reparent(104, 4200000000),
    ];
    lines.join("\n") + "\n"
}

#[test]
fn report_names_the_celery_task_from_the_pool_workers_title() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "tasks.jsonl", &incident_with_task_titles());
    let output = tracer(&["report", &path]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    let worker: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "Celery worker w1@host")
        .collect();
    let title = "[celeryd: w1@host:ForkPoolWorker-1]";
    let b = "tasks.spawn_and_hang[bbbb-2]";
    assert_eq!(
        worker,
        [
            "Celery worker w1@host".to_owned(),
            format!("  Celery prefork pool worker 101 `{title}`"),
            format!(
                "    was killed by SIGKILL from 100, the Celery main process enforcing a hard \
                 time limit (SIGTERM, then SIGKILL 100ms later) at 1970-01-01 00:00:08Z, while \
                 running task {b}"
            ),
            // What its spawns' verdict rests on.
            "    daemonic: Celery prefork pool worker (rule celery.pool_worker)".to_owned(),
            "    started 1 child while daemonic, in task tasks.leave_popen[aaaa-1]:".to_owned(),
            "      102 `sleep 600` (exec of /usr/bin/sleep)".to_owned(),
            format!("    started 2 children while daemonic, in task {b}:"),
            format!("      103 `{title} {b}` (fork without exec)"),
            format!("      104 `{title} {b}` (fork without exec)"),
            "    left 3 orphans when it died:".to_owned(),
            "      102 `sleep 600` (from task tasks.leave_popen[aaaa-1]): still alive under 1 \
             at the end"
                .to_owned(),
            format!("      103 `{title} {b}`: still alive under 1 at the end"),
            format!("      104 `{title} {b}`: still alive under 1 at the end"),
        ]
    );

    // Without the titles, the report says where the task's name is.
    let plain = incident_with_task_titles()
        .replace(" tasks.leave_popen[aaaa-1]", "")
        .replace(" tasks.spawn_and_hang[bbbb-2]", "");
    let path = write(dir.path(), "plain.jsonl", &plain);
    let text = String::from_utf8(tracer(&["report", &path]).stdout).unwrap();
    assert!(!text.contains("in task"), "{text}");
    assert!(
        text.contains("(Celery's log names the task: `Hard time limit (...) exceeded for"),
        "{text}"
    );
}

/// The commands that read a trace file.
const READERS: [&[&str]; 6] = [
    &["replay"],
    &["replay", "--json"],
    &["report"],
    &["export", "--format", "perfetto"],
    &["export", "--format", "dot"],
    &["export", "--format", "jsonl"],
];

/// The `# from ...` line above each rule, and the rule's id, in the order printed.
fn printed_rules(text: &str) -> Vec<(String, String)> {
    let mut rules = Vec::new();
    let mut origin = None;
    for line in text.lines() {
        if let Some(from) = line.strip_prefix("# from ") {
            origin = Some(from.to_owned());
        } else if let Some(id) = line.strip_prefix("id = ") {
            let origin = origin.take().expect("every rule says where it is from");
            rules.push((origin, id.trim_matches('"').to_owned()));
        }
    }
    rules
}

#[test]
fn rules_lists_the_builtin_rules_after_the_users() {
    let builtin = tracer(&["rules"]);
    assert!(builtin.status.success(), "{}", stderr(&builtin));
    let text = String::from_utf8(builtin.stdout).unwrap();
    assert!(
        text.starts_with("# Effective rules, in the order they are tried.\n"),
        "{text}"
    );
    let rules = printed_rules(&text);
    assert!(
        rules.iter().all(|(origin, _)| origin == "built-in rules"),
        "{rules:?}"
    );
    let ids: Vec<&str> = rules.iter().map(|(_, id)| id.as_str()).collect();
    for id in [
        "wrapper",
        "celery.main",
        "celery.pool_worker",
        "airflow3.celery_supervisor",
        "airflow.local_worker",
        "airflow.task_runner",
        "python.mp_spawn_child",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let user = write(
        dir.path(),
        "acme.toml",
        r#"
[[role]]
id = "acme.scheduler"
label = "ACME scheduler"
title = '^acme-scheduler'

[[role]]
id = "acme.worker"
label = "ACME daemonic worker"
title = '^acme-worker (?P<queue>\w+)'
daemonic = true
"#,
    );
    let with_user = tracer(&["rules", "--rules", &user]);
    assert!(with_user.status.success(), "{}", stderr(&with_user));
    let text = String::from_utf8(with_user.stdout).unwrap();
    let rules = printed_rules(&text);
    assert_eq!(
        rules[..3],
        [
            (user.clone(), "acme.scheduler".to_owned()),
            (user.clone(), "acme.worker".to_owned()),
            ("built-in rules".to_owned(), "wrapper".to_owned()),
        ],
        "{text}"
    );
    assert_eq!(rules.len(), ids.len() + 2, "{text}");
    assert!(
        text.contains(&format!(
            "# from {user}\n[[role]]\nid = \"acme.worker\"\nlabel = \"ACME daemonic worker\"\n"
        )),
        "{text}"
    );
    let worker = &text[text.find("id = \"acme.worker\"").unwrap()..];
    let worker = &worker[..worker.find("\n\n").unwrap()];
    assert!(worker.contains("\ndaemonic = true"), "{worker}");
    let wrapper = &text[text.find("id = \"wrapper\"").unwrap()..];
    assert!(wrapper.contains("\nwrapper = true"), "{wrapper}");

    // What it prints is a rules file the tracer reads back.
    let printed = write(dir.path(), "printed.toml", &text);
    let again = tracer(&["rules", "--rules", &printed]);
    assert!(again.status.success(), "{}", stderr(&again));
}

#[test]
fn a_bad_rules_file_is_a_one_line_error_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "bad.toml",
        "[[role]]\nid = \"ok\"\nlabel = \"OK\"\ncomm = \"^ok$\"\n\n\
         [[role]]\nid = \"acme.broken\"\nlabel = \"Broken\"\ntitle = \"(unclosed\"\n",
    );
    let output = tracer(&["rules", "--rules", &path]);
    assert_one_line_error(
        &output,
        &format!("{path}: rule 2 (acme.broken): title is not a valid regex"),
    );
    assert!(output.stdout.is_empty());
    let missing = tracer(&["rules", "--rules", &format!("{path}.missing")]);
    assert_one_line_error(&missing, "cannot read rules file");
}

#[test]
fn bad_trace_files_are_one_line_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.jsonl");
    let mut lines: Vec<String> = incident().lines().map(String::from).collect();
    lines[3] = lines[3].replace(r#""ppid":100"#, r#""ppid":"one hundred""#);
    let cases = [
        (missing.to_str().unwrap().to_owned(), "cannot open trace"),
        (
            write(dir.path(), "garbage.jsonl", "\u{7f}ELF garbage\n"),
            "garbage.jsonl:1: not a trace header",
        ),
        (write(dir.path(), "empty.jsonl", ""), "empty file"),
        (
            write(dir.path(), "cut.jsonl", &HEADER[..30]),
            "cut.jsonl: no complete header line (30 bytes",
        ),
        (
            write(
                dir.path(),
                "future.jsonl",
                &format!("{}\n", HEADER.replace(r#""version":1"#, r#""version":7"#)),
            ),
            "version 7 is not supported",
        ),
        (
            write(dir.path(), "wrong.jsonl", &(lines.join("\n") + "\n")),
            "wrong.jsonl:4: invalid type",
        ),
        (
            write(
                dir.path(),
                "unknown.jsonl",
                &format!("{HEADER}\n{{\"event\":\"teleport\",\"ts\":1}}\n"),
            ),
            "unknown.jsonl:2: unknown variant",
        ),
    ];
    for reader in READERS {
        for (path, needle) in &cases {
            let args: Vec<&str> = reader.iter().copied().chain([path.as_str()]).collect();
            assert_one_line_error(&tracer(&args), needle);
        }
    }
}

#[test]
fn a_hundred_mib_line_is_refused_or_skipped_without_holding_it() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.jsonl");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut lines = incident().lines().map(String::from).collect::<Vec<_>>();
    let tail = lines.split_off(5);
    for line in &lines {
        writeln!(file, "{line}").unwrap();
    }
    write!(file, "{{\"event\":\"rename\",\"comm\":\"").unwrap();
    let block = vec![b'A'; 1 << 20];
    for _ in 0..100 {
        file.write_all(&block).unwrap();
    }
    writeln!(file, "\"}}").unwrap();
    for line in &tail {
        writeln!(file, "{line}").unwrap();
    }
    drop(file);
    let path = path.to_str().unwrap();
    for reader in READERS {
        let args: Vec<&str> = reader.iter().copied().chain([path]).collect();
        assert_one_line_error(
            &tracer(&args),
            "huge.jsonl:6: line is longer than 1048576 bytes",
        );
    }

    // Leniently, the line is skipped and counted and the rest replays: the orphan is there.
    let output = tracer(&["replay", "--lenient", path]);
    let (out, err) = (String::from_utf8_lossy(&output.stdout), stderr(&output));
    assert!(output.status.success(), "{err}");
    assert!(
        err.contains("skipped 1 bad lines of") && err.contains("huge.jsonl:6: line is longer"),
        "{err}"
    );
    assert!(out.contains("1 orphaned"), "{out}");
    let output = tracer(&["report", "--lenient", path]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("skipped 1 bad lines"));
    let output = tracer(&["export", "--lenient", "--format", "dot", path]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("skipped 1 bad lines"));
}

#[test]
fn lenient_reading_skips_each_bad_line_and_says_how_many() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = incident().lines().map(String::from).collect();
    lines.insert(4, "garbage".into());
    lines.insert(2, r#"{"event":"exit","ts":"soon"}"#.into());
    let path = write(dir.path(), "bad.jsonl", &(lines.join("\n") + "\n"));
    assert_one_line_error(&tracer(&["replay", &path]), "bad.jsonl:3: ");
    let output = tracer(&["report", "--json", "--lenient", &path]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["totals"]["orphans"], 1, "{report}");
    let notes = report["read_notes"].as_array().unwrap();
    assert!(
        notes[0]
            .as_str()
            .unwrap()
            .starts_with("skipped 2 bad lines"),
        "{notes:?}"
    );
}

#[test]
fn a_torn_last_line_is_reported_and_the_rest_replays() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = incident();
    text.push_str(r#"{"event":"exit","ts":5000000000,"pid":1"#);
    let path = write(dir.path(), "torn.jsonl", &text);
    let output = tracer(&["replay", &path]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("ignored 39 bytes of a torn last line"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_flags_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "incident.jsonl", &incident());
    assert_one_line_error(
        &tracer(&["replay", &path, "--at", "tomorrow"]),
        "--at \"tomorrow\"",
    );

    // Usage errors are clap's: exit 2, with what was wrong.
    for args in [
        &["record"][..],
        &["record", "-o", "t.jsonl", "--ring-buffer", "3M"],
        &["record", "-o", "t.jsonl", "--duration", "-1"],
        &["watch", "--frobnicate"],
        &["teleport"],
    ] {
        let output = tracer(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(stderr(&output).contains("error:"), "{args:?}");
    }
}

#[test]
fn record_to_an_impossible_path_fails_before_loading_anything() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no/such/dir/trace.jsonl");
    assert_one_line_error(
        &tracer(&["record", "-o", nowhere.to_str().unwrap()]),
        "cannot create trace",
    );
}

fn export(path: &str, args: &[&str]) -> Vec<u8> {
    let output = tracer(&[&["export", path], args].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    output.stdout
}

#[test]
fn perfetto_export_has_a_track_per_process_in_lineage_order_and_flagged_findings() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "incident.jsonl", &incident());
    let out = dir.path().join("incident.perfetto.json");
    let output = tracer(&[
        "export",
        &path,
        "--format",
        "perfetto",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let trace: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).expect("valid JSON");
    let events = trace["traceEvents"].as_array().unwrap();
    let named = |name: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["name"] == name).collect()
    };
    let tracks: Vec<(String, i64)> = named("process_name")
        .iter()
        .map(|e| {
            let pid = e["pid"].as_i64().unwrap();
            let sort = named("process_sort_index")
                .into_iter()
                .find(|s| s["pid"] == pid)
                .unwrap()["args"]["sort_index"]
                .as_i64()
                .unwrap();
            (e["args"]["name"].as_str().unwrap().to_owned(), sort)
        })
        .collect();
    let mut ordered = tracks.clone();
    ordered.sort_by_key(|(_, sort)| *sort);
    let names: Vec<&str> = ordered.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "1 /sbin/init",
            "· 100 [celeryd: w1@host:MainProcess]",
            "· · 101 [celeryd: w1@host:ForkPoolWorker-1]",
            "· · · 102 python3 train.py \\x1b[2J",
        ]
    );
    let slices: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(slices.len(), 4);
    let worker = slices.iter().find(|e| e["args"]["pid"] == 101).unwrap();
    assert_eq!(worker["ts"], 1_000_000.0, "started 1 s after the trace");
    assert_eq!(worker["dur"], 2_000_100.0);
    assert_eq!(worker["args"]["end"], "killed by SIGKILL");
    let instants: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "i" && e["s"] == "t")
        .map(|e| e["cat"].as_str().unwrap())
        .collect();
    for kind in ["exec", "rename", "signal", "orphaned", "finding"] {
        assert!(instants.contains(&kind), "{kind} in {instants:?}");
    }
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "i" && e["s"] == "g" && e["cat"] == "finding"),
        "findings flagged across the timeline"
    );
}

#[test]
fn dot_export_renders_with_graphviz_with_the_lineage_and_styled_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "incident.jsonl", &incident());
    let dot = export(&path, &["--format", "dot", "--pid", "102"]);
    let rendered = Command::new("dot")
        .arg("-Tplain")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(&dot)?;
            child.wait_with_output()
        })
        .expect("run Graphviz dot (Debian package graphviz)");
    assert!(
        rendered.status.success() && rendered.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let plain = String::from_utf8(rendered.stdout).unwrap();
    let mut nodes: Vec<&str> = plain
        .lines()
        .filter_map(|l| l.strip_prefix("node "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(
        nodes,
        [
            "p100_500000000",
            "p101_2000000000",
            "p102_3000000000",
            "p1_0"
        ]
    );
    let edges: Vec<(&str, &str, &str)> = plain
        .lines()
        .filter_map(|l| l.strip_prefix("edge "))
        .map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            (fields[0], fields[1], *fields.last().unwrap())
        })
        .collect();
    assert!(edges.contains(&("p1_0", "p100_500000000", "gray40")));
    assert!(edges.contains(&("p100_500000000", "p101_2000000000", "gray40")));
    assert!(
        edges.contains(&("p101_2000000000", "p102_3000000000", "red")),
        "the daemonic worker's spawn: {edges:?}"
    );
    assert!(
        edges.contains(&("p1_0", "p102_3000000000", "darkorange")),
        "the adoption: {edges:?}"
    );
    let text = String::from_utf8(dot).unwrap();
    assert!(
        text.contains("orphan") && text.contains("\\\\x1b[2J"),
        "{text}"
    );
}

#[test]
fn jsonl_export_of_a_window_is_a_trace_that_replays() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "incident.jsonl", &incident());
    let out = dir.path().join("window.jsonl");
    let output = tracer(&[
        "export",
        &path,
        "--format",
        "jsonl",
        "--pid",
        "101",
        "--from",
        "+2.5s",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .contains(r#""event":"snapshot""#)
    );
    let replayed = tracer(&["replay", out.to_str().unwrap()]);
    assert!(replayed.status.success(), "{}", stderr(&replayed));
    let tree = String::from_utf8(replayed.stdout).unwrap();
    let full = String::from_utf8(tracer(&["replay", &path]).stdout).unwrap();
    assert_eq!(
        tree.lines().take(3).collect::<Vec<_>>(),
        full.lines().take(3).collect::<Vec<_>>(),
        "the window replays to the same tree"
    );
    assert_one_line_error(
        &tracer(&["export", &path, "--format", "dot", "--pid", "4242"]),
        "pid 4242 does not appear",
    );
}

#[test]
fn replay_at_a_finding_and_the_tui_frame() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "incident.jsonl", &incident());
    let list = String::from_utf8(tracer(&["replay", &path, "--findings"]).stdout).unwrap();
    assert!(list.starts_with("finding:1 +"), "{list}");
    // The first finding is the daemonic spawn, settled at the child's exec (+2.1s); 200 ms
    // earlier the child did not exist.
    let before =
        String::from_utf8(tracer(&["replay", &path, "--at", "finding:1-200ms"]).stdout).unwrap();
    assert!(!before.contains("102 "), "{before}");
    let end = String::from_utf8(tracer(&["replay", &path, "--at", "-0s"]).stdout).unwrap();
    assert!(end.contains("102 python3"), "{end}");
    assert_one_line_error(
        &tracer(&["replay", &path, "--at", "finding:99"]),
        "findings (see replay --findings)",
    );

    let frame = tracer(&["replay", &path, "--frame", "140x30"]);
    assert!(frame.status.success(), "{}", stderr(&frame));
    let frame: serde_json::Value = serde_json::from_slice(&frame.stdout).unwrap();
    let rows: Vec<String> = frame["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|runs| {
            runs.as_array()
                .unwrap()
                .iter()
                .map(|r| r["text"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.contains("102") && r.contains("orphaned"))
    );
    let orphan_run = frame["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|runs| runs.as_array().unwrap())
        .find(|run| run["text"].as_str().unwrap().contains("python3 train.py"))
        .unwrap();
    assert_eq!(orphan_run["fg"], "Yellow");
}
