//! `tracer agent`: the tracer as a service. It captures until SIGTERM or SIGINT, feeds the
//! Prometheus metrics ([`http`] serves them with `/healthz`), writes rotating traces to a
//! directory ([`rotation`]) and sends findings and lifecycle events to an OpenTelemetry
//! Collector ([`otlp`]); on the stop it drains the kernel's ring, flushes every exporter within
//! a bounded time and exits 0.

pub mod config;
pub mod http;
pub mod otlp;
pub mod rotation;

use std::sync::Arc;

use anyhow::{Result, anyhow};
use tokio::net::TcpListener;
use tracer_core::analysis::Analyzer;
use tracer_core::event::Event;
use tracer_core::ingest::{Pipeline, Sink, Status};
use tracer_core::model::Model;
use tracer_core::privacy::Privacy;
use tracer_core::trace::TraceHeader;
use tracer_live::host;
use tracer_live::live::{self, LiveOptions};
use tracer_live::{DEFAULT_RING_BYTES, ProbeOptions};
use tracer_metrics::{Metrics, MetricsSink};

use crate::files::load_rules;
use config::AgentConfig;
use http::{Endpoint, Health};
use otlp::OtlpSink;
use rotation::{Clocks, RotatingRecorder};

/// Every sink of the agent, fed alike.
struct AgentSink {
    metrics: MetricsSink,
    health: Arc<Health>,
    recorder: Option<RotatingRecorder>,
    otlp: Option<OtlpSink>,
}

impl AgentSink {
    /// A trace directory that cannot be written (a full disk, say) stops the traces, not the
    /// agent: capture, metrics and the export go on, and the error is said once.
    fn recording(&mut self, write: impl FnOnce(&mut RotatingRecorder) -> std::io::Result<()>) {
        let Some(recorder) = &mut self.recorder else {
            return;
        };
        if let Err(error) = write(recorder) {
            eprintln!(
                "tracer agent: error: traces stopped, the trace directory cannot be written ({error}); capture, metrics and OTLP go on: free space and restart the agent"
            );
            self.recorder = None;
        }
    }
}

impl Sink for AgentSink {
    fn header(&mut self, header: &TraceHeader) -> std::io::Result<()> {
        self.recording(|recorder| recorder.header(header));
        if let Some(otlp) = &mut self.otlp {
            otlp.header(header)?;
        }
        Ok(())
    }

    fn event(&mut self, event: &Event, model: &Model) -> std::io::Result<()> {
        self.metrics.event(event, model)?;
        self.recording(|recorder| recorder.event(event, model));
        if let Some(otlp) = &mut self.otlp {
            otlp.event(event, model)?;
        }
        Ok(())
    }

    fn flush(&mut self, model: &Model, status: &Status) -> std::io::Result<()> {
        self.metrics.flush(model, status)?;
        self.recording(|recorder| recorder.flush(model, status));
        if let Some(otlp) = &mut self.otlp {
            otlp.flush(model, status)?;
        }
        self.health.progressed();
        Ok(())
    }

    fn finish(&mut self, model: &Model, status: &Status) -> std::io::Result<()> {
        self.metrics.finish(model, status)?;
        self.recording(|recorder| recorder.finish(model, status));
        if let Some(otlp) = &mut self.otlp {
            otlp.finish(model, status)?;
        }
        Ok(())
    }
}

fn live_options(config: &AgentConfig) -> Result<LiveOptions> {
    let ring_bytes = match &config.ring_buffer {
        Some(text) => crate::cli::ring_bytes(text).map_err(|e| anyhow!("ring_buffer: {e}"))?,
        None => DEFAULT_RING_BYTES,
    };
    if let Some(ms) = config.batch_delay_ms
        && ms > 1000
    {
        return Err(anyhow!(
            "batch_delay_ms: {ms} is too long: give 0 to 1000 milliseconds"
        ));
    }
    let defaults = LiveOptions::default();
    Ok(LiveOptions {
        probes: ProbeOptions {
            ring_bytes,
            ..ProbeOptions::default()
        },
        coalesce: config
            .batch_delay_ms
            .map_or(defaults.coalesce, std::time::Duration::from_millis),
        privacy: Privacy::new(&config.redact, &config.capture_env)?,
        python_reads_per_second: config
            .python_inspect
            .then_some(tracer_live::python::DEFAULT_READS_PER_SECOND),
        ..defaults
    })
}

pub async fn run(config: AgentConfig, stop: impl std::future::Future<Output = ()>) -> Result<()> {
    let options = live_options(&config)?;
    let analyzer = Analyzer::new(load_rules(config.rules.as_deref())?);
    let metrics = Metrics::new();
    let health = Arc::new(Health::default());
    // Bound before capture starts: a taken port is a clear error, not a half-started agent.
    let listener = TcpListener::bind(config.listen).await.map_err(|e| {
        anyhow!(
            "cannot listen on {}: {e}: give another address with --listen",
            config.listen
        )
    })?;
    // The port the kernel picked when asked for 0.
    let listen = listener.local_addr().unwrap_or(config.listen);
    let server = tokio::spawn(http::serve(
        listener,
        Endpoint {
            metrics: metrics.clone(),
            health: health.clone(),
        },
    ));
    let clocks = Clocks {
        boottime_ns: host::boottime_ns,
        wall_clock_ns: host::wall_clock_ns,
    };
    let recorder = config
        .trace_dir
        .as_deref()
        .map(|dir| RotatingRecorder::new(dir, config.rotation.clone(), clocks, metrics.clone()))
        .transpose()?;
    let otlp = config
        .otlp
        .as_ref()
        .map(|otlp| OtlpSink::start(otlp, metrics.clone()))
        .transpose()?;
    let mut pipeline = Pipeline::new(
        Model::new(host::clock_tick_ns()),
        analyzer,
        AgentSink {
            metrics: MetricsSink::new(metrics.clone(), host::boottime_ns),
            health: health.clone(),
            recorder,
            otlp,
        },
    );
    let traces = config
        .trace_dir
        .as_ref()
        .map_or("no traces (--trace-dir)".to_owned(), |dir| {
            format!("traces in {}", dir.display())
        });
    let otlp_note = config
        .otlp
        .as_ref()
        .map_or("no OTLP export".to_owned(), |o| {
            format!("OTLP logs to {}/v1/logs", o.endpoint)
        });
    let result = live::run(&options, &mut pipeline, stop, |ready| {
        health.capturing();
        eprintln!(
            "tracer agent: capturing, {} processes in the snapshot, {}; metrics on http://{listen}/metrics; {traces}; {otlp_note}; SIGTERM stops",
            ready.snapshot, ready.privileges
        );
    })
    .await;
    health.stopping();
    let flushed = match pipeline.sink.otlp.take() {
        Some(otlp) => Some(otlp.shut_down(config.shutdown_timeout).await),
        None => None,
    };
    server.abort();
    let summary = result?;
    let exported = flushed.map_or(String::new(), |report| format!("; OTLP: {report}"));
    eprintln!(
        "tracer agent: stopped after {} events, {}; kernel-to-trace latency {}{exported}",
        summary.events,
        crate::cli::lost_note(&summary),
        summary.latency
    );
    Ok(())
}
