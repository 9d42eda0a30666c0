//! Sending the agent's log records to an OpenTelemetry Collector: OTLP/HTTP with protobuf
//! bodies (`POST /v1/logs`). The pipeline never waits for the network: records go into a
//! bounded queue, and a task sends them in batches, retrying with backoff while the collector
//! is away. When the queue is full, records are dropped and counted; the next batch the
//! collector accepts starts with a `lineage.data_loss` record that says how many.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Result, anyhow};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracer_core::event::Event;
use tracer_core::ingest::{Sink, Status};
use tracer_core::model::Model;
use tracer_core::trace::TraceHeader;
use tracer_live::host;
use tracer_live::procfs::ProcFs;
use tracer_metrics::{ExportResult, Metrics};
use tracer_otlp::{ContainerIds, HostResource, LogExporter, ProcessLog, Selection, containers};

use super::config::{Otlp, OtlpEvents};

const EXPORTER: &str = "otlp";
/// Records per request: the Collector's default limit is far above, and a batch stays small
/// enough to retry.
const BATCH_RECORDS: usize = 512;
/// How long a batch may gather before it is sent.
const BATCH_DELAY: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A batch is given up (and counted dropped) after this many failed attempts.
const ATTEMPTS: u32 = 8;
/// Processes whose container is remembered; past it the cache starts over.
const CONTAINER_CACHE: usize = 65_536;

type Queued = (Option<ContainerIds>, LogRecord);

/// How the export went, for the agent's last line: every record made is in exactly one of
/// the three.
#[derive(Clone, Copy, Debug, Default)]
pub struct SendReport {
    pub sent: u64,
    pub rejected: u64,
    /// Dropped from a full queue, given up after retries, or still queued when the stop's
    /// budget ran out.
    pub dropped: u64,
}

impl std::fmt::Display for SendReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} records sent, {} rejected by the collector, {} dropped",
            self.sent, self.rejected, self.dropped
        )
    }
}

/// What the sending task shares with the sink.
struct Shared {
    /// Records the exporter made (queued or not), and those the collector took or refused:
    /// the rest were dropped.
    made: AtomicU64,
    sent: AtomicU64,
    rejected: AtomicU64,
    /// Records dropped and not yet announced by a `lineage.data_loss` record.
    unannounced: AtomicU64,
    /// The agent is stopping: retry only until the shutdown budget is spent.
    stopping: AtomicBool,
    metrics: Metrics,
}

impl Shared {
    /// `count` records are gone: from a full queue, or given up after retries.
    fn lose(&self, count: u64, queue_full: bool) {
        self.unannounced.fetch_add(count, Ordering::Relaxed);
        if queue_full {
            self.metrics.count_queue_dropped(EXPORTER, count);
        } else {
            self.metrics
                .count_export(EXPORTER, ExportResult::Dropped, count);
        }
    }

    fn report(&self) -> SendReport {
        let made = self.made.load(Ordering::Relaxed);
        let sent = self.sent.load(Ordering::Relaxed);
        let rejected = self.rejected.load(Ordering::Relaxed);
        SendReport {
            sent,
            rejected,
            dropped: made.saturating_sub(sent + rejected),
        }
    }
}

pub struct OtlpSink {
    exporter: LogExporter,
    queue: Option<mpsc::Sender<Queued>>,
    shared: Arc<Shared>,
    procfs: ProcFs,
    /// Containers by live process, and by cgroup id.
    by_pid: HashMap<u32, Option<ContainerIds>>,
    by_cgroup: HashMap<u64, Option<ContainerIds>>,
    logs: Vec<ProcessLog>,
    task: JoinHandle<()>,
}

