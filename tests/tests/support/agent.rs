//! The agent's side of the tests: running `tracer agent`, reading its endpoint, and an
//! OTLP/HTTP receiver that decodes what it is sent with the official protobuf definitions
//! (the OpenTelemetry Collector itself cannot be installed here).

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

use super::{TRACER, wait_bounded, wait_for_stderr_line};

pub const BOUND: Duration = Duration::from_secs(90);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GET over plain TCP: the status and the body.
pub fn http_get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
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

/// Runs an offline command of the tracer: its standard output, or its standard error.
pub fn offline(args: &[&str]) -> Result<String, String> {
    let output = Command::new(TRACER).args(args).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    if output.status.success() {
        Ok(text(&output.stdout))
    } else {
        Err(text(&output.stderr))
    }
}

/// Polls `check` until it gives a value, within [`BOUND`].
pub fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
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
pub fn series(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.parse().ok())
}

pub struct Agent {
    child: Child,
    pub listen: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Agent {
    pub fn start(args: &[&str]) -> Agent {
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

    /// Its resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
                line.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0)
    }

    pub fn metrics(&self) -> String {
        let (status, body) = http_get(self.listen, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200);
        body
    }

    /// SIGTERM; it must exit 0 within `within`. Returns its stderr.
    pub fn stop(mut self, within: Duration) -> String {
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

/// A running receiver: what stops it, and its thread.
type Running = (
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
);

/// An OTLP/HTTP receiver: decodes each `POST /v1/logs` body as the official
/// `ExportLogsServiceRequest`. It answers 503 while `down`, or to its first `fail_first`
/// requests; [`Receiver::kill`] stops it as a crashed collector stops (connections cut, the
/// port refused) and [`Receiver::start_on`] brings it back on the same port.
#[derive(Clone, Default)]
pub struct Receiver {
    pub requests: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
    pub headers: Arc<Mutex<Vec<HashMap<String, String>>>>,
    pub fail_first: Arc<AtomicU32>,
    pub down: Arc<AtomicBool>,
    pub answered_503: Arc<AtomicU32>,
    running: Arc<Mutex<Option<Running>>>,
}

impl Receiver {
    pub fn start(&self) -> SocketAddr {
        self.start_on(0)
    }

    /// Listens on `port` (0: any free one).
    pub fn start_on(&self, port: u16) -> SocketAddr {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let receiver = self.clone();
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                tokio::select! {
                    () = receiver.serve(listener) => {}
                    _ = killed => {}
                }
            });
            // Dropping the runtime drops every connection it served.
        });
        *self.running.lock().unwrap() = Some((kill, thread));
        address
    }

    /// Stops listening and cuts every connection.
    pub fn kill(&self) {
        if let Some((kill, thread)) = self.running.lock().unwrap().take() {
            let _ = kill.send(());
            thread.join().unwrap();
        }
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
    pub fn records(&self) -> Vec<(HashMap<String, String>, LogRecord)> {
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

pub fn strings(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
) -> HashMap<String, String> {
    attributes
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(text) => Some((kv.key.clone(), text.clone())),
            Any::IntValue(n) => Some((kv.key.clone(), n.to_string())),
            Any::BoolValue(b) => Some((kv.key.clone(), b.to_string())),
            Any::ArrayValue(array) => {
                let items: Vec<String> = array
                    .values
                    .iter()
                    .filter_map(|item| match item.value.as_ref()? {
                        Any::StringValue(text) => Some(text.clone()),
                        _ => None,
                    })
                    .collect();
                Some((kv.key.clone(), items.join(" | ")))
            }
            _ => None,
        })
        .collect()
}
