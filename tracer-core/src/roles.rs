//! Roles: which Celery, Airflow or Python multiprocessing part a process is, from its title,
//! comm, program and parent. The rules are data (`rules.toml`, plus an optional user file).

use std::collections::BTreeMap;

use regex::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A Celery node name as Celery expands it (`-n w1@%h`): `%h` the host name, `%n` its part
/// before the first dot, `%d` the part after it, `%%` a percent sign. `%i` and `%I` name a
/// pool process, not a node, and stay as they are.
pub fn expand_celery_node(node: &str, host: &str) -> String {
    let (name, domain) = host.split_once('.').unwrap_or((host, ""));
    let mut out = String::with_capacity(node.len() + host.len());
    let mut chars = node.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(host),
            Some('n') => out.push_str(name),
            Some('d') => out.push_str(domain),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// The built-in rules.
pub const DEFAULT_RULES: &str = include_str!("../rules.toml");

/// Identity fields of a process (`celery_node`, `dag_id`, ...), from named regex groups.
pub type Identity = BTreeMap<String, String>;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleText {
    id: String,
    label: String,
    title: Option<String>,
    comm: Option<String>,
    program: Option<String>,
    parent_role: Option<String>,
    #[serde(default)]
    forked: bool,
    #[serde(default)]
    daemonic: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    wrapper: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesText {
    #[serde(default)]
    role: Vec<RuleText>,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub id: String,
    pub label: String,
    title: Option<Regex>,
    comm: Option<Regex>,
    program: Option<Regex>,
    parent_role: Option<String>,
    forked: bool,
    pub daemonic: bool,
    /// A program that runs another (`timeout`, `sh -c`, ...): a process it matches gets no
    /// role at all, so no later rule can give it the role of what it runs.
    pub wrapper: bool,
    /// Where the rule came from: `built-in` or the user file's path.
    pub source: String,
}

/// What a classifier looks at.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    pub title: &'a str,
    pub comm: &'a str,
    pub program: Option<&'a str>,
    /// True while the title is a copy of the parent's (forked, no exec or rename since).
    pub title_inherited: bool,
    /// True while the process has not exec'd since it was forked.
    pub forked: bool,
    pub parent_role: Option<&'a str>,
}

/// Why a process is daemonic: one step per process, from the process itself up to the
/// daemonic root.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub pid: u32,
    pub start_time: u64,
    pub title: String,
    pub reason: String,
}

/// What the analysis knows about a process: its role, identity and daemonic verdict.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleMatch>,
    #[serde(skip_serializing_if = "Identity::is_empty")]
    pub identity: Identity,
    /// Non-empty when the process is daemonic: the evidence chain, nearest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub daemonic: Vec<Evidence>,
    /// Where the interpreter and the title rules disagree: the interpreter's word stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    /// The process that asked for it to be started, as its interpreter says, where that is
    /// not its parent in the kernel (multiprocessing's forkserver start method).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_by: Option<u32>,
}

impl Classification {
    pub fn is_daemonic(&self) -> bool {
        !self.daemonic.is_empty()
    }

    /// The verdict for a human: `forked without exec from 4121 `[celeryd: ...]` (daemonic:
    /// Celery prefork pool worker ...)`; for a root, its rule alone.
    pub fn explain_daemonic(&self) -> Option<String> {
        Self::explain(&self.daemonic)
    }

    /// An evidence chain for a human, as [`Classification::explain_daemonic`] gives it.
    pub fn explain(daemonic: &[Evidence]) -> Option<String> {
        let (root, steps) = daemonic.split_last()?;
        if steps.is_empty() {
            return Some(root.reason.clone());
        }
        let steps: Vec<&str> = steps.iter().map(|s| s.reason.as_str()).collect();
        Some(format!("{} ({})", steps.join(", "), root.reason))
    }
}

/// A role given by a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleMatch {
    pub id: String,
    pub label: String,
    pub daemonic_root: bool,
}

