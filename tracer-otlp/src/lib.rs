//! OpenTelemetry logs of the tracer: one log record per finding and per lifecycle event of
//! the processes that matter, in the official OTLP protobuf types
//! ([`opentelemetry_proto`]), ready for `POST /v1/logs` to an OpenTelemetry Collector.
//!
//! [`LogExporter`] turns pipeline events into [`ProcessLog`]s; [`request`] groups a batch by
//! container into an `ExportLogsServiceRequest`; [`containers`] reads container and pod ids
//! from a cgroup path. Sending is the caller's (the agent's): this crate does no I/O.
//!
//! Attribute names follow the OpenTelemetry semantic conventions for processes
//! (`process.pid`, `process.parent_pid`, `process.creation.time`, `process.executable.path`,
//! `process.command_args`, `process.exit.code`) and Airflow's own names for its identity
//! (`airflow.dag_id`, `airflow.task_id`, ...); the tracer's own are under `lineage.`.

pub mod containers;

use std::collections::HashSet;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message as _;
use tracer_core::event::{Event, Finding, FindingKind, ProcessKey, ProcessSketch};
use tracer_core::model::{Model, Process};
use tracer_core::roles::Identity;
use tracer_core::sanitize::sanitize;
use tracer_core::trace::TraceHeader;
use tracer_core::words::exit_description;

pub use containers::ContainerIds;

/// The tracer's version, as `service.version` and the scope's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Which lifecycle events become records (findings always do).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selection {
    /// Processes with a role, their lineage (ancestors) and their descendants.
    Lineage,
    /// Every process.
    All,
}

/// A record and the process it is about, whose container the caller looks up.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessLog {
    pub record: LogRecord,
    /// The process the record is about, for its container (None: the tracer's own records).
    pub pid: Option<u32>,
}

/// Turns the pipeline's events into log records.
pub struct LogExporter {
    selection: Selection,
    boot_id: String,
    /// `CLOCK_BOOTTIME` and wall clock at the same instant, to date kernel timestamps.
    clock_base: (u64, u64),
    /// Live processes whose lifecycle matters (those with a role, their ancestors and their
    /// descendants), remembered because a process's exit reaches the exporter after the tree
    /// has let it go.
    mattering: HashSet<ProcessKey>,
    /// Those of them that are ancestors of a process with a role, not in its subtree: their
    /// lives matter, their other children's do not (pid 1 is everybody's ancestor).
    ancestors_only: HashSet<ProcessKey>,
}