impl OtlpSink {
    /// Starts the sending task. The records carry command lines as the model holds them:
    /// already redacted at capture.
    pub fn start(config: &Otlp, metrics: Metrics) -> Result<OtlpSink> {
        let uri: Uri = format!("{}/v1/logs", config.endpoint)
            .parse()
            .map_err(|e| anyhow!("OTLP endpoint {}: {e}", config.endpoint))?;
        let (sender, receiver) = mpsc::channel(config.queue);
        let shared = Arc::new(Shared {
            made: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            unannounced: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
            metrics,
        });
        let selection = match config.events {
            OtlpEvents::Lineage => Selection::Lineage,
            OtlpEvents::All => Selection::All,
        };
        let host = HostResource {
            host_name: host::hostname(),
            host_id: std::fs::read_to_string("/etc/machine-id")
                .ok()
                .map(|id| id.trim().to_owned())
                .filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_hexdigit())),
        };
        let sender_task = Sender {
            client: Client::builder(TokioExecutor::new()).build_http(),
            uri,
            headers: config.headers.clone(),
            timeout: config.timeout,
            host,
            shared: shared.clone(),
            announcer: LogExporter::new(selection),
        };
        Ok(OtlpSink {
            exporter: LogExporter::new(selection),
            queue: Some(sender),
            shared,
            procfs: ProcFs::host(host::clock_tick_ns()),
            by_pid: HashMap::new(),
            by_cgroup: HashMap::new(),
            logs: Vec::new(),
            task: tokio::spawn(sender_task.run(receiver)),
        })
    }

    /// The container `pid` runs in, read from `/proc` once per cgroup: short-lived processes
    /// come by the thousand a second, from a few cgroups.
    /// `fresh`: read `/proc` whatever the caches say, for a process that may have moved since
    /// its fork (a container's first process is forked in the runtime's cgroup, then moved
    /// and exec'd) or was only in the start-up scan.
    fn container_of(&mut self, pid: u32, model: &Model, fresh: bool) -> Option<ContainerIds> {
        if !fresh && let Some(known) = self.by_pid.get(&pid) {
            return known.clone();
        }
        if self.by_pid.len() >= CONTAINER_CACHE {
            self.by_pid.clear();
        }
        if self.by_cgroup.len() >= CONTAINER_CACHE {
            self.by_cgroup.clear();
        }
        let procfs = &self.procfs;
        let read = || {
            procfs
                .cgroup_path(pid)
                .and_then(|path| containers::from_cgroup_path(&path))
        };
        let cgroup = model.live(pid).and_then(|process| process.cgroup_id);
        let ids = match cgroup {
            Some(cgroup) if !fresh => self.by_cgroup.entry(cgroup).or_insert_with(read).clone(),
            _ => read(),
        };
        self.by_pid.insert(pid, ids.clone());
        ids
    }

    /// Closes the queue and waits, at most `budget`, for the task to send what is left.
    pub async fn shut_down(mut self, budget: Duration) -> SendReport {
        self.shared.stopping.store(true, Ordering::Relaxed);
        self.queue = None;
        if tokio::time::timeout(budget, &mut self.task).await.is_err() {
            // What is still queued is dropped with the task.
            self.task.abort();
        }
        self.shared.report()
    }
}

impl Sink for OtlpSink {
    fn header(&mut self, header: &TraceHeader) -> std::io::Result<()> {
        self.exporter.header(header);
        Ok(())
    }

    fn event(&mut self, event: &Event, model: &Model) -> std::io::Result<()> {
        self.exporter.records(event, model, &mut self.logs);
        // Where a process runs is settled after its exec, and known for one found at start
        // only while it lives: read then, for the processes whose records go out.
        let fresh = match event {
            Event::Exec(e) => Some(e.pid),
            Event::Snapshot(e) if self.exporter.follows(event.key()) => {
                self.container_of(e.pid, model, true);
                None
            }
            _ => None,
        };
        let logs = std::mem::take(&mut self.logs);
        for log in logs {
            let container = log
                .pid
                .and_then(|pid| self.container_of(pid, model, fresh == Some(pid)));
            let Some(queue) = &self.queue else { break };
            self.shared.made.fetch_add(1, Ordering::Relaxed);
            if queue.try_send((container, log.record)).is_err() {
                self.shared.lose(1, true);
            }
        }
        if let Event::Exit(exit) = event {
            self.by_pid.remove(&exit.pid);
        }
        Ok(())
    }

    fn flush(&mut self, _model: &Model, _status: &Status) -> std::io::Result<()> {
        Ok(())
    }
}

struct Sender {
    client: Client<HttpConnector, Full<Bytes>>,
    uri: Uri,
    headers: BTreeMap<String, String>,
    timeout: Duration,
    host: HostResource,
    shared: Arc<Shared>,
    announcer: LogExporter,
}

enum Outcome {
    Accepted { rejected: u64 },
    Refused(StatusCode),
    Retry(String),
}

