//! `tracer agent` against real components: the probes on this kernel, Debian's Prometheus
//! scraping it, and an OTLP/HTTP receiver that decodes what it gets with the official
//! protobuf definitions (the OpenTelemetry Collector itself cannot be installed here).

mod support;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use support::agent::{Agent, Receiver, eventually, free_port, http_get, offline, series, strings};
use support::{TRACER, kernel_test, pid, workload};
use tracer_core::event::Event;

#[test]
fn prometheus_scrapes_the_agent_and_rotated_traces_hold_every_event() {
    let _kernel = kernel_test();
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("traces");
    let agent = Agent::start(&[
        "--trace-dir",
        traces.to_str().unwrap(),
        "--rotate-size",
        "32K",
    ]);
    let (status, body) = http_get(agent.listen, "/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok: capturing\n"));

    let prometheus_port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tracer\n    static_configs:\n      - targets: ['{}']\n",
            agent.listen
        ),
    )
    .unwrap();
    let mut prometheus = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Debian's prometheus (cargo xtask test installs it)");
    let prometheus_address: SocketAddr = format!("127.0.0.1:{prometheus_port}").parse().unwrap();

    let burst = workload(&["burst", "--count", "300", "--program", "/bin/true"]);
    let forked = burst["execs"].as_u64().unwrap();
    assert_eq!(forked, 300);

    // What Prometheus stored from its scrapes: the agent is up and counted every exec.
    let query = |expression: &str| -> Option<f64> {
        let (status, body) = http_get(
            prometheus_address,
            &format!("/api/v1/query?query={expression}"),
        )?;
        let answer: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200).then_some(())?;
        answer["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()
    };
    eventually("up{job=\"tracer\"} == 1 in Prometheus", || {
        query("up%7Bjob%3D%22tracer%22%7D").filter(|&up| up == 1.0)
    });
    let processes = eventually("tracer_processes in Prometheus", || {
        query("tracer_processes")
    });
    assert!(processes > 10.0, "{processes} live processes");
    let starts = eventually("the process starts in Prometheus", || {
        query("tracer_events_total%7Bkind%3D%22process_start%22%7D").filter(|&n| n >= forked as f64)
    });
    assert!(starts >= 300.0);
    let execs = eventually("the execs in Prometheus", || {
        query("tracer_events_total%7Bkind%3D%22exec%22%7D").filter(|&n| n >= forked as f64)
    });
    assert!(execs >= 300.0);
    let metrics = agent.metrics();
    assert!(
        series(&metrics, "tracer_processes").is_some_and(|n| n > 10.0),
        "{metrics}"
    );
    assert!(
        series(&metrics, "tracer_kernel_to_trace_latency_seconds_count").is_some_and(|n| n > 0.0)
    );
    assert!(series(&metrics, "tracer_trace_bytes_written_total").is_some_and(|n| n > 32768.0));
    let _ = prometheus.kill();
    let _ = prometheus.wait();

    let listen = agent.listen;
    let stderr = agent.stop(Duration::from_secs(10));
    assert!(stderr.contains("tracer agent: stopped after"), "{stderr}");
    assert!(
        http_get(listen, "/healthz").is_none(),
        "the endpoint is gone"
    );

    // Every file is a trace of its own; together they hold every exec of the burst.
    let mut files: Vec<_> = std::fs::read_dir(&traces)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "rotated at 32K: {files:?}");
    let mut true_execs = 0;
    for file in &files {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let reader = tracer::files::open_trace(file).unwrap();
        for event in reader {
            if let Event::Exec(exec) = event.unwrap()
                && exec.filename == "/bin/true"
            {
                true_execs += 1;
            }
        }
        offline(&["report", file.to_str().unwrap()]).unwrap();
    }
    assert_eq!(
        true_execs, forked,
        "no exec lost or doubled across rotations"
    );

    // The directory reads as one history: exported whole, it holds the burst once.
    let exported = dir.path().join("whole.jsonl");
    let (exported_path, traces_path) = (exported.to_str().unwrap(), traces.to_str().unwrap());
    offline(&[
        "export",
        "--format",
        "jsonl",
        "-o",
        exported_path,
        traces_path,
    ])
    .unwrap();
    let whole = support::Trace::read(&exported);
    let whole_execs = whole.execs().filter(|e| e.filename == "/bin/true").count() as u64;
    assert_eq!(whole_execs, forked);
    offline(&["replay", traces_path]).unwrap();

    // Another host's trace beside it: reported side by side.
    let other = dir.path().join("other-host.jsonl");
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let host = tracer_live::host::hostname();
    let (header, rest) = text.split_once('\n').unwrap();
    let renamed = header.replace(&format!("\"host\":\"{host}\""), "\"host\":\"worker-99\"");
    assert_ne!(renamed, header);
    std::fs::write(&other, format!("{renamed}\n{rest}")).unwrap();
    let other_path = other.to_str().unwrap();
    let out = offline(&["report", traces_path, other_path]).unwrap();
    assert!(out.starts_with("2 histories: 2 hosts"), "{out}");
    assert!(out.contains("\n== worker-99 (boot "), "{out}");
    assert!(out.contains(&format!("\n== {host} (boot ")), "{out}");
    let refused = offline(&["replay", traces_path, other_path]).unwrap_err();
    assert!(refused.contains("2 separate histories"), "{refused}");
}

