//! `tracer report`: a postmortem of a trace, from its findings, grouped by Celery worker and
//! Airflow task: what each started while daemonic, the orphans it left, and who killed what.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;

use serde::Serialize;

use crate::error::Result;
use crate::event::{Finding, FindingKind, ProcessKey, ProcessSketch, SpawnHow};
use crate::history::FindingIndex;
use crate::replay::replay;
use crate::roles::{Identity, Rules};
use crate::sanitize::sanitize;
use crate::trace::TraceReader;
use crate::words::{duration, utc};

/// What a group of findings is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Subject {
    AirflowTask {
        dag_id: String,
        task_id: String,
        run_id: String,
    },
    AirflowTaskInstance {
        ti_id: String,
    },
    CeleryWorker {
        node: String,
    },
    Other,
}

impl Subject {
    fn of(identity: &Identity) -> Subject {
        let get = |key: &str| identity.get(key).cloned();
        if let (Some(dag_id), Some(task_id), Some(run_id)) =
            (get("dag_id"), get("task_id"), get("run_id"))
        {
            Subject::AirflowTask {
                dag_id,
                task_id,
                run_id,
            }
        } else if let Some(ti_id) = get("ti_id") {
            Subject::AirflowTaskInstance { ti_id }
        } else if let Some(node) = get("celery_node") {
            Subject::CeleryWorker { node }
        } else {
            Subject::Other
        }
    }

    fn heading(&self) -> String {
        match self {
            Subject::AirflowTask {
                dag_id,
                task_id,
                run_id,
            } => format!("Airflow task {dag_id}.{task_id}, run {run_id}"),
            Subject::AirflowTaskInstance { ti_id } => format!("Airflow task instance {ti_id}"),
            Subject::CeleryWorker { node } => format!("Celery worker {node}"),
            Subject::Other => "Other processes".to_owned(),
        }
    }
}

/// The findings about one daemonic parent (a pool worker, a task runner, ...) and what it
/// started.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Actor {
    pub pid: u32,
    pub start_time: u64,
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Started at the request of this process, per its interpreter (the forkserver).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_by: Option<u32>,
    /// What its daemonic verdict rests on: the interpreter's daemon flag or a title rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemonic_because: Option<String>,
    /// Its own death, if a signal killed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub killed: Option<Finding>,
    pub spawns: Vec<Finding>,
    pub orphans: Vec<Orphan>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Orphan {
    pub orphaned: Finding,
    /// How it ended, if it did before the trace did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exited: Option<Finding>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Group {
    pub subject: Subject,
    pub actors: Vec<Actor>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    pub daemonic_spawns: usize,
    pub orphans: usize,
    pub orphans_alive: usize,
    pub orphans_exited: usize,
    pub killed: usize,
    /// Findings marked uncertain (their history has a gap).
    pub uncertain: usize,
}

#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// `CLOCK_BOOTTIME` and wall clock at the start of the trace, to date its events.
    #[serde(skip)]
    clock_base: (u64, u64),
    pub trace: String,
    pub host: String,
    pub kernel: String,
    pub started: String,
    pub duration_ns: u64,
    pub lost: u64,
    /// What the read left out: a torn last line, bad lines skipped by `--lenient`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read_notes: Vec<String>,
    pub totals: Totals,
    pub groups: Vec<Group>,
}

type Groups = BTreeMap<Subject, BTreeMap<ProcessKey, Actor>>;

/// The entry of the process a finding is about, in its group.
fn actor<'a>(
    groups: &'a mut Groups,
    subject: Subject,
    identity: &Identity,
    process: &ProcessSketch,
) -> &'a mut Actor {
    groups
        .entry(subject)
        .or_default()
        .entry(ProcessKey {
            pid: process.pid,
            start_time: process.start_time,
        })
        .or_insert_with(|| Actor {
            pid: process.pid,
            start_time: process.start_time,
            // The worker's own title, without the task it ran at that moment.
            title: celery_task(identity)
                .and_then(|task| process.title.strip_suffix(&format!(" {task}")))
                .unwrap_or(&process.title)
                .to_owned(),
            role: process.role_label.clone(),
            started_by: process.started_by,
            ..Actor::default()
        })
}