fn string(value: impl Into<String>) -> AnyValue {
    AnyValue {
        value: Some(any_value::Value::StringValue(value.into())),
    }
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

fn kv_str(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn kv_strings(key: &str, values: impl IntoIterator<Item = String>) -> KeyValue {
    kv(
        key,
        any_value::Value::ArrayValue(ArrayValue {
            values: values.into_iter().map(string).collect(),
        }),
    )
}

/// Airflow's and Celery's names for the identity the rules read from titles, then the
/// `AIRFLOW_CTX_*` variables where `--capture-env` allowlisted them.
const IDENTITY_NAMES: [(&str, &str); 8] = [
    ("dag_id", "airflow.dag_id"),
    ("task_id", "airflow.task_id"),
    ("run_id", "airflow.dag_run.run_id"),
    ("try_number", "airflow.task_instance.try_number"),
    ("ti_id", "airflow.task_instance.id"),
    ("celery_task_id", "celery.task.id"),
    ("celery_task", "celery.task.name"),
    ("celery_node", "celery.worker.hostname"),
];

const AIRFLOW_CONTEXT: [(&str, &str); 4] = [
    ("AIRFLOW_CTX_DAG_ID", "airflow.dag_id"),
    ("AIRFLOW_CTX_TASK_ID", "airflow.task_id"),
    ("AIRFLOW_CTX_DAG_RUN_ID", "airflow.dag_run.run_id"),
    ("AIRFLOW_CTX_TRY_NUMBER", "airflow.task_instance.try_number"),
];

fn identity_attributes(identity: &Identity, process: Option<&Process>, out: &mut Vec<KeyValue>) {
    let mut named: Vec<&str> = Vec::new();
    for (ours, theirs) in IDENTITY_NAMES {
        if let Some(value) = identity.get(ours) {
            out.push(kv_str(theirs, sanitize(value)));
            named.push(theirs);
        }
    }
    let Some(process) = process else { return };
    for (variable, theirs) in AIRFLOW_CONTEXT {
        if named.contains(&theirs) {
            continue;
        }
        if let Some(value) = process.env.get(variable) {
            out.push(kv_str(theirs, sanitize(value)));
        }
    }
}

fn sketch_line(sketch: &ProcessSketch) -> String {
    let role = sketch
        .role_label
        .as_deref()
        .map(|label| format!(" ({label})"))
        .unwrap_or_default();
    format!("{}{role}: {}", sketch.pid, sanitize(&sketch.title))
}

impl LogExporter {
    pub fn new(selection: Selection) -> LogExporter {
        LogExporter {
            selection,
            boot_id: String::new(),
            clock_base: (0, 0),
            mattering: HashSet::new(),
            ancestors_only: HashSet::new(),
        }
    }

    pub fn header(&mut self, header: &TraceHeader) {
        self.boot_id.clone_from(&header.boot_id);
        self.clock_base = (header.ts, header.wall_clock_ns);
    }

    /// Nanoseconds since the Unix epoch of a kernel timestamp.
    fn wall(&self, ts: u64) -> u64 {
        let (boot, wall) = self.clock_base;
        if ts >= boot {
            wall.saturating_add(ts - boot)
        } else {
            wall.saturating_sub(boot - ts)
        }
    }

    /// The stable id of a process: the same on every collector, for every record of it.
    pub fn process_id(&self, key: ProcessKey) -> String {
        format!("{}/{}/{}", self.boot_id, key.pid, key.start_time)
    }

    /// Whether records of `key`'s lifecycle go out (as far as the events so far tell).
    pub fn follows(&self, key: ProcessKey) -> bool {
        self.selection == Selection::All || self.mattering.contains(&key)
    }

    /// Whether `key`'s lifecycle matters, as the tree now says; remembered while it lives.
    /// A process matters from its start when its creator did (or had a role), so an event costs
    /// a lookup, not a walk up the lineage.
    fn matters(&mut self, model: &Model, key: ProcessKey) -> bool {
        if self.selection == Selection::All || self.mattering.contains(&key) {
            return true;
        }
        let Some(index) = model.find(key) else {
            return false;
        };
        if model.get(index).class.role.is_some() {
            // Its ancestors' lives matter from now on.
            for (_, ancestor) in model.lineage(index) {
                if ancestor.is_alive() && self.mattering.insert(ancestor.key) {
                    self.ancestors_only.insert(ancestor.key);
                }
            }
            self.mattering.insert(key);
            self.ancestors_only.remove(&key);
            return true;
        }
        let descendant = model.creator(index).is_some_and(|creator| {
            let creator = model.get(creator);
            creator.class.role.is_some()
                || (self.mattering.contains(&creator.key)
                    && !self.ancestors_only.contains(&creator.key))
        });
        if descendant {
            self.mattering.insert(key);
        }
        descendant
    }

    fn record(
        &self,
        ts: u64,
        event_name: &str,
        severity: SeverityNumber,
        body: String,
    ) -> LogRecord {
        let time = self.wall(ts);
        LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: time,
            severity_number: severity as i32,
            severity_text: severity_text(severity).to_owned(),
            body: Some(string(body)),
            event_name: event_name.to_owned(),
            ..LogRecord::default()
        }
    }

    /// `with_ancestors`: the lineage, for the first record of a process (its start); the
    /// later ones join it by `lineage.process_id`, and a flood of them stays cheap.
    fn process_attributes(
        &self,
        model: &Model,
        key: ProcessKey,
        with_ancestors: bool,
        out: &mut Vec<KeyValue>,
    ) {
        out.push(kv_int("process.pid", i64::from(key.pid)));
        out.push(kv_str("lineage.process_id", self.process_id(key)));
        out.push(kv_str(
            "process.creation.time",
            rfc3339(self.wall(key.start_time)),
        ));
        // Only a live process: an exit reaches here after the tree let the process go, and
        // searching the tombstones would cost a scan of the whole tree per exit.
        let Some(index) = model.find(key) else {
            return;
        };
        let process = model.get(index);
        out.push(kv_int("process.parent_pid", i64::from(process.ppid)));
        if let Some(creator) = model.creator(index) {
            out.push(kv_str(
                "lineage.parent_process_id",
                self.process_id(model.get(creator).key),
            ));
        }
        if let Some(filename) = &process.filename {
            out.push(kv_str("process.executable.path", sanitize(filename)));
        }
        if !process.cmdline.is_empty() {
            out.push(kv_strings(
                "process.command_args",
                process.cmdline.iter().map(|arg| sanitize(arg).into_owned()),
            ));
        }
        if let Some(role) = &process.class.role {
            out.push(kv_str("lineage.role", role.id.clone()));
        }
        if process.class.is_daemonic() {
            out.push(kv("lineage.daemonic", any_value::Value::BoolValue(true)));
        }
        if with_ancestors {
            let ancestors: Vec<String> = model
                .lineage(index)
                .map(|(_, a)| format!("{}: {}", a.key.pid, sanitize(&a.title())))
                .collect();
            if !ancestors.is_empty() {
                out.push(kv_strings("lineage.ancestors", ancestors));
            }
        }
        identity_attributes(&process.class.identity, Some(process), out);
    }

    /// The records an event makes (none for most).
    pub fn records(&mut self, event: &Event, model: &Model, out: &mut Vec<ProcessLog>) {
        let key = event.key();
        let lifecycle = match event {
            Event::ProcessStart(e) => Some((
                "process.start",
                format!("process {} started, child of {}", e.pid, e.ppid),
            )),
            Event::Exec(e) => Some((
                "process.exec",
                format!("process {} exec'd {}", e.pid, sanitize(&e.filename)),
            )),
            Event::Exit(e) => Some((
                "process.exit",
                format!(
                    "process {} ended: {}",
                    e.pid,
                    exit_description(e.exit_code, e.signal, e.core_dumped)
                ),
            )),
            Event::Reparent(e) => Some((
                "process.reparent",
                format!(
                    "process {} moved from parent {} to {}",
                    e.pid, e.old_ppid, e.new_ppid
                ),
            )),
            Event::Finding(finding) => {
                out.push(self.finding(finding, model));
                return;
            }
            Event::Lost(lost) => {
                let total = lost.by_kind.total();
                let record = self.data_loss(
                    lost.ts,
                    format!("{total} kernel records lost: the tree and findings around this time may be incomplete"),
                    total,
                );
                out.push(ProcessLog { record, pid: None });
                return;
            }
            Event::Snapshot(_) | Event::Rename(_) => {
                // No record, but a role may have come with it.
                self.matters(model, key);
                None
            }
            _ => None,
        };
        let Some((name, body)) = lifecycle else {
            return;
        };
        if !self.matters(model, key) {
            return;
        }
        let mut record = self.record(event.ts(), name, SeverityNumber::Info, body);
        let first = matches!(event, Event::ProcessStart(_));
        self.process_attributes(model, key, first, &mut record.attributes);
        if let Event::Exit(exit) = event {
            record
                .attributes
                .push(kv_int("process.parent_pid", i64::from(exit.ppid)));
            if let Some(code) = exit.exit_code {
                record
                    .attributes
                    .push(kv_int("process.exit.code", i64::from(code)));
            }
            if let Some(signal) = exit.signal {
                record
                    .attributes
                    .push(kv_int("lineage.exit.signal", i64::from(signal)));
            }
            self.mattering.remove(&key);
            self.ancestors_only.remove(&key);
        }
        out.push(ProcessLog {
            record,
            pid: Some(key.pid),
        });
    }

    fn finding(&self, finding: &Finding, model: &Model) -> ProcessLog {
        let name = match finding.kind {
            FindingKind::DaemonicSpawn => "lineage.daemonic_spawn",
            FindingKind::Orphaned => "lineage.orphaned",
            FindingKind::Killed => "lineage.killed",
            FindingKind::OrphanExited => "lineage.orphan_exited",
            _ => "lineage.finding",
        };
        let mut record = self.record(
            finding.ts,
            name,
            SeverityNumber::Warn,
            sanitize(&finding.summary).into_owned(),
        );
        let key = ProcessKey {
            pid: finding.pid,
            start_time: finding.start_time,
        };
        let attributes = &mut record.attributes;
        attributes.push(kv_int("process.pid", i64::from(finding.pid)));
        attributes.push(kv_str("lineage.process_id", self.process_id(key)));
        attributes.push(kv_str(
            "process.creation.time",
            rfc3339(self.wall(finding.start_time)),
        ));
        if let Some(parent) = finding.parent_pid {
            attributes.push(kv_int("process.parent_pid", i64::from(parent)));
        }
        if let Some(parent) = finding.lineage.first() {
            attributes.push(kv_str(
                "lineage.parent_process_id",
                self.process_id(ProcessKey {
                    pid: parent.pid,
                    start_time: parent.start_time,
                }),
            ));
        }
        if let Some(role) = &finding.process.role {
            attributes.push(kv_str("lineage.role", role.clone()));
        }
        if !finding.lineage.is_empty() {
            attributes.push(kv_strings(
                "lineage.ancestors",
                finding.lineage.iter().map(sketch_line),
            ));
        }
        if !finding.evidence.is_empty() {
            attributes.push(kv_strings(
                "lineage.evidence",
                finding
                    .evidence
                    .iter()
                    .map(|e| format!("{}: {}", e.pid, sanitize(&e.reason))),
            ));
        }
        if let Some(death) = &finding.death {
            attributes.push(kv_str("lineage.death", sanitize(&death.description)));
            if let Some(code) = death.exit_code {
                attributes.push(kv_int("process.exit.code", i64::from(code)));
            }
        }
        attributes.push(kv(
            "lineage.uncertain",
            any_value::Value::BoolValue(finding.uncertain.is_some()),
        ));
        if let Some(why) = &finding.uncertain {
            attributes.push(kv_str("lineage.uncertain_reason", sanitize(why)));
        }
        let process = model.find(key).map(|index| model.get(index));
        identity_attributes(&finding.identity, process, attributes);
        ProcessLog {
            record,
            pid: Some(finding.pid),
        }
    }

    /// A `lineage.data_loss` record: `count` records (kernel or export) are gone.
    pub fn data_loss(&self, ts: u64, body: String, count: u64) -> LogRecord {
        let mut record = self.record(ts, "lineage.data_loss", SeverityNumber::Error, body);
        record.attributes.push(kv_int(
            "lineage.lost_records",
            count.min(i64::MAX as u64) as i64,
        ));
        record
    }

    /// A `lineage.data_loss` record dated by the wall clock (the export's own losses).
    pub fn export_loss(&self, wall_clock_ns: u64, dropped: u64) -> LogRecord {
        let mut record = self.data_loss(
            0,
            format!("{dropped} log records were dropped before export (the collector was unreachable or slow, and the queue full)"),
            dropped,
        );
        record.time_unix_nano = wall_clock_ns;
        record.observed_time_unix_nano = wall_clock_ns;
        record
    }
}

fn severity_text(severity: SeverityNumber) -> &'static str {
    match severity {
        SeverityNumber::Warn => "WARN",
        SeverityNumber::Error => "ERROR",
        _ => "INFO",
    }
}