impl Sender {
    async fn run(mut self, mut queue: mpsc::Receiver<Queued>) {
        let mut batch: Vec<Queued> = Vec::with_capacity(BATCH_RECORDS);
        loop {
            let first = if self.shared.unannounced.load(Ordering::Relaxed) > 0 {
                // A loss to announce does not wait for the next record.
                match tokio::time::timeout(BATCH_DELAY, queue.recv()).await {
                    Ok(Some(record)) => Some(record),
                    Ok(None) => break,
                    Err(_) => None,
                }
            } else {
                match queue.recv().await {
                    Some(record) => Some(record),
                    None => break,
                }
            };
            let Some(first) = first else {
                self.send(&mut batch).await;
                continue;
            };
            batch.push(first);
            let gathering = tokio::time::sleep(BATCH_DELAY);
            tokio::pin!(gathering);
            while batch.len() < BATCH_RECORDS {
                tokio::select! {
                    record = queue.recv() => match record {
                        Some(record) => batch.push(record),
                        None => break,
                    },
                    () = &mut gathering => break,
                }
            }
            self.send(&mut batch).await;
        }
        if self.shared.unannounced.load(Ordering::Relaxed) > 0 {
            // The last word: what was dropped, if the collector takes even that.
            self.send(&mut batch).await;
        }
    }

    /// Sends `batch` (emptied), after a data-loss record if records were dropped.
    async fn send(&mut self, batch: &mut Vec<Queued>) {
        let announced = self.shared.unannounced.swap(0, Ordering::Relaxed);
        if announced > 0 {
            let record = self.announcer.export_loss(host::wall_clock_ns(), announced);
            batch.insert(0, (None, record));
        }
        let records = batch.len() as u64;
        // The exporter's records in it; the announcement is this task's own.
        let data = records - u64::from(announced > 0);
        let body = Bytes::from(tracer_otlp::encode(&tracer_otlp::request(
            &self.host,
            std::mem::take(batch),
        )));
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match self.post(body.clone()).await {
                Outcome::Accepted { rejected } => {
                    let rejected = rejected.min(data);
                    let shared = &self.shared;
                    shared.sent.fetch_add(data - rejected, Ordering::Relaxed);
                    shared.rejected.fetch_add(rejected, Ordering::Relaxed);
                    let metrics = &shared.metrics;
                    metrics.count_export(EXPORTER, ExportResult::Sent, data - rejected);
                    metrics.count_export(EXPORTER, ExportResult::Rejected, rejected);
                    return;
                }
                Outcome::Refused(status) => {
                    eprintln!(
                        "tracer agent: the collector refused {records} log records ({status}): not retried"
                    );
                    self.shared.rejected.fetch_add(data, Ordering::Relaxed);
                    self.shared
                        .metrics
                        .count_export(EXPORTER, ExportResult::Rejected, data);
                    // The announcement went down with the batch: it is owed again.
                    self.shared
                        .unannounced
                        .fetch_add(announced, Ordering::Relaxed);
                    return;
                }
                Outcome::Retry(why) => {
                    let stopping = self.shared.stopping.load(Ordering::Relaxed);
                    if attempt == ATTEMPTS || (stopping && attempt >= 2) {
                        eprintln!(
                            "tracer agent: {records} log records dropped after {attempt} attempts: {why}"
                        );
                        break;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        // Given up: counted, and announced when the collector answers again. The
        // announcement itself, if it was in this batch, is owed again.
        self.shared.lose(data, false);
        if announced > 0 {
            self.shared
                .unannounced
                .fetch_add(announced, Ordering::Relaxed);
        }
    }

    async fn post(&self, body: Bytes) -> Outcome {
        let mut request = Request::post(self.uri.clone())
            .header("content-type", "application/x-protobuf")
            .header("user-agent", concat!("tracer/", env!("CARGO_PKG_VERSION")));
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let request = match request.body(Full::new(body)) {
            Ok(request) => request,
            Err(e) => return Outcome::Retry(format!("cannot build the request: {e}")),
        };
        let exchange = async {
            let response = self.client.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        let (status, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => return Outcome::Retry(format!("no answer within {:?}", self.timeout)),
            Ok(Err(e)) => return Outcome::Retry(format!("cannot reach {}: {e}", self.uri)),
            Ok(Ok(answer)) => answer,
        };
        if status.is_success() {
            let rejected = ExportLogsServiceResponse::decode(body.as_ref())
                .ok()
                .and_then(|answer| answer.partial_success)
                .map_or(0, |partial| partial.rejected_log_records.max(0) as u64);
            return Outcome::Accepted { rejected };
        }
        // Per the OTLP specification: these may succeed later, the rest never will.
        let retryable =
            matches!(status.as_u16(), 429 | 502 | 503 | 504) || status.is_server_error();
        if retryable {
            Outcome::Retry(format!("the collector answered {status}"))
        } else {
            Outcome::Refused(status)
        }
    }
}