/// Groups findings: by Celery worker or Airflow task, then by the daemonic parent (or killed
/// process) each finding is about.
pub fn group(findings: &[Finding]) -> (Vec<Group>, Totals) {
    let mut groups = Groups::new();
    let mut totals = Totals::default();
    let exits: BTreeMap<ProcessKey, &Finding> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::OrphanExited)
        .map(|f| {
            (
                ProcessKey {
                    pid: f.pid,
                    start_time: f.start_time,
                },
                f,
            )
        })
        .collect();
    for finding in findings {
        if finding.uncertain.is_some() {
            totals.uncertain += 1;
        }
        match finding.kind {
            FindingKind::DaemonicSpawn => {
                totals.daemonic_spawns += 1;
                let parent = finding.lineage.first().unwrap_or(&finding.process);
                actor(
                    &mut groups,
                    Subject::of(&finding.identity),
                    &finding.identity,
                    parent,
                )
                .spawns
                .push(finding.clone());
                let spawner = actor(
                    &mut groups,
                    Subject::of(&finding.identity),
                    &finding.identity,
                    parent,
                );
                if spawner.daemonic_because.is_none() {
                    spawner.daemonic_because =
                        finding.evidence.last().map(|root| root.reason.clone());
                }
            }
            FindingKind::Orphaned => {
                totals.orphans += 1;
                let key = ProcessKey {
                    pid: finding.pid,
                    start_time: finding.start_time,
                };
                let exited = exits.get(&key).map(|f| (*f).clone());
                if exited.is_some() {
                    totals.orphans_exited += 1;
                } else {
                    totals.orphans_alive += 1;
                }
                // The dead parent is listed where it belongs itself: a scheduler whose orphan
                // ran a task is not part of that task.
                let (parent, subject) = match &finding.dead_parent {
                    Some(parent) => (parent, Subject::of(&finding.dead_parent_identity)),
                    None => (&finding.process, Subject::of(&finding.identity)),
                };
                actor(&mut groups, subject, &finding.identity, parent)
                    .orphans
                    .push(Orphan {
                        orphaned: finding.clone(),
                        exited,
                    });
            }
            FindingKind::Killed => {
                totals.killed += 1;
                let subject = Subject::of(&finding.identity);
                actor(&mut groups, subject, &finding.identity, &finding.process).killed =
                    Some(finding.clone());
            }
            FindingKind::OrphanExited => {}
        }
    }
    let groups = groups
        .into_iter()
        .map(|(subject, actors)| Group {
            subject,
            actors: actors.into_values().collect(),
        })
        .collect();
    (groups, totals)
}

/// Replays a trace and builds its report.
pub fn build<R: BufRead>(reader: TraceReader<R>, rules: Option<Rules>) -> Result<Report> {
    let (pipeline, header, summary) = replay(reader, None, rules, FindingIndex::default())?;
    let (groups, totals) = group(pipeline.sink.as_slice());
    Ok(Report {
        clock_base: (header.ts, header.wall_clock_ns),
        trace: summary.name.clone(),
        host: header.host.clone(),
        kernel: header.kernel.clone(),
        started: utc(header.wall_clock_ns),
        duration_ns: summary.last_ts.saturating_sub(header.ts),
        lost: pipeline.model.stats.lost.total(),
        read_notes: summary.read_notes(),
        totals,
        groups,
    })
}

impl Report {
    /// The wall-clock time of a trace timestamp, to match the Celery and Airflow logs.
    pub fn clock(&self, ts: u64) -> String {
        let (boot, wall) = self.clock_base;
        utc((wall + ts).saturating_sub(boot))
    }
}

fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// The Celery task a process was running, `tasks.x[ID]`, when its pool worker's title named it
/// (contrib/celery_task_titles.py).
fn celery_task(identity: &Identity) -> Option<String> {
    let name = identity.get("celery_task")?;
    Some(match identity.get("celery_task_id") {
        Some(id) => format!("{name}[{id}]"),
        None => name.clone(),
    })
}

