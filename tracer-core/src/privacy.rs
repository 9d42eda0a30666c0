//! What the tracer keeps of a process's secrets: nothing by default. Command lines can be
//! redacted by pattern (`--redact`), and environment variables are never read unless the
//! operator names them (`--capture-env`). Both apply before an event reaches the model, so
//! no sink (terminal, trace file, report) ever sees what was removed.

use regex::Regex;

use crate::error::{Error, Result};
use crate::event::{Environment, Event};

/// What replaces redacted text.
pub const REDACTED: &str = "[REDACTED]";

#[derive(Clone, Debug, Default)]
pub struct Privacy {
    redact: Vec<Regex>,
    env: Vec<EnvPattern>,
}

/// An allowlisted variable name, or a prefix (`AIRFLOW_CTX_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum EnvPattern {
    Name(String),
    Prefix(String),
}

impl EnvPattern {
    fn matches(&self, name: &str) -> bool {
        match self {
            EnvPattern::Name(wanted) => name == wanted,
            EnvPattern::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

impl Privacy {
    /// `redact`: regular expressions; where one has capture groups only the groups are
    /// replaced (`--password[= ](\S+)` keeps the flag), else the whole match. `env`: variable
    /// names, a trailing `*` making one a prefix.
    pub fn new(redact: &[String], env: &[String]) -> Result<Privacy> {
        let redact = redact
            .iter()
            .map(|pattern| {
                Regex::new(pattern).map_err(|e| {
                    // The regex crate draws a multi-line diagram; its last line is the cause.
                    let text = e.to_string();
                    let cause = text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
                    let cause = cause.trim().trim_start_matches("error: ");
                    Error::Privacy(format!(
                        "--redact {pattern:?} is not a regular expression: {cause}"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let env = env
            .iter()
            .map(|name| {
                let (stem, prefix) = match name.strip_suffix('*') {
                    Some(stem) => (stem, true),
                    None => (name.as_str(), false),
                };
                let valid = !stem.is_empty()
                    && stem
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    return Err(Error::Privacy(format!(
                        "--capture-env {name:?}: give a variable name (letters, digits, _), optionally ending in * for a prefix"
                    )));
                }
                Ok(if prefix {
                    EnvPattern::Prefix(stem.to_owned())
                } else {
                    EnvPattern::Name(stem.to_owned())
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Privacy { redact, env })
    }

    /// Whether any environment variable is to be read at all.
    pub fn captures_env(&self) -> bool {
        !self.env.is_empty()
    }

    /// The allowlisted variables of a raw `/proc/PID/environ` (NUL-separated `NAME=value`).
    /// Nothing else is copied out of `raw`.
    pub fn env_from(&self, raw: &[u8]) -> Environment {
        let mut env = Environment::new();
        if self.env.is_empty() {
            return env;
        }
        for entry in raw.split(|&b| b == 0) {
            let Some(equals) = entry.iter().position(|&b| b == b'=') else {
                continue;
            };
            let Ok(name) = std::str::from_utf8(&entry[..equals]) else {
                continue;
            };
            if self.env.iter().any(|pattern| pattern.matches(name)) {
                let mut value = [crate::text::text_of(&entry[equals + 1..])];
                self.redact_args(&mut value);
                let [value] = value;
                env.insert(name.to_owned(), value);
            }
        }
        env
    }

    /// Redacts an event's command line (and title) in place.
    pub fn apply(&self, event: &mut Event) {
        if self.redact.is_empty() {
            return;
        }
        match event {
            Event::Exec(exec) => self.redact_args(&mut exec.cmdline),
            Event::Snapshot(snapshot) => self.redact_args(&mut snapshot.cmdline),
            Event::Rename(rename) => {
                if let Some(cmdline) = &mut rename.cmdline {
                    self.redact_args(cmdline);
                }
            }
            _ => {}
        }
    }

    /// Matches each pattern against the arguments joined by spaces (the command line as `ps`
    /// shows it, so a pattern can span a flag and its value) and replaces, inside each
    /// argument, the parts a match covers.
    pub fn redact_args(&self, args: &mut [String]) {
        if self.redact.is_empty() || args.is_empty() {
            return;
        }
        let joined = args.join(" ");
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for pattern in &self.redact {
            for captures in pattern.captures_iter(&joined) {
                let groups: Vec<_> = captures.iter().skip(1).flatten().collect();
                if groups.is_empty() {
                    let whole = captures.get(0).expect("group 0 is the match");
                    spans.push((whole.start(), whole.end()));
                } else {
                    spans.extend(groups.iter().map(|g| (g.start(), g.end())));
                }
            }
        }
        spans.retain(|(start, end)| start < end);
        if spans.is_empty() {
            return;
        }
        spans.sort_unstable();
        let mut offset = 0;
        for arg in args.iter_mut() {
            let (start, end) = (offset, offset + arg.len());
            offset = end + 1;
            let mut redacted = String::new();
            let mut cursor = start;
            for &(from, to) in &spans {
                let (from, to) = (from.max(cursor), to.min(end));
                if from >= to {
                    continue;
                }
                redacted.push_str(&joined[cursor..from]);
                redacted.push_str(REDACTED);
                cursor = to;
            }
            if cursor != start {
                redacted.push_str(&joined[cursor..end]);
                *arg = redacted;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split(' ').map(String::from).collect()
    }

    fn redacted(patterns: &[&str], text: &str) -> String {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let privacy = Privacy::new(&patterns, &[]).unwrap();
        let mut args = args(text);
        privacy.redact_args(&mut args);
        args.join(" ")
    }

    #[test]
    fn redacts_matches_or_only_their_groups() {
        assert_eq!(
            redacted(&["--password=\\S+"], "app --password=hunter2 --user=x"),
            "app [REDACTED] --user=x"
        );
        assert_eq!(
            redacted(&["--password[= ](\\S+)"], "app --password hunter2 --user=x"),
            "app --password [REDACTED] --user=x"
        );
        assert_eq!(
            redacted(&["--password[= ](\\S+)"], "app --password=hunter2"),
            "app --password=[REDACTED]"
        );
        assert_eq!(
            redacted(&["token=(\\w+)", "secret"], "a token=abc secret:secret b"),
            "a token=[REDACTED] [REDACTED]:[REDACTED] b"
        );
        assert_eq!(
            redacted(&["postgres://[^@]*@"], "psql postgres://u:pw@db/x"),
            "psql [REDACTED]db/x"
        );
        assert_eq!(redacted(&["nothing"], "sleep 600"), "sleep 600");
        assert_eq!(redacted(&["x*"], "sleep 600"), "sleep 600", "empty matches");
        // Overlapping patterns, multi-byte text.
        assert_eq!(
            redacted(&["pässwörd=\\S+", "wörd=(\\S+)"], "ünïcode pässwörd=ß€ ok"),
            "ünïcode [REDACTED] ok"
        );
    }

    #[test]
    fn only_allowlisted_variables_are_kept() {
        let none = Privacy::default();
        assert!(!none.captures_env());
        assert!(none.env_from(b"AIRFLOW_CTX_DAG_ID=etl\0").is_empty());

        let privacy = Privacy::new(
            &["sk-\\w+".into()],
            &["AIRFLOW_CTX_*".into(), "CELERY_WORKER".into()],
        )
        .unwrap();
        let env = privacy.env_from(
            b"AIRFLOW_CTX_DAG_ID=etl\0AWS_SECRET_ACCESS_KEY=abc\0CELERY_WORKER=w1\0\
              CELERY_WORKER_X=no\0AIRFLOW_CTX_TASK_ID=sk-123\0garbage\0\xff=1\0",
        );
        let expected: Environment = [
            ("AIRFLOW_CTX_DAG_ID", "etl"),
            ("AIRFLOW_CTX_TASK_ID", "[REDACTED]"),
            ("CELERY_WORKER", "w1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(env, expected);
    }

    #[test]
    fn bad_patterns_are_one_line_errors() {
        let error = Privacy::new(&["(".into()], &[]).unwrap_err().to_string();
        assert_eq!(
            error,
            "--redact \"(\" is not a regular expression: unclosed group"
        );
        for bad in ["*", "A-B", "PATH=*", ""] {
            assert!(Privacy::new(&[], &[bad.into()]).is_err(), "{bad}");
        }
    }
}
