use super::*;
use tracer_core::analysis::Analyzer;
use tracer_core::fixtures;
use tracer_core::ingest::{Pipeline, Sink};
use tracer_core::roles::Rules;

/// Collects what the exporter makes of every event the pipeline passes.
struct Collect {
    exporter: LogExporter,
    logs: Vec<ProcessLog>,
}

impl Sink for Collect {
    fn header(&mut self, header: &TraceHeader) -> std::io::Result<()> {
        self.exporter.header(header);
        Ok(())
    }

    fn event(&mut self, event: &Event, model: &Model) -> std::io::Result<()> {
        self.exporter.records(event, model, &mut self.logs);
        Ok(())
    }
}

fn attribute<'a>(record: &'a LogRecord, key: &str) -> Option<&'a any_value::Value> {
    record
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text<'a>(record: &'a LogRecord, key: &str) -> Option<&'a str> {
    match attribute(record, key)? {
        any_value::Value::StringValue(text) => Some(text),
        _ => None,
    }
}

fn run(selection: Selection) -> Vec<ProcessLog> {
    let mut pipeline = Pipeline::new(
        Model::new(10_000_000),
        Analyzer::new(Rules::builtin()),
        Collect {
            exporter: LogExporter::new(selection),
            logs: Vec::new(),
        },
    );
    pipeline.header(&fixtures::header()).unwrap();
    let (init, main, worker, child, other) = (
        fixtures::key(1, 0),
        fixtures::key(100, 10),
        fixtures::key(200, 20),
        fixtures::key(300, 3_000_000_000),
        fixtures::key(400, 3_000_000_000),
    );
    let second = fixtures::key(150, 2_000_000_000);
    let events = [
        fixtures::snapshot(1, init, 0, "init"),
        fixtures::snapshot(
            1,
            main,
            1,
            "[celeryd: w1@host:MainProcess] -active- (worker)",
        ),
        fixtures::snapshot(1, worker, 100, "[celeryd: w1@host:ForkPoolWorker-1]"),
        // A second worker started by init: init becomes the lineage of a process with a role.
        fixtures::fork(2_000_000_000, second, init, "celery"),
        fixtures::rename(
            2_100_000_000,
            second,
            "[celeryd: w2@host:MainProcess] -active- (worker)",
        ),
        fixtures::fork(3_000_000_000, child, worker, "celery"),
        fixtures::exec(
            3_100_000_000,
            child,
            200,
            "/usr/bin/sleep",
            &["sleep", "60"],
        ),
        // Unrelated to any role: not exported under the lineage selection, though its
        // parent (init) is the lineage of a process with a role.
        fixtures::fork(3_000_000_000, other, init, "cron"),
        fixtures::exit(3_200_000_000, other, 1, (Some(0), None), 1),
        fixtures::signal(3_300_000_000, worker, main, 9),
        fixtures::exit(3_400_000_000, worker, 100, (None, Some(9)), 1),
    ];
    for event in &events {
        pipeline.apply(event).unwrap();
    }
    pipeline.sink.logs
}

#[test]
fn findings_and_the_lifecycle_of_processes_that_matter() {
    let logs = run(Selection::Lineage);
    let names: Vec<&str> = logs.iter().map(|l| l.record.event_name.as_str()).collect();
    assert!(names.contains(&"lineage.daemonic_spawn"), "{names:?}");
    assert!(names.contains(&"lineage.orphaned"), "{names:?}");
    assert!(names.contains(&"lineage.killed"), "{names:?}");
    assert!(names.contains(&"process.start"));
    assert!(names.contains(&"process.exec"));
    assert!(
        !logs.iter().any(|l| l.pid == Some(400)),
        "the unrelated process is not exported"
    );
    let all = run(Selection::All);
    assert!(all.iter().any(|l| l.pid == Some(400)), "but is with all");

    let spawn = &logs
        .iter()
        .find(|l| l.record.event_name == "lineage.daemonic_spawn")
        .unwrap()
        .record;
    assert_eq!(spawn.severity_text, "WARN");
    assert_eq!(
        attribute(spawn, "process.pid"),
        Some(&any_value::Value::IntValue(300))
    );
    assert_eq!(
        text(spawn, "lineage.process_id"),
        Some(format!("{}/300/3000000000", fixtures::header().boot_id).as_str())
    );
    assert_eq!(text(spawn, "celery.worker.hostname"), Some("w1@host"));
    assert_eq!(
        attribute(spawn, "lineage.uncertain"),
        Some(&any_value::Value::BoolValue(false))
    );
    assert!(spawn.time_unix_nano > fixtures::header().wall_clock_ns);

    let exec = &logs
        .iter()
        .find(|l| l.record.event_name == "process.exec")
        .unwrap()
        .record;
    assert_eq!(
        text(exec, "process.executable.path"),
        Some("/usr/bin/sleep")
    );
    let Some(any_value::Value::ArrayValue(args)) = attribute(exec, "process.command_args") else {
        panic!("{exec:?}")
    };
    assert_eq!(args.values.len(), 2);
    assert!(text(exec, "lineage.parent_process_id").is_some_and(|id| id.ends_with("/200/20")));
    assert!(
        attribute(exec, "lineage.ancestors").is_none(),
        "only the start has them"
    );
    let start = &logs
        .iter()
        .find(|l| l.record.event_name == "process.start" && l.pid == Some(300))
        .unwrap()
        .record;
    let Some(any_value::Value::ArrayValue(ancestors)) = attribute(start, "lineage.ancestors")
    else {
        panic!("{start:?}")
    };
    assert!(!ancestors.values.is_empty());
}

#[test]
fn requests_group_by_container_and_decode_as_otlp() {
    let logs = run(Selection::Lineage);
    let pod = ContainerIds {
        container_id: Some("ab".repeat(32)),
        pod_uid: Some("8d4c2f9e-1b2a-4c3d-9e8f-7a6b5c4d3e2f".into()),
    };
    let batch: Vec<(Option<ContainerIds>, LogRecord)> = logs
        .into_iter()
        .map(|l| {
            let container = (l.pid == Some(300)).then(|| pod.clone());
            (container, l.record)
        })
        .collect();
    let count = batch.len();
    let host = HostResource {
        host_name: "worker-7".into(),
        host_id: Some("0123456789abcdef0123456789abcdef".into()),
    };
    let bytes = encode(&request(&host, batch));
    let decoded = ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded.resource_logs.len(), 2, "the host's and the pod's");
    let records: usize = decoded
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    assert_eq!(records, count);
    let resource_attributes = |index: usize| -> Vec<(String, String)> {
        decoded.resource_logs[index]
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(v) => Some((kv.key.clone(), v.clone())),
                _ => None,
            })
            .collect()
    };
    let pods: Vec<_> = (0..2).map(resource_attributes).collect();
    assert!(
        pods.iter()
            .all(|a| a.contains(&("service.name".into(), "tracer".into())))
    );
    assert!(
        pods.iter()
            .all(|a| a.contains(&("host.name".into(), "worker-7".into())))
    );
    assert!(
        pods.iter()
            .any(|a| a.contains(&("k8s.pod.uid".into(), pod.pod_uid.clone().unwrap())))
    );
}

#[test]
fn dates_are_rfc3339() {
    assert_eq!(
        rfc3339(1_764_000_000_123_456_789),
        "2025-11-24T16:00:00.123456789Z"
    );
}
