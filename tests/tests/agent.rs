//! `tracer agent` against real components: the probes on this kernel, Debian's Prometheus
//! scraping it, and an OTLP/HTTP receiver that decodes what it gets with the official
//! protobuf definitions (the OpenTelemetry Collector itself cannot be installed here).

mod support;

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message as _;
use support::{TRACER, kernel_test, pid, wait_bounded, wait_for_stderr_line, workload};
use tracer_core::event::Event;

const BOUND: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GET over plain TCP: the status and the body.
fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// Polls `check` until it gives a value, within [`BOUND`].
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + BOUND;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {BOUND:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of one series in a Prometheus text exposition.
fn series(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

struct Agent {
    child: Child,
    listen: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Agent {
    fn start(args: &[&str]) -> Agent {
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut child = Command::new(TRACER)
            .arg("agent")
            .args(["--listen", &listen.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tracer agent");
        let stderr = wait_for_stderr_line(&mut child, "tracer agent: capturing");
        Agent {
            child,
            listen,
            stderr,
        }
    }

    fn metrics(&self) -> String {
        let (status, body) = http_get(self.listen, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200);
        body
    }

    /// SIGTERM; it must exit 0 within `within`. Returns its stderr.
    fn stop(mut self, within: Duration) -> String {
        let asked = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = wait_bounded(&mut self.child, Duration::from_secs(60), "tracer agent");
        let stderr = self.stderr.lock().unwrap().clone();
        assert!(status.success(), "{status}: {stderr}");
        assert!(
            asked.elapsed() < within,
            "the stop took {:?}: {stderr}",
            asked.elapsed()
        );
        stderr
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
        let replayed = Command::new(TRACER)
            .args(["report", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            replayed.status.success(),
            "{}",
            String::from_utf8_lossy(&replayed.stderr)
        );
    }
    assert_eq!(
        true_execs, forked,
        "no exec lost or doubled across rotations"
    );
}

/// An OTLP/HTTP receiver: decodes each `POST /v1/logs` body as the official
/// `ExportLogsServiceRequest`. It answers 503 while `down`, or to its first `fail_first`
/// requests.
#[derive(Clone, Default)]
struct Receiver {
    requests: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    headers: Arc<Mutex<Vec<HashMap<String, String>>>>,
    fail_first: Arc<AtomicU32>,
    down: Arc<AtomicBool>,
    answered_503: Arc<AtomicU32>,
}

impl Receiver {
    fn start(&self) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let receiver = self.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(receiver.serve(listener));
        });
        address
    }

    async fn serve(self, listener: TcpListener) {
        use http_body_util::{BodyExt as _, Full};
        use hyper::body::Bytes;
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let receiver = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let receiver = receiver.clone();
                        async move {
                            let path_ok = request.uri().path() == "/v1/logs";
                            let protobuf = request
                                .headers()
                                .get("content-type")
                                .is_some_and(|v| v == "application/x-protobuf");
                            let headers: HashMap<String, String> = request
                                .headers()
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                                .collect();
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let failing = receiver.down.load(Ordering::Relaxed)
                                || receiver
                                    .fail_first
                                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                        n.checked_sub(1)
                                    })
                                    .is_ok();
                            let status = if !path_ok || !protobuf {
                                400
                            } else if failing {
                                receiver.answered_503.fetch_add(1, Ordering::Relaxed);
                                503
                            } else {
                                let decoded = ExportLogsServiceRequest::decode(body.as_ref())
                                    .expect("an OTLP logs request");
                                receiver.requests.lock().unwrap().push(decoded);
                                receiver.headers.lock().unwrap().push(headers);
                                200
                            };
                            let response = hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::new()))
                                .unwrap();
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    /// Every record received, with its resource's attributes.
    fn records(&self) -> Vec<(HashMap<String, String>, LogRecord)> {
        let requests = self.requests.lock().unwrap();
        let mut records = Vec::new();
        for request in requests.iter() {
            for resource_logs in &request.resource_logs {
                let resource = strings(&resource_logs.resource.as_ref().unwrap().attributes);
                for scope in &resource_logs.scope_logs {
                    for record in &scope.log_records {
                        records.push((resource.clone(), record.clone()));
                    }
                }
            }
        }
        records
    }
}

fn strings(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> HashMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(text) => Some((kv.key.clone(), text.clone())),
            Any::IntValue(n) => Some((kv.key.clone(), n.to_string())),
            Any::BoolValue(b) => Some((kv.key.clone(), b.to_string())),
            _ => None,
        })
        .collect()
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

#[test]
fn a_full_export_queue_is_counted_and_announced_when_the_collector_returns() {
    let _kernel = kernel_test();
    let receiver = Receiver::default();
    receiver.down.store(true, Ordering::Relaxed);
    let collector = receiver.start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!("[otlp]\nendpoint = \"http://{collector}\"\nevents = \"all\"\nqueue = 16\n"),
    )
    .unwrap();
    let agent = Agent::start(&["--config", config.to_str().unwrap()]);
    workload(&["burst", "--count", "200", "--program", "/bin/true"]);
    let dropped = eventually("records dropped from the full queue", || {
        series(
            &agent.metrics(),
            r#"tracer_export_queue_dropped_total{exporter="otlp"}"#,
        )
        .filter(|&n| n > 0.0)
    });
    eventually("a refused export", || {
        (receiver.answered_503.load(Ordering::Relaxed) > 0).then_some(())
    });
    receiver.down.store(false, Ordering::Relaxed);
    let (_, loss) = eventually("the data loss record", || {
        receiver
            .records()
            .into_iter()
            .find(|(_, r)| r.event_name == "lineage.data_loss")
    });
    let lost: f64 = strings(&loss.attributes)["lineage.lost_records"]
        .parse()
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
    let cases: [(&[&str], &str); 4] = [
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