impl Rule {
    /// `title_matched`: the title regex (if any) is already known to match the subject's own
    /// title; the other conditions are checked here.
    /// Whether the rule applies. `title_matched` is the rule's title regex's verdict, taken
    /// from the set of all title regexes at once.
    fn matches(&self, subject: &Subject, title_matched: bool) -> bool {
        if self.forked && !(subject.forked && subject.title_inherited) {
            return false;
        }
        if let Some(wanted) = &self.parent_role
            && subject.parent_role != Some(wanted.as_str())
        {
            return false;
        }
        if self.title.is_some() && !title_matched {
            return false;
        }
        let matched = |regex: &Option<Regex>, text: Option<&str>| {
            regex
                .as_ref()
                .is_none_or(|regex| text.is_some_and(|text| regex.is_match(text)))
        };
        matched(&self.comm, Some(subject.comm)) && matched(&self.program, subject.program)
    }

    /// The named groups of the rule's regexes, for a subject the rule matches. Only the one
    /// rule that matched pays for captures.
    fn capture(&self, subject: &Subject, identity: &mut Identity) {
        let texts = [
            (&self.title, Some(subject.title)),
            (&self.comm, Some(subject.comm)),
            (&self.program, subject.program),
        ];
        for (regex, text) in texts {
            let (Some(regex), Some(text)) = (regex, text) else {
                continue;
            };
            let Some(captures) = regex.captures(text) else {
                continue;
            };
            for name in regex.capture_names().flatten() {
                if let Some(value) = captures.name(name) {
                    identity.insert(name.to_owned(), value.as_str().to_owned());
                }
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Rules {
    rules: Vec<Rule>,
    /// Every rule's title regex, in one set: one pass over a title finds the rules worth
    /// checking, where most processes match none.
    titles: RegexSet,
    /// For each rule, its index in `titles`.
    title_index: Vec<Option<usize>>,
    /// The user file's text, recorded in traces so that replay classifies the same way.
    pub user_text: Option<String>,
}

fn compile(source: &str, text: &str) -> Result<Vec<Rule>> {
    let parsed: RulesText =
        toml::from_str(text).map_err(|e| Error::Rules(format!("{source}: {}", e.message())))?;
    parsed
        .role
        .into_iter()
        .enumerate()
        .map(|(i, rule)| {
            let place = format!("{source}: rule {} ({})", i + 1, rule.id);
            if rule.id.is_empty() || rule.label.is_empty() {
                return Err(Error::Rules(format!(
                    "{place}: id and label must not be empty"
                )));
            }
            if rule.title.is_none()
                && rule.comm.is_none()
                && rule.program.is_none()
                && rule.parent_role.is_none()
            {
                return Err(Error::Rules(format!(
                    "{place}: give at least one of title, comm, program, parent_role"
                )));
            }
            let regex = |pattern: &Option<String>, field: &str| -> Result<Option<Regex>> {
                pattern
                    .as_deref()
                    .map(|p| {
                        Regex::new(p).map_err(|e| {
                            let first = e.to_string();
                            let reason = first.lines().last().unwrap_or("invalid regex").trim();
                            Error::Rules(format!("{place}: {field} is not a valid regex: {reason}"))
                        })
                    })
                    .transpose()
            };
            Ok(Rule {
                title: regex(&rule.title, "title")?,
                comm: regex(&rule.comm, "comm")?,
                program: regex(&rule.program, "program")?,
                parent_role: rule.parent_role,
                forked: rule.forked,
                daemonic: rule.daemonic,
                wrapper: rule.wrapper,
                source: source.to_owned(),
                id: rule.id,
                label: rule.label,
            })
        })
        .collect()
}

impl Rules {
    fn new(rules: Vec<Rule>, user_text: Option<String>) -> Result<Rules> {
        let mut patterns = Vec::new();
        let title_index = rules
            .iter()
            .map(|rule| {
                rule.title.as_ref().map(|title| {
                    patterns.push(title.as_str().to_owned());
                    patterns.len() - 1
                })
            })
            .collect();
        let titles = RegexSet::new(&patterns).map_err(|e| Error::Rules(format!("rules: {e}")))?;
        Ok(Rules {
            rules,
            titles,
            title_index,
            user_text,
        })
    }

    pub fn builtin() -> Rules {
        let rules = compile("built-in rules", DEFAULT_RULES).expect("the built-in rules compile");
        Rules::new(rules, None).expect("the built-in rules compile")
    }

    /// The built-in rules, after a user's rules (given as text, from `source`).
    pub fn with_user_text(source: &str, text: &str) -> Result<Rules> {
        let mut rules = compile(source, text)?;
        rules.extend(Rules::builtin().rules);
        Rules::new(rules, Some(text.to_owned()))
    }

    /// The role of the first rule that matches, and the identity its regexes captured.
    pub fn classify(&self, subject: &Subject) -> Option<(RoleMatch, Identity)> {
        // A title copied by fork is the parent's: it says nothing about this process.
        let hits = (!subject.title_inherited).then(|| self.titles.matches(subject.title));
        let rule = self
            .rules
            .iter()
            .zip(&self.title_index)
            .find_map(|(rule, index)| {
                let title_matched = match (index, &hits) {
                    (Some(index), Some(hits)) => hits.matched(*index),
                    _ => false,
                };
                rule.matches(subject, title_matched).then_some(rule)
            })
            .filter(|rule| !rule.wrapper)?;
        let mut identity = Identity::new();
        rule.capture(subject, &mut identity);
        Some((
            RoleMatch {
                id: rule.id.clone(),
                label: rule.label.clone(),
                daemonic_root: rule.daemonic,
            },
            identity,
        ))
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The effective rules, as a rules file.
    pub fn to_toml(&self) -> String {
        let mut out = String::from("# Effective rules, in the order they are tried.\n");
        for rule in &self.rules {
            let text = RuleText {
                id: rule.id.clone(),
                label: rule.label.clone(),
                title: rule.title.as_ref().map(|r| r.as_str().to_owned()),
                comm: rule.comm.as_ref().map(|r| r.as_str().to_owned()),
                program: rule.program.as_ref().map(|r| r.as_str().to_owned()),
                parent_role: rule.parent_role.clone(),
                forked: rule.forked,
                daemonic: rule.daemonic,
                wrapper: rule.wrapper,
            };
            let table = toml::to_string(&text).expect("a rule serializes");
            out.push_str(&format!("\n# from {}\n[[role]]\n{table}", rule.source));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject<'a>(title: &'a str) -> Subject<'a> {
        Subject {
            title,
            comm: "python3",
            program: Some("/usr/bin/python3"),
            title_inherited: false,
            forked: false,
            parent_role: None,
        }
    }

    fn role(rules: &Rules, subject: &Subject) -> Option<(String, Identity)> {
        rules
            .classify(subject)
            .map(|(role, identity)| (role.id, identity))
    }

    fn ids(pairs: &[(&str, &str)]) -> Identity {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn wrappers_never_take_the_role_of_what_they_run() {
        let rules = Rules::builtin();
        let role_of = |title| role(&rules, &subject(title)).map(|(id, _)| id);
        for wrapped in [
            "timeout -s KILL 100 /venv/bin/celery -A app worker -n w1@host",
            "timeout -s KILL 115 airflow celery worker",
            "/usr/bin/nice -n 10 celery -A app worker",
            "env PYTHONPATH=/app celery -A app worker",
            "sudo -u celery celery -A app worker",
            "su celery -c celery -A app worker",
            "sh -c celery -A app worker",
            "/bin/bash -lc airflow scheduler",
            "tini -- airflow scheduler",
            "dumb-init celery -A app worker",
            "nohup airflow tasks run etl load manual__1 --local",
        ] {
            assert_eq!(role_of(wrapped), None, "{wrapped}");
        }
        // A word of the command line is not the program.
        assert_eq!(role_of("vim /notes/celery worker.txt"), None);
        assert_eq!(role_of("grep celery worker /var/log/syslog"), None);
        for (title, id) in [
            ("/venv/bin/celery -A app worker -n w1@host", "celery.main"),
            (
                "/venv/bin/python3 /venv/bin/celery -A app worker",
                "celery.main",
            ),
            ("python3 -m celery -A app worker", "celery.main"),
            (
                "/venv/bin/python /venv/bin/airflow celery worker",
                "celery.main",
            ),
            (
                "/venv/bin/python3 /venv/bin/airflow scheduler",
                "airflow.scheduler",
            ),
            (
                "airflow tasks run etl load manual__1 --raw",
                "airflow.task_command",
            ),
        ] {
            assert_eq!(role_of(title).as_deref(), Some(id), "{title}");
        }
    }

    #[test]
    fn celery_node_names_expand_as_celery_does() {
        assert_eq!(expand_celery_node("repro@%h", "vm"), "repro@vm");
        assert_eq!(
            expand_celery_node("w-%n@%d.%h", "worker-7.prod.example"),
            "w-worker-7@prod.example.worker-7.prod.example"
        );
        assert_eq!(expand_celery_node("100%%@%h-%i", "vm"), "100%@vm-%i");
        assert_eq!(expand_celery_node("odd%", "vm"), "odd%");
    }

    #[test]
    fn celery_titles() {
        let rules = Rules::builtin();
        let main = "[celeryd: w1@host:MainProcess] -active- (-A tasks worker -n w1@host)";
        assert_eq!(
            role(&rules, &subject(main)),
            Some(("celery.main".into(), ids(&[("celery_node", "w1@host")])))
        );
        let (pool, identity) = rules
            .classify(&subject("[celeryd: w1@host:ForkPoolWorker-3]"))
            .unwrap();
        assert_eq!(pool.id, "celery.pool_worker");
        assert!(pool.daemonic_root);
        assert_eq!(
            identity,
            ids(&[("celery_node", "w1@host"), ("celery_worker", "3")])
        );
        // Retitled by contrib/celery_task_titles.py while it runs a task.
        let running = "[celeryd: w1@host:ForkPoolWorker-3] tasks.resize[5b0e1c9a-2f7d-4c71]";
        assert_eq!(
            role(&rules, &subject(running)),
            Some((
                "celery.pool_worker".into(),
                ids(&[
                    ("celery_node", "w1@host"),
                    ("celery_worker", "3"),
                    ("celery_task", "tasks.resize"),
                    ("celery_task_id", "5b0e1c9a-2f7d-4c71"),
                ])
            ))
        );

        // Without setproctitle: the command line, and forks of the main process.
        let plain = "/venv/bin/python3 /venv/bin/celery -A tasks worker -c 2 -n w2@h";
        assert_eq!(
            role(&rules, &subject(plain)),
            Some(("celery.main".into(), ids(&[("celery_node", "w2@h")])))
        );
        for (title, node) in [
            ("celery -A t worker -n w3@h", "w3@h"),
            ("celery -A t worker --hostname=w3@h -c 2", "w3@h"),
        ] {
            assert_eq!(
                role(&rules, &subject(title)),
                Some(("celery.main".into(), ids(&[("celery_node", node)]))),
                "{title}"
            );
        }
        let fork = Subject {
            title_inherited: true,
            forked: true,
            parent_role: Some("celery.main"),
            ..subject(plain)
        };
        assert_eq!(role(&rules, &fork).unwrap().0, "celery.pool_worker");
        // Once it execs something else, it is no pool worker.
        let exec = Subject {
            title_inherited: false,
            forked: false,
            ..fork
        };
        assert_eq!(
            role(
                &rules,
                &Subject {
                    title: "sleep 20",
                    ..exec
                }
            ),
            None
        );
    }

    #[test]
    fn an_inherited_title_is_not_the_childs_role() {
        let rules = Rules::builtin();
        let copy = Subject {
            title_inherited: true,
            forked: true,
            parent_role: Some("celery.pool_worker"),
            ..subject("[celeryd: w1@host:ForkPoolWorker-3]")
        };
        assert_eq!(role(&rules, &copy), None);
    }

    #[test]
    fn airflow_titles() {
        let rules = Rules::builtin();
        let cases = [
            (
                "/venv/bin/python3 /venv/bin/airflow scheduler",
                "airflow.scheduler",
                ids(&[]),
            ),
            (
                "airflow scheduler -- DagFileProcessorManager",
                "airflow.dag_processor_manager",
                ids(&[]),
            ),
            (
                "airflow executor -- LocalExecutor",
                "airflow.executor",
                ids(&[("executor", "LocalExecutor")]),
            ),
            (
                "airflow worker -- LocalExecutor",
                "airflow.local_worker",
                ids(&[]),
            ),
            (
                "airflow worker -- LocalExecutor: ['airflow', 'tasks', 'run', 'etl', 'load', 'manual__2026-11-24T15:47:24+00:00', '--local']",
                "airflow.local_worker",
                ids(&[
                    ("dag_id", "etl"),
                    ("task_id", "load"),
                    ("run_id", "manual__2026-11-24T15:47:24+00:00"),
                ]),
            ),
            (
                "airflow task supervisor: ['airflow', 'tasks', 'run', 'etl', 'load', 'scheduled__x', '--local']",
                "airflow.task_supervisor",
                ids(&[
                    ("dag_id", "etl"),
                    ("task_id", "load"),
                    ("run_id", "scheduled__x"),
                ]),
            ),
            (
                "airflow task runner: etl load manual__2026-11-24T15:47:24+00:00 2",
                "airflow.task_runner",
                ids(&[
                    ("dag_id", "etl"),
                    ("task_id", "load"),
                    ("run_id", "manual__2026-11-24T15:47:24+00:00"),
                    ("job_id", "2"),
                ]),
            ),
            (
                "/venv/bin/python3 /venv/bin/airflow tasks run etl load scheduled__x --local --subdir DAGS_FOLDER/etl.py",
                "airflow.task_command",
                ids(&[
                    ("dag_id", "etl"),
                    ("task_id", "load"),
                    ("run_id", "scheduled__x"),
                ]),
            ),
            (
                "airflow worker -- LocalExecutor: 0193a4f2-0000-7000-8000-00000000abcd",
                "airflow3.local_worker",
                ids(&[("ti_id", "0193a4f2-0000-7000-8000-00000000abcd")]),
            ),
            (
                "airflow worker -- LocalExecutor: <idle>",
                "airflow3.local_worker",
                ids(&[]),
            ),
            (
                "airflow supervisor: 0193a4f2-0000-7000-8000-00000000abcd",
                "airflow3.celery_supervisor",
                ids(&[("ti_id", "0193a4f2-0000-7000-8000-00000000abcd")]),
            ),
        ];
        for (title, expected, identity) in cases {
            assert_eq!(
                role(&rules, &subject(title)),
                Some((expected.to_owned(), identity)),
                "{title}"
            );
        }
        let (local, _) = rules
            .classify(&subject("airflow worker -- LocalExecutor"))
            .unwrap();
        assert!(
            local.daemonic_root,
            "Airflow 2 LocalExecutor workers are daemonic"
        );
        let (a3, _) = rules
            .classify(&subject("airflow worker -- LocalExecutor: <idle>"))
            .unwrap();
        assert!(!a3.daemonic_root, "Airflow 3 LocalExecutor workers are not");
    }

    #[test]
    fn dag_file_processor_airflow3_task_and_resource_tracker_titles() {
        let rules = Rules::builtin();
        let cases = [
            (
                "airflow scheduler - DagFileProcessor /opt/airflow/dags/etl.py",
                "airflow.dag_file_processor",
                ids(&[("dag_file", "/opt/airflow/dags/etl.py")]),
            ),
            (
                "airflow worker -- 0193a4f2-0000-7000-8000-00000000abcd",
                "airflow3.task",
                ids(&[("ti_id", "0193a4f2-0000-7000-8000-00000000abcd")]),
            ),
            (
                "/usr/bin/python3 -c from multiprocessing.resource_tracker import main;main(6)",
                "python.mp_resource_tracker",
                ids(&[]),
            ),
            ("airflow serve-logs", "airflow.serve_logs", ids(&[])),
        ];
        for (title, expected, identity) in cases {
            let (role, captured) = rules
                .classify(&subject(title))
                .unwrap_or_else(|| panic!("{title}"));
            assert_eq!(
                (role.id.as_str(), captured),
                (expected, identity),
                "{title}"
            );
            assert!(!role.daemonic_root, "{title}");
        }
        // Not an Airflow 3 task process: its LocalExecutor supervisor, and the scheduler.
        for (title, expected) in [
            (
                "airflow worker -- LocalExecutor: 0193a4f2-0000-7000-8000-00000000abcd",
                "airflow3.local_worker",
            ),
            (
                "airflow scheduler -- DagFileProcessorManager",
                "airflow.dag_processor_manager",
            ),
        ] {
            assert_eq!(
                role(&rules, &subject(title)).unwrap().0,
                expected,
                "{title}"
            );
        }
    }

    #[test]
    fn multiprocessing_helpers() {
        let rules = Rules::builtin();
        let spawn = "/usr/bin/python3 -B -c from multiprocessing.spawn import spawn_main; spawn_main(tracker_fd=5, pipe_handle=7) --multiprocessing-fork";
        assert_eq!(
            role(&rules, &subject(spawn)).unwrap().0,
            "python.mp_spawn_child"
        );
        let server = "/usr/bin/python3 -c from multiprocessing.forkserver import main; main(8, 9, ['__main__'], **{})";
        assert_eq!(
            role(&rules, &subject(server)).unwrap().0,
            "python.mp_forkserver"
        );
        let served = Subject {
            title_inherited: true,
            forked: true,
            parent_role: Some("python.mp_forkserver"),
            ..subject(server)
        };
        assert_eq!(
            role(&rules, &served).unwrap().0,
            "python.mp_forkserver_child"
        );
    }

    #[test]
    fn user_rules_come_first_and_errors_name_the_rule() {
        let user = r#"
[[role]]
id = "acme.daemon"
label = "ACME daemonic worker"
title = '^acme-worker (?P<queue>\w+)'
daemonic = true
"#;
        let rules = Rules::with_user_text("acme.toml", user).unwrap();
        let (role, identity) = rules.classify(&subject("acme-worker billing")).unwrap();
        assert_eq!(
            (role.id.as_str(), role.daemonic_root),
            ("acme.daemon", true)
        );
        assert_eq!(identity, ids(&[("queue", "billing")]));
        assert!(rules.to_toml().contains("# from acme.toml"));
        let reparsed = Rules::with_user_text("again", &rules.to_toml()).unwrap();
        assert_eq!(reparsed.rules().len(), 2 * rules.rules().len() - 1);

        let bad_regex = "[[role]]\nid = \"x\"\nlabel = \"X\"\ntitle = \"(unclosed\"\n";
        let error = Rules::with_user_text("bad.toml", bad_regex)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("bad.toml: rule 1 (x): title is not a valid regex"),
            "{error}"
        );
        assert!(!error.contains('\n'), "{error}");
        let no_condition = "[[role]]\nid = \"x\"\nlabel = \"X\"\n";
        let error = Rules::with_user_text("c.toml", no_condition)
            .unwrap_err()
            .to_string();
        assert!(error.contains("give at least one of"), "{error}");
        let typo = "[[role]]\nid = \"x\"\nlabel = \"X\"\ntitel = \"y\"\n";
        let error = Rules::with_user_text("t.toml", typo)
            .unwrap_err()
            .to_string();
        assert!(error.contains("titel"), "{error}");
    }
}
