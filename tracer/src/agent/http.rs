//! The agent's HTTP endpoint: `/metrics` (Prometheus) and `/healthz` (200 while capturing,
//! 503 with the reason otherwise). Small on purpose: GET and HEAD only, a bounded number of
//! connections, and a client must send its request headers within a few seconds.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracer_metrics::Metrics;

/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection lives at most this long (a scraper reconnects): a client that never reads
/// its answers cannot hold a slot.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// A capture loop that has not finished a batch or a tick for this long is stuck.
pub const STALLED_AFTER: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Starting,
    Capturing,
    Stopping,
}

/// What `/healthz` answers: the capture's phase and when it last made progress.
#[derive(Debug)]
pub struct Health {
    state: Mutex<(Phase, Instant)>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: Mutex::new((Phase::Starting, Instant::now())),
        }
    }
}

impl Health {
    fn set(&self, phase: Phase) {
        if let Ok(mut state) = self.state.lock() {
            *state = (phase, Instant::now());
        }
    }

    pub fn capturing(&self) {
        self.set(Phase::Capturing);
    }

    pub fn stopping(&self) {
        self.set(Phase::Stopping);
    }

    /// The capture loop finished a batch or a tick.
    pub fn progressed(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.1 = Instant::now();
        }
    }

    /// Ok while capturing, else why not.
    pub fn check(&self) -> Result<(), String> {
        let Ok(state) = self.state.lock() else {
            return Err("the health state is poisoned".into());
        };
        let (phase, since) = &*state;
        match phase {
            Phase::Starting => Err("starting: loading the probes and scanning /proc".into()),
            Phase::Stopping => Err("stopping: the agent was told to stop".into()),
            Phase::Capturing if since.elapsed() >= STALLED_AFTER => Err(format!(
                "stalled: the capture loop made no progress for {} s",
                since.elapsed().as_secs()
            )),
            Phase::Capturing => Ok(()),
        }
    }
}

#[derive(Clone)]
pub struct Endpoint {
    pub metrics: Metrics,
    pub health: Arc<Health>,
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

const PLAIN: &str = "text/plain; charset=utf-8";

fn respond<B>(request: &Request<B>, endpoint: &Endpoint) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            PLAIN,
            "GET /metrics or /healthz\n".into(),
        );
    }
    match request.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            tracer_metrics::CONTENT_TYPE,
            endpoint.metrics.encode(),
        ),
        "/healthz" => match endpoint.health.check() {
            Ok(()) => text(StatusCode::OK, PLAIN, "ok: capturing\n".into()),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                PLAIN,
                format!("{reason}\n"),
            ),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            PLAIN,
            "not found: GET /metrics or /healthz\n".into(),
        ),
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, endpoint: Endpoint) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of descriptors, say: wait rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let endpoint = endpoint.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let response = respond(&request, &endpoint);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, connection).await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, endpoint: &Endpoint) -> (StatusCode, String) {
        use http_body_util::BodyExt as _;
        let request = Request::get(path).body(()).unwrap();
        let response = respond(&request, endpoint);
        let status = response.status();
        let body = futures_body(response.into_body().collect());
        (status, body)
    }

    fn futures_body(collect: http_body_util::combinators::Collect<Full<Bytes>>) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = runtime.block_on(collect).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn health_follows_the_capture() {
        let endpoint = Endpoint {
            metrics: Metrics::new(),
            health: Arc::new(Health::default()),
        };
        let (status, body) = get("/healthz", &endpoint);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.starts_with("starting"), "{body}");
        endpoint.health.capturing();
        assert_eq!(get("/healthz", &endpoint).0, StatusCode::OK);
        endpoint.health.stopping();
        assert_eq!(
            get("/healthz", &endpoint).0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        let (status, body) = get("/metrics", &endpoint);
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("# TYPE tracer_processes gauge"), "{body}");
        assert_eq!(get("/", &endpoint).0, StatusCode::NOT_FOUND);
    }
}
