//! No input makes the trace reader (and the replay behind `replay`, `report` and `export`)
//! panic, hang or hold more than a line in memory: it is fed random bytes, mutations of real
//! traces, and the corpus in `tests/corpus/trace`, which every run replays. A failing case
//! proptest finds is saved beside this file and replayed first on later runs: add it to the
//! corpus once fixed.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use tracer_core::analysis::Analyzer;
use tracer_core::event::Event;
use tracer_core::ingest::{NullSink, Pipeline};
use tracer_core::model::Model;
use tracer_core::roles::Rules;
use tracer_core::trace::TraceReader;

fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/trace");
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            (path, bytes)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "the trace corpus is there");
    files
}

/// What reading gave: events, and whether it ended on an error.
struct Read {
    events: Vec<Event>,
    error: Option<String>,
    skipped: u64,
}

fn read(bytes: &[u8], lenient: bool) -> Read {
    let reader = match TraceReader::new(Cursor::new(bytes), "fuzz".into()) {
        Ok(opened) => opened,
        Err(error) => {
            return Read {
                events: Vec::new(),
                error: Some(error.to_string()),
                skipped: 0,
            };
        }
    };
    let mut reader = reader.lenient(lenient);
    let mut events = Vec::new();
    let mut error = None;
    for event in &mut reader {
        match event {
            Ok(event) => events.push(event),
            Err(e) => {
                error = Some(e.to_string());
                break;
            }
        }
    }
    Read {
        events,
        error,
        skipped: reader.skipped.lines,
    }
}

/// Reads strictly and leniently, checks what must hold, and replays what was read through
/// the model and the analysis, as `replay --lenient` would.
fn check_trace(bytes: &[u8]) {
    let strict = read(bytes, false);
    let lenient = read(bytes, true);
    if let Some(error) = &strict.error {
        assert!(error.starts_with("fuzz"), "errors name the file: {error}");
        assert!(!error.contains('\n'), "errors are one line: {error:?}");
    }
    // Leniency only ever adds events, and fails only where strict reading fails too.
    assert!(lenient.events.len() >= strict.events.len());
    assert_eq!(lenient.events[..strict.events.len()], strict.events[..]);
    if lenient.error.is_some() {
        assert!(strict.error.is_some());
    }
    if strict.error.is_none() {
        assert_eq!(lenient.skipped, 0);
    }
    let mut pipeline = Pipeline::new(
        Model::new(10_000_000),
        Analyzer::new(Rules::builtin()),
        NullSink,
    );
    for event in lenient.events.iter().filter(|e| !e.is_derived()) {
        pipeline.apply(event).unwrap();
    }
    pipeline.finish_analysis().unwrap();
}

#[test]
fn the_trace_corpus_reads_without_panics() {
    for (path, bytes) in corpus() {
        eprintln!("{}", path.display());
        check_trace(&bytes);
    }
}

#[test]
fn good_corpus_traces_read_strictly() {
    for name in [
        "double-fork-and-kill.jsonl",
        "airflow-supervisor-killed.jsonl",
    ] {
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/corpus/trace")
                .join(name),
        )
        .unwrap();
        let strict = read(&bytes, false);
        assert_eq!(strict.error, None, "{name}");
        assert!(strict.events.len() > 20, "{name}");
    }
}

/// A change to a trace: what a torn write, a bad disk or a hostile editor does.
#[derive(Clone, Debug)]
enum Mutation {
    Truncate(usize),
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    /// Replace a JSON number with another token.
    Renumber(usize, &'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        (any::<usize>(), any::<u8>()).prop_map(|(at, bit)| Mutation::Flip(at, bit)),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete(at, len)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (
            any::<usize>(),
            prop::sample::select(vec![
                "-1",
                "18446744073709551616",
                "1e999",
                "0.5",
                "\"7\"",
                "null",
                "[]",
                "{}",
                "true",
            ])
        )
            .prop_map(|(at, token)| Mutation::Renumber(at, token)),
    ]
}

fn apply(mut bytes: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    let len = bytes.len().max(1);
    match mutation {
        Mutation::Truncate(at) => bytes.truncate(at % len),
        Mutation::Flip(at, bits) => {
            if !bytes.is_empty() {
                bytes[at % len] ^= bits;
            }
        }
        Mutation::Insert(at, new) => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, new.iter().copied());
        }
        Mutation::Delete(at, count) => {
            let at = at % len;
            let end = (at + count).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        Mutation::DuplicateLine(line) | Mutation::SwapLines(line, _) => {
            let mut lines: Vec<Vec<u8>> =
                bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            let count = lines.len();
            let a = line % count;
            match mutation {
                Mutation::SwapLines(_, other) => lines.swap(a, other % count),
                _ => {
                    let copy = lines[a].clone();
                    lines.insert(a, copy);
                }
            }
            bytes = lines.join(&b'\n');
        }
        Mutation::Renumber(nth, token) => {
            let numbers: Vec<(usize, usize)> = {
                let mut spans = Vec::new();
                let mut start = None;
                for (i, b) in bytes.iter().enumerate() {
                    match (b.is_ascii_digit(), start) {
                        (true, None) => start = Some(i),
                        (false, Some(s)) => {
                            spans.push((s, i));
                            start = None;
                        }
                        _ => {}
                    }
                }
                spans
            };
            if !numbers.is_empty() {
                let (start, end) = numbers[nth % numbers.len()];
                bytes.splice(start..end, token.bytes());
            }
        }
    }
    bytes
}

fn seed_traces() -> Vec<Vec<u8>> {
    corpus().into_iter().map(|(_, bytes)| bytes).collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_bytes_never_panic_the_reader(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        check_trace(&bytes);
    }

    #[test]
    fn mutated_traces_never_panic_the_reader_or_the_model(
        seed in prop::sample::select(seed_traces()),
        mutations in proptest::collection::vec(mutation(), 1..6),
    ) {
        let bytes = mutations.iter().fold(seed, apply);
        check_trace(&bytes);
    }
}