/// The report for a human, a few lines per daemonic parent. Process text is sanitized.
pub fn text(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Postmortem of {}: host {}, kernel {}, {} from {}",
        sanitize(&report.trace),
        sanitize(&report.host),
        sanitize(&report.kernel),
        duration(report.duration_ns),
        report.started
    );
    let totals = &report.totals;
    let _ = writeln!(
        out,
        "{}, {} ({} alive at the end, {} exited), {}{}",
        plural(totals.daemonic_spawns, "daemonic spawn", "daemonic spawns"),
        plural(totals.orphans, "orphan", "orphans"),
        totals.orphans_alive,
        totals.orphans_exited,
        plural(totals.killed, "kill", "kills"),
        if report.lost > 0 {
            format!(
                "; {} kernel records were lost, so this may be incomplete ({} marked UNCERTAIN)",
                report.lost, totals.uncertain
            )
        } else {
            String::new()
        }
    );
    let uncertain = |finding: &Finding| {
        if finding.uncertain.is_some() {
            " UNCERTAIN"
        } else {
            ""
        }
    };
    for group in &report.groups {
        let _ = writeln!(out, "\n{}", sanitize(&group.subject.heading()));
        for actor in &group.actors {
            let role = actor.role.as_deref().unwrap_or("process");
            let _ = writeln!(out, "  {role} {} `{}`", actor.pid, sanitize(&actor.title));
            if let Some(by) = actor.started_by {
                let _ = writeln!(
                    out,
                    "    started at the request of {by} (its interpreter's _parent_pid, not its parent)"
                );
            }
            if let Some(killed) = &actor.killed
                && let Some(death) = &killed.death
            {
                let running = celery_task(&killed.identity)
                    .map(|task| format!(", while running task {}", sanitize(&task)))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "    was {} at {}{running}{}",
                    sanitize(&death.description),
                    report.clock(death.ts),
                    uncertain(killed)
                );
                if running.is_empty() && death.description.contains("hard time limit") {
                    let _ = writeln!(
                        out,
                        "    (Celery's log names the task: `Hard time limit (...) exceeded for \
                         TASK[ID]` at that time; contrib/celery_task_titles.py names it here)"
                    );
                }
            }
            // What the spawns' verdict rests on: the interpreter's flag, or a title rule.
            if let Some(because) = actor
                .daemonic_because
                .as_ref()
                .filter(|_| !actor.spawns.is_empty())
            {
                let _ = writeln!(out, "    {}", sanitize(because));
            }
            // Spawns in the order they happened, a heading each time the running task changes.
            let mut spawns = actor.spawns.iter().peekable();
            while let Some(first) = spawns.peek() {
                let task = celery_task(&first.identity);
                let mut batch = Vec::new();
                while let Some(spawn) = spawns.next_if(|s| celery_task(&s.identity) == task) {
                    batch.push(spawn);
                }
                let _ = writeln!(
                    out,
                    "    started {} while daemonic{}:",
                    plural(batch.len(), "child", "children"),
                    task.map(|task| format!(", in task {}", sanitize(&task)))
                        .unwrap_or_default()
                );
                for spawn in batch {
                    let how = spawn
                        .how
                        .unwrap_or(SpawnHow::Fork)
                        .describe(spawn.program.as_deref());
                    let _ = writeln!(
                        out,
                        "      {} `{}` ({}){}",
                        spawn.pid,
                        sanitize(&spawn.process.title),
                        sanitize(&how),
                        uncertain(spawn)
                    );
                }
            }
            if !actor.orphans.is_empty() {
                let _ = writeln!(
                    out,
                    "    left {} when it died:",
                    plural(actor.orphans.len(), "orphan", "orphans")
                );
                for orphan in &actor.orphans {
                    let found = &orphan.orphaned;
                    let fate = match &orphan.exited {
                        Some(exited) => format!(
                            "exited after {} as an orphan, {}",
                            duration(exited.orphaned_for_ns.unwrap_or(0)),
                            exited
                                .death
                                .as_ref()
                                .map_or_else(String::new, |d| sanitize(&d.description)
                                    .into_owned())
                        ),
                        None => format!(
                            "still alive under {} at the end",
                            found.new_ppid.unwrap_or(1)
                        ),
                    };
                    // A fork keeps its pool worker's title, which may name the task already.
                    let task = celery_task(&found.identity)
                        .filter(|task| !found.process.title.contains(task.as_str()))
                        .map(|task| format!(" (from task {})", sanitize(&task)))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "      {} `{}`{task}: {fate}{}",
                        found.pid,
                        sanitize(&found.process.title),
                        uncertain(found)
                    );
                }
                if actor.killed.is_none()
                    && let Some(death) = actor.orphans[0].orphaned.death.as_ref()
                {
                    let _ = writeln!(
                        out,
                        "    it ended ({}) at {}",
                        sanitize(&death.description),
                        report.clock(death.ts)
                    );
                }
            }
        }
    }
    if report.groups.is_empty() {
        let _ = writeln!(
            out,
            "\nNo daemonic process started children, nothing was orphaned, no role was killed."
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Analyzer;
    use crate::event::Event;
    use crate::fixtures::{self, key};
    use crate::ingest::Pipeline;
    use crate::model::Model;

    const MS: u64 = 1_000_000;

    /// The report text of `events`, its clock starting at the epoch.
    fn report_of(events: &[Event]) -> String {
        let mut pipeline = Pipeline::new(
            Model::new(10 * MS),
            Analyzer::new(Rules::builtin()),
            FindingIndex::default(),
        );
        for event in events {
            pipeline.apply(event).unwrap();
        }
        pipeline.finish_analysis().unwrap();
        let (groups, totals) = group(pipeline.sink.as_slice());
        text(&Report {
            clock_base: (0, 0),
            trace: "t.jsonl".into(),
            host: "h".into(),
            kernel: "k".into(),
            started: utc(0),
            duration_ns: 0,
            lost: 0,
            read_notes: Vec::new(),
            totals,
            groups,
        })
    }

    #[test]
    fn an_orphan_that_exited_says_after_how_long_and_how() {
        // Airflow 2: the supervisor stops its runner; the task's sleep lives on 1.5 s.
        let worker = key(410, 10 * MS);
        let (supervisor, runner, sleep) = (
            key(411, 1_000 * MS),
            key(412, 1_001 * MS),
            key(413, 1_002 * MS),
        );
        let report = report_of(&[
            fixtures::snapshot(1, worker, 1, "airflow worker -- LocalExecutor"),
            fixtures::fork(1_000 * MS, supervisor, worker, "airflow"),
            fixtures::rename(
                1_000 * MS,
                supervisor,
                "airflow task supervisor: ['airflow', 'tasks', 'run', 'etl', 'load', 'm1', '--local']",
            ),
            fixtures::fork(1_001 * MS, runner, supervisor, "airflow"),
            fixtures::rename(1_001 * MS, runner, "airflow task runner: etl load m1 7"),
            fixtures::fork(1_002 * MS, sleep, runner, "airflow"),
            fixtures::exec(1_003 * MS, sleep, 412, "/bin/sleep", &["sleep", "120"]),
            fixtures::signal(4_000 * MS, runner, supervisor, 15),
            fixtures::exit(4_001 * MS, runner, 411, (None, Some(15)), 1),
            fixtures::exit(5_501 * MS, sleep, 1, (Some(0), None), 1),
        ]);
        let lines: Vec<&str> = report.lines().collect();
        let runner_at = lines
            .iter()
            .position(|l| *l == "  Airflow task runner 412 `airflow task runner: etl load m1 7`")
            .unwrap_or_else(|| panic!("{report}"));
        assert_eq!(
            lines[runner_at + 1],
            "    was killed by SIGTERM from 411, the Airflow task supervisor stopping its task \
             runner at 1970-01-01 00:00:04Z",
            "{report}"
        );
        let left = runner_at
            + lines[runner_at..]
                .iter()
                .position(|l| *l == "    left 1 orphan when it died:")
                .unwrap_or_else(|| panic!("{report}"));
        assert_eq!(
            lines[left + 1],
            "      413 `sleep 120`: exited after 1.5s as an orphan, exit code 0",
            "{report}"
        );
        assert_eq!(
            lines[1], "3 daemonic spawns, 1 orphan (0 alive at the end, 1 exited), 1 kill",
            "{report}"
        );
        assert!(lines.contains(&"Airflow task etl.load, run m1"), "{report}");
    }

    #[test]
    fn dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(1_795_532_006_602_874_753), "2026-11-24 14:53:26Z");
        assert_eq!(utc(951_782_400_000_000_000), "2000-02-29 00:00:00Z");
    }

    #[test]
    fn a_scheduler_is_listed_under_its_own_role_not_under_the_task_its_orphan_ran() {
        const TI: &str = "0193a4f2-0000-7000-8000-00000000abcd";
        let scheduler = key(400, 10 * MS);
        let worker = key(410, 1_000 * MS);
        let report = report_of(&[
            fixtures::snapshot(1, key(1, 0), 0, "/sbin/init"),
            fixtures::snapshot(
                2,
                scheduler,
                1,
                "/venv/bin/python3 /venv/bin/airflow scheduler",
            ),
            fixtures::fork(1_000 * MS, worker, scheduler, "airflow"),
            fixtures::rename(
                1_001 * MS,
                worker,
                &format!("airflow worker -- LocalExecutor: {TI}"),
            ),
            fixtures::signal(2_000 * MS, scheduler, key(1, 0), 9),
            fixtures::exit(2_001 * MS, scheduler, 1, (None, Some(9)), 1),
        ]);
        let task = report
            .find(&format!("Airflow task instance {TI}"))
            .map(|at| &report[at..]);
        assert!(
            task.is_none_or(|block| !block.contains("400 `")),
            "the scheduler is not part of the task:\n{report}"
        );
        assert!(
            report.contains("Other processes\n  Airflow scheduler 400"),
            "{report}"
        );
        assert!(report.contains("left 1 orphan when it died"), "{report}");
    }
}
