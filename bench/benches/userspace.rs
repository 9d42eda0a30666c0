//! The userspace side of the tracer on one core, without the kernel: the ingest step with the
//! model and the analysis, the same with the trace recorder behind it, and one frame of the
//! full-screen tree.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tracer::sinks::RecordSink;
use tracer::tui::draw::Screen;
use tracer::tui::feed::Feed;
use tracer::tui::view::View;
use tracer_bench::{HostStream, snapshot};
use tracer_core::analysis::Analyzer;
use tracer_core::event::Event;
use tracer_core::ingest::NullSink;
use tracer_core::ingest::{Pipeline, Sink};
use tracer_core::model::Model;
use tracer_core::roles::Rules;

const TICK_NS: u64 = 10_000_000;
/// When the frame's processes were seen, in ns since boot.
const TS: u64 = 1_000_000_000;

fn pipeline<S: Sink>(sink: S) -> Pipeline<S> {
    Pipeline::new(Model::new(TICK_NS), Analyzer::new(Rules::builtin()), sink)
}

/// Applies every event to a fresh pipeline per iteration; only the applying is timed.
fn time_ingest<S: Sink>(events: &[Event], iterations: u64, sink: impl Fn() -> S) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iterations {
        let mut pipeline = pipeline(sink());
        let started = Instant::now();
        for event in events {
            pipeline.apply(black_box(event)).expect("ingest");
        }
        total += started.elapsed();
    }
    total
}

fn ingest(c: &mut Criterion) {
    let events: Vec<Event> = HostStream {
        alive: 1_000,
        churn: 100_000,
        daemonic_every: 100,
    }
    .events()
    .collect();
    let dir = std::env::temp_dir().join(format!("tracer-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let trace = dir.join("bench.jsonl");

    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.sample_size(10);
    group.bench_function("model_and_analysis", |b| {
        b.iter_custom(|iterations| time_ingest(&events, iterations, || NullSink));
    });
    group.bench_function("model_analysis_and_trace_file", |b| {
        b.iter_custom(|iterations| {
            time_ingest(&events, iterations, || {
                RecordSink::new(tracer::files::create_trace(&trace).expect("trace file"))
            })
        });
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

fn tui_frame(c: &mut Criterion) {
    let mut pipeline = pipeline(NullSink);
    let mut feed = Feed::default();
    let mut apply = |event: Event| {
        pipeline.apply(&event).expect("ingest");
        feed.observe(&event, &pipeline.model);
    };
    apply(snapshot(TS, 1, 0, &["/sbin/init"]));
    for pid in 2..10_002u32 {
        let parent = if pid < 102 { 1 } else { 2 + (pid % 100) };
        apply(snapshot(
            TS,
            pid,
            parent,
            &[&format!("worker {pid} --some-flag")],
        ));
    }
    let mut view = View::default();
    let mut terminal = Terminal::new(TestBackend::new(200, 60)).expect("test terminal");
    c.bench_function("tui_frame_10000_processes", |b| {
        b.iter(|| {
            let screen = Screen {
                name: "tracer watch",
                status: String::new(),
                model: &pipeline.model,
                feed: &feed,
                now: 5_000_000_000,
                started: TS,
                timeline: None,
            };
            tracer::tui::render(&mut terminal, &mut view, &screen).expect("frame");
        });
    });
}

criterion_group!(benches, ingest, tui_frame);
criterion_main!(benches);
