//! What the TUI remembers from the event stream beyond the model: processes that exited
//! lately (the model forgets an exited process unless a descendant lives) and the latest
//! findings. Kept by the sink, so the model stays the pure process tree.

use std::collections::{HashMap, VecDeque};

use tracer_core::event::{Event, Finding, ProcessKey};
use tracer_core::ingest::Sink;
use tracer_core::model::Model;
use tracer_core::words::exit_description;

/// An exited process, as the tree shows it for a while after its exit.
#[derive(Clone, Debug, PartialEq)]
pub struct Tombstone {
    pub key: ProcessKey,
    /// The parent it had when it exited: it is drawn there.
    pub ppid: u32,
    pub title: String,
    pub role: Option<String>,
    pub daemonic: bool,
    pub orphaned: bool,
    pub exit_ts: u64,
    /// `exit code 0`, `killed by SIGKILL`.
    pub how: String,
    pub killed: bool,
}

/// How long (trace time) an exited process stays in the tree.
pub const EXITED_FOR_NS: u64 = 10_000_000_000;
/// Most exited processes kept, whatever their age: an exit storm must not grow the tree.
const EXITED_MAX: usize = 256;
/// Findings kept for the findings pane.
const FINDINGS_MAX: usize = 256;

/// What a live process looked like at its latest event: its title and verdict, which the
/// exit event does not carry.
#[derive(Clone, Debug)]
struct Seen {
    title: String,
    role: Option<String>,
    daemonic: bool,
    orphaned: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Feed {
    seen: HashMap<ProcessKey, Seen>,
    exited: VecDeque<Tombstone>,
    findings: VecDeque<Finding>,
    /// Findings seen in all, kept or not.
    pub findings_total: u64,
}

/// The feed of `replay --tui`, kept at each of its timeline's checkpoints.
impl Sink for Feed {
    fn event(&mut self, event: &Event, model: &Model) -> std::io::Result<()> {
        self.observe(event, model);
        Ok(())
    }
}

impl Feed {
    /// One event, after the model applied it.
    pub fn observe(&mut self, event: &Event, model: &Model) {
        match event {
            Event::Finding(finding) => {
                self.findings_total += 1;
                if self.findings.len() == FINDINGS_MAX {
                    self.findings.pop_front();
                }
                self.findings.push_back((**finding).clone());
            }
            Event::Lost(_) => {}
            Event::Exit(exit) => {
                let key = event.key();
                let Some(seen) = self.seen.remove(&key) else {
                    return;
                };
                if self.exited.len() == EXITED_MAX {
                    self.exited.pop_front();
                }
                self.exited.push_back(Tombstone {
                    key,
                    ppid: exit.ppid,
                    title: seen.title,
                    role: seen.role,
                    daemonic: seen.daemonic,
                    orphaned: seen.orphaned,
                    exit_ts: exit.ts,
                    how: exit_description(exit.exit_code, exit.signal, exit.core_dumped),
                    killed: exit.signal.is_some(),
                });
            }
            _ => {
                let key = event.key();
                if let Some(index) = model.find(key) {
                    let process = model.get(index);
                    self.seen.insert(
                        process.key,
                        Seen {
                            title: process.title(),
                            role: process.class.role.as_ref().map(|r| r.label.clone()),
                            daemonic: process.class.is_daemonic(),
                            orphaned: process.orphaned.is_some(),
                        },
                    );
                }
                // A pid now held by another process: the old holder's exit was lost.
                if self.seen.len() > model.live_count() * 2 + 1024 {
                    self.seen.retain(|key, _| model.find(*key).is_some());
                }
            }
        }
    }

    /// Processes that exited within [`EXITED_FOR_NS`] of `now`, oldest first.
    pub fn exited(&self, now: u64) -> impl Iterator<Item = &Tombstone> {
        self.exited
            .iter()
            .filter(move |t| now.saturating_sub(t.exit_ts) <= EXITED_FOR_NS)
    }

    /// The kept findings, oldest first.
    pub fn findings(&self) -> impl DoubleEndedIterator<Item = &Finding> + ExactSizeIterator {
        self.findings.iter()
    }
}