/// `2026-11-24T15:31:40.123456789Z`.
pub fn rfc3339(wall_clock_ns: u64) -> String {
    let date = tracer_core::words::utc(wall_clock_ns);
    // `2026-11-24 15:31:40Z` → with a T and the fraction.
    let (day, time) = date.split_once(' ').unwrap_or((&date, "00:00:00Z"));
    let time = time.trim_end_matches('Z');
    format!("{day}T{time}.{:09}Z", wall_clock_ns % 1_000_000_000)
}

/// Who sends: the resource every record shares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostResource {
    pub host_name: String,
    /// `/etc/machine-id`, where the host has one.
    pub host_id: Option<String>,
}

/// One `ExportLogsServiceRequest` of `batch`, a resource per container (and one for the
/// host's own processes).
pub fn request(
    host: &HostResource,
    batch: Vec<(Option<ContainerIds>, LogRecord)>,
) -> ExportLogsServiceRequest {
    let mut groups: Vec<(Option<ContainerIds>, Vec<LogRecord>)> = Vec::new();
    for (container, record) in batch {
        match groups.iter_mut().find(|(c, _)| *c == container) {
            Some((_, records)) => records.push(record),
            None => groups.push((container, vec![record])),
        }
    }
    let resource_logs = groups
        .into_iter()
        .map(|(container, log_records)| {
            let mut attributes = vec![
                kv_str("service.name", "tracer"),
                kv_str("service.version", VERSION),
                kv_str("host.name", sanitize(&host.host_name)),
            ];
            if let Some(id) = &host.host_id {
                attributes.push(kv_str("host.id", id.clone()));
            }
            if let Some(container) = &container {
                if let Some(id) = &container.container_id {
                    attributes.push(kv_str("container.id", id.clone()));
                }
                if let Some(uid) = &container.pod_uid {
                    attributes.push(kv_str("k8s.pod.uid", uid.clone()));
                }
            }
            ResourceLogs {
                resource: Some(Resource {
                    attributes,
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "tracer".to_owned(),
                        version: VERSION.to_owned(),
                        ..InstrumentationScope::default()
                    }),
                    log_records,
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            }
        })
        .collect();
    ExportLogsServiceRequest { resource_logs }
}

/// The protobuf bytes of a request, the body of `POST /v1/logs`.
pub fn encode(request: &ExportLogsServiceRequest) -> Vec<u8> {
    request.encode_to_vec()
}

#[cfg(test)]
mod tests;