const WORKLOAD_RULES: &str = r#"
[[role]]
id = "test.workload"
label = "test workload"
comm = '^tracer-workload$'
"#;

#[test]
fn findings_reach_the_collector_through_its_outage() {
    let _kernel = kernel_test();
    let receiver = Receiver::default();
    receiver.fail_first.store(2, Ordering::Relaxed);
    let collector = receiver.start();
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, WORKLOAD_RULES).unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[otlp]\nendpoint = \"http://{collector}\"\nheaders = {{ authorization = \"Bearer test-token\" }}\n"
        ),
    )
    .unwrap();
    let agent = Agent::start(&[
        "--config",
        config.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ]);
    let report = workload(&["sibling-kill"]);
    let victim = pid(&report, "victim");

    let (resource, killed) = eventually("the killed finding at the collector", || {
        receiver.records().into_iter().find(|(_, record)| {
            record.event_name == "lineage.killed"
                && strings(&record.attributes).get("process.pid") == Some(&victim.to_string())
        })
    });
    assert!(
        receiver.answered_503.load(Ordering::Relaxed) >= 2,
        "it retried"
    );
    let attributes = strings(&killed.attributes);
    assert_eq!(resource["service.name"], "tracer");
    assert_eq!(resource["host.name"], tracer_live::host::hostname());
    assert!(attributes["lineage.process_id"].contains(&format!("/{victim}/")));
    assert_eq!(attributes["lineage.role"], "test.workload");
    assert_eq!(attributes["lineage.uncertain"], "false");
    assert!(attributes.contains_key("process.creation.time"));
    assert!(killed.time_unix_nano > 0);
    let body = match killed.body.as_ref().and_then(|b| b.value.as_ref()) {
        Some(Any::StringValue(text)) => text.clone(),
        other => panic!("{other:?}"),
    };
    assert!(body.contains("SIGKILL"), "{body}");
    // The victim's lifecycle, as a role's: started and ended.
    let names: Vec<String> = receiver
        .records()
        .iter()
        .filter(|(_, r)| strings(&r.attributes).get("process.pid") == Some(&victim.to_string()))
        .map(|(_, r)| r.event_name.clone())
        .collect();
    assert!(names.contains(&"process.exit".to_owned()), "{names:?}");
    assert!(
        receiver.headers.lock().unwrap()[0]
            .get("authorization")
            .is_some_and(|v| v == "Bearer test-token")
    );
    let metrics = agent.metrics();
    assert!(
        series(
            &metrics,
            r#"tracer_export_records_total{exporter="otlp",result="sent"}"#
        )
        .is_some_and(|n| n > 0.0),
        "{metrics}"
    );
    assert!(series(&metrics, r#"tracer_findings_total{kind="killed"}"#).is_some_and(|n| n >= 1.0));
    agent.stop(Duration::from_secs(10));
}

/// The collector is killed mid-run (connections cut, its port refused) and comes back: capture
/// never stops, the queue stays bounded, what it dropped is counted, and announced once the
/// collector is back.
#[test]
fn a_killed_collector_costs_counted_drops_and_is_told_of_them_when_back() {
    let _kernel = kernel_test();
    let receiver = Receiver::default();
    let collector = receiver.start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("[otlp]\nendpoint = \"http://{collector}\"\nevents = \"all\"\nqueue = 16\n"),
    )
    .unwrap();
    let agent = Agent::start(&["--config", config.to_str().unwrap()]);
    workload(&["burst", "--count", "20", "--program", "/bin/true"]);
    eventually("records at the collector", || {
        (!receiver.records().is_empty()).then_some(())
    });
    receiver.kill();
    let before = agent.rss_kib();
    let execs_before = series(&agent.metrics(), r#"tracer_events_total{kind="exec"}"#).unwrap();
    workload(&["burst", "--count", "2000", "--program", "/bin/true"]);
    eventually("records dropped from the full queue", || {
        series(
            &agent.metrics(),
            r#"tracer_export_queue_dropped_total{exporter="otlp"}"#,
        )
        .filter(|&n| n > 0.0)
    });
    eventually("capture going on while the collector is away", || {
        series(&agent.metrics(), r#"tracer_events_total{kind="exec"}"#)
            .filter(|&execs| execs >= execs_before + 2000.0)
    });
    let metrics = agent.metrics();
    assert_eq!(
        series(&metrics, r#"tracer_kernel_records_lost_total{kind="exec"}"#),
        None,
        "no kernel record lost for the export's sake"
    );
    let grown = agent.rss_kib().saturating_sub(before);
    assert!(
        grown < 16 << 10,
        "memory grew by {grown} KiB while the collector was away"
    );

    receiver.start_on(collector.port());
    let (_, loss) = eventually("the data loss record", || {
        receiver
            .records()
            .into_iter()
            .find(|(_, r)| r.event_name == "lineage.data_loss")
    });
    let lost: f64 = strings(&loss.attributes)["lineage.lost_records"]
        .parse()
        .unwrap();
    let dropped = series(
        &agent.metrics(),
        r#"tracer_export_queue_dropped_total{exporter="otlp"}"#,
    )
    .unwrap();
    assert!(
        lost >= 1.0 && lost <= dropped,
        "{lost} announced, {dropped} dropped"
    );
    let stderr = agent.stop(Duration::from_secs(15));
    assert!(stderr.contains("OTLP: "), "{stderr}");
}

#[test]
fn a_stop_while_the_collector_is_away_takes_the_shutdown_budget_not_forever() {
    let _kernel = kernel_test();
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::Relaxed);
    let collector = receiver.start();
    let agent = Agent::start(&[
        "--otlp-endpoint",
        &format!("http://{collector}"),
        "--otlp-events",
        "all",
    ]);
    workload(&["burst", "--count", "20", "--program", "/bin/true"]);
    eventually("a first refused export", || {
        (receiver.answered_503.load(Ordering::Relaxed) > 0).then_some(())
    });
    // The default budget is 5 s.
    let stderr = agent.stop(Duration::from_secs(9));
    assert!(stderr.contains("dropped"), "{stderr}");
}

#[test]
fn bad_agent_configuration_is_one_line_that_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(&config, "[otlp]\nendpoint = \"ftp://collector\"\n").unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(TRACER)
            .arg("agent")
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success());
        String::from_utf8(output.stderr).unwrap()
    };
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "listen = \"127.0.0.1:0\"\nlisten_port = 9464\n").unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--config", unknown.to_str().unwrap()],
            "line 2: unknown field `listen_port`",
        ),
        (&["--listen", &taken], "cannot listen on"),
        (
            &["--config", config.to_str().unwrap()],
            "is not an http:// URL",
        ),
        (
            &["--config", "/nonexistent/agent.toml"],
            "cannot read config file",
        ),
        (&["--listen", "nowhere"], "give IP:PORT"),
        (
            &["--rotate-size", "tiny", "--trace-dir", "/tmp"],
            "is not a size",
        ),
    ];
    for (args, expected) in cases {
        let stderr = run(args);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("tracer: error: ") && stderr.contains(expected),
            "{stderr}"
        );
    }
}
