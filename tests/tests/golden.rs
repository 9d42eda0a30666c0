//! The offline commands' exact output on every corpus trace, the real-world recordings among
//! them, against the golden files in `tests/golden/`: replay, report and every export must
//! stay byte for byte what they were unless a change means them to differ. No kernel needed.
//!
//! After a change that is meant to alter an output, `TRACER_UPDATE_GOLDEN=1 cargo test -p
//! tracer-tests --test golden` writes the new outputs; the diff of `tests/golden/` is then part
//! of the change, for review.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

const TRACER: &str = env!("CARGO_BIN_EXE_tracer-e2e");

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tracer-core/tests/corpus/trace")
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden")
}

/// What each trace goes through. File names are relative (the commands run in the corpus
/// directory), so the outputs do not depend on where the checkout is.
const COMMANDS: &[&[&str]] = &[
    &["replay", "{}"],
    &["replay", "{}", "--json"],
    &["replay", "{}", "--findings"],
    &["report", "{}"],
    &["report", "{}", "--json"],
    &["export", "{}", "--format", "perfetto"],
    &["export", "{}", "--format", "dot"],
    &["export", "{}", "--format", "jsonl"],
    &["replay", "{}", "--lenient", "--json"],
    &["report", "{}", "--lenient", "--json"],
    // Times from the start, the end and the findings, and a subtree.
    &["replay", "{}", "--at", "+1s", "--json"],
    &["replay", "{}", "--at", "-1s", "--json"],
    &["replay", "{}", "--at", "finding:1", "--json"],
    &[
        "export",
        "{}",
        "--format",
        "jsonl",
        "--from",
        "finding:1-1s",
    ],
    &[
        "export", "{}", "--format", "perfetto", "--from", "+100ms", "--to", "-100ms",
    ],
    &["export", "{}", "--format", "dot", "--pid", "1"],
    &[
        "export",
        "{}",
        "--format",
        "jsonl",
        "--pid",
        "1",
        "--to",
        "finding:2",
    ],
];

fn outputs(trace: &str) -> String {
    let mut text = String::new();
    for command in COMMANDS {
        let args: Vec<String> = command.iter().map(|a| a.replace("{}", trace)).collect();
        let output = Command::new(TRACER)
            .args(&args)
            .current_dir(corpus())
            .env("NO_COLOR", "1")
            .output()
            .expect("run tracer");
        let _ = writeln!(
            text,
            "=== tracer {}\n--- exit {}\n--- stdout\n{}--- stderr\n{}",
            args.join(" "),
            output
                .status
                .code()
                .map_or("signal".into(), |c| c.to_string()),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
    text
}

#[test]
fn every_offline_output_of_every_corpus_trace_is_unchanged() {
    let update = std::env::var_os("TRACER_UPDATE_GOLDEN").is_some();
    let mut traces: Vec<String> = std::fs::read_dir(corpus())
        .expect("the corpus")
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".jsonl"))
        .collect();
    traces.sort();
    assert!(
        traces.iter().any(|t| t.starts_with("recorded-")),
        "the corpus holds real-world recordings"
    );
    let mut changed = Vec::new();
    for trace in &traces {
        let golden = golden_dir().join(trace.replace(".jsonl", ".out"));
        let actual = outputs(trace);
        if update {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&golden, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&golden)
            .unwrap_or_else(|_| panic!("no golden output {}", golden.display()));
        if actual != expected {
            let first = actual
                .lines()
                .zip(expected.lines())
                .position(|(a, e)| a != e)
                .unwrap_or(actual.lines().count().min(expected.lines().count()));
            changed.push(format!(
                "{trace}: line {} differs:\n  now:    {}\n  golden: {}",
                first + 1,
                actual.lines().nth(first).unwrap_or("(end)"),
                expected.lines().nth(first).unwrap_or("(end)"),
            ));
        }
    }
    assert!(
        changed.is_empty(),
        "outputs changed (TRACER_UPDATE_GOLDEN=1 rewrites them if meant):\n{}",
        changed.join("\n")
    );
}
