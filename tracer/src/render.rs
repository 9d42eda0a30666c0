//! Text views of the model and its events: the process tree, one line per event, and the
//! status line. Every string from a process goes through [`sanitize`].

use std::fmt::Write as _;

use tracer_core::event::{Event, SignalResult};
use tracer_core::ingest::Status;
use tracer_core::model::{Model, Process, ProcessIndex};
use tracer_core::sanitize::{LINE_TEXT_CAP, clip, sanitize};
use tracer_core::words::{duration, exit_description, signal_name};

#[derive(Clone, Debug, Default)]
pub struct TreeStyle {
    /// ANSI colours (orphans stand out).
    pub color: bool,
    /// Show kthreadd's children.
    pub kernel_threads: bool,
    /// Cut lines to this many characters.
    pub width: Option<usize>,
}

const YELLOW: &str = "\x1b[33m";
const MAGENTA: &str = "\x1b[35m";
const RED: &str = "\x1b[31m";
const BOLD: &str = "\x1b[1m";
const RESET: &str = "\x1b[0m";

fn truncate(line: &mut String, width: Option<usize>) {
    if let Some(width) = width
        && let Some((cut, _)) = line.char_indices().nth(width)
    {
        line.truncate(cut);
    }
}

fn annotations(model: &Model, process: &Process) -> String {
    let mut notes = String::new();
    let class = &process.class;
    match (&class.role, class.is_daemonic()) {
        (Some(role), true) => {
            let _ = write!(notes, "  ({}; daemonic)", role.label);
        }
        (Some(role), false) => {
            let _ = write!(notes, "  ({})", role.label);
        }
        (None, true) => notes.push_str("  (daemonic)"),
        (None, false) => {}
    }
    if let Some(orphaning) = &process.orphaned {
        let _ = write!(
            notes,
            "  orphaned: parent {} [{}] exited {} ago",
            orphaning.parent.pid,
            sanitize(&orphaning.parent_comm),
            duration(model.now().saturating_sub(orphaning.ts))
        );
    }
    notes
}

/// The live process tree, one line per process, children under their current parent.
pub fn tree_lines(model: &Model, style: &TreeStyle) -> Vec<String> {
    let mut lines = Vec::new();
    let visible = |index: ProcessIndex| style.kernel_threads || !model.get(index).kernel_thread;
    let sorted_children = |pid: u32| model.children_by_pid(pid, visible);
    // Depth-first with an explicit stack: process trees can be deeper than the call stack.
    let mut stack: Vec<(ProcessIndex, String, bool, bool)> = model
        .roots()
        .into_iter()
        .filter(|&r| visible(r))
        .rev()
        .map(|r| (r, String::new(), true, true))
        .collect();
    while let Some((index, prefix, is_last, is_root)) = stack.pop() {
        let process = model.get(index);
        let branch = match (is_root, is_last) {
            (true, _) => "",
            (false, true) => "└─ ",
            (false, false) => "├─ ",
        };
        let notes = annotations(model, process);
        let mut line = format!(
            "{prefix}{branch}{} {}{notes}",
            process.key.pid,
            sanitize(&process.title())
        );
        truncate(&mut line, style.width);
        if style.color {
            if process.orphaned.is_some() {
                line = format!("{YELLOW}{line}{RESET}");
            } else if process.class.is_daemonic() {
                line = format!("{MAGENTA}{line}{RESET}");
            }
        }
        lines.push(line);
        let child_prefix = match (is_root, is_last) {
            (true, _) => prefix.clone(),
            (false, true) => format!("{prefix}   "),
            (false, false) => format!("{prefix}│  "),
        };
        let children = sorted_children(process.key.pid);
        let count = children.len();
        for (i, child) in children.into_iter().enumerate().rev() {
            stack.push((child, child_prefix.clone(), i + 1 == count, false));
        }
    }
    lines
}

/// Live orphans, newest first, at most `max` lines (and a count of the rest): where they are
/// now, whom they lost, and what they belonged to.
pub fn orphan_lines(model: &Model, max: usize, width: Option<usize>) -> Vec<String> {
    let mut orphans: Vec<&Process> = model
        .processes()
        .map(|(_, p)| p)
        .filter(|p| p.is_alive() && p.orphaned.is_some())
        .collect();
    orphans.sort_by_key(|p| std::cmp::Reverse(p.orphaned.as_ref().map_or(0, |o| o.ts)));
    let mut lines: Vec<String> = orphans
        .iter()
        .take(max)
        .map(|process| {
            let orphaning = process.orphaned.as_ref().expect("filtered on orphans");
            let mut line = format!(
                "orphan {} {} under {}, parent {} [{}] died {} ago",
                process.key.pid,
                sanitize(&process.title()),
                process.ppid,
                orphaning.parent.pid,
                sanitize(&orphaning.parent_comm),
                duration(model.now().saturating_sub(orphaning.ts))
            );
            let identity: Vec<String> = process
                .class
                .identity
                .iter()
                .map(|(k, v)| format!("{k}={}", sanitize(v)))
                .collect();
            if !identity.is_empty() {
                let _ = write!(line, " [{}]", identity.join(" "));
            }
            truncate(&mut line, width);
            line
        })
        .collect();
    if orphans.len() > max {
        lines.push(format!("... and {} more orphans", orphans.len() - max));
    }
    lines
}

/// One human line per event, for the streaming view.
pub fn event_line(event: &Event, color: bool) -> String {
    let secs = event.ts() as f64 / 1e9;
    let (name, details, alarm) = match event {
        Event::Snapshot(e) => (
            "snapshot",
            format!(
                "{} ppid {} {}",
                e.pid,
                e.ppid,
                sanitize(&clip(&e.cmdline.join(" "), LINE_TEXT_CAP))
            ),
            false,
        ),
        Event::ProcessStart(e) => (
            "start",
            format!("{} ppid {} [{}]", e.pid, e.ppid, sanitize(&e.comm)),
            false,
        ),
        Event::Exec(e) => (
            "exec",
            format!(
                "{} {}{}",
                e.pid,
                sanitize(&clip(&e.cmdline.join(" "), LINE_TEXT_CAP)),
                if e.old_pid != e.pid {
                    format!(" (from thread {})", e.old_pid)
                } else {
                    String::new()
                }
            ),
            false,
        ),
        Event::Exit(e) => (
            "exit",
            format!(
                "{} [{}] {}",
                e.pid,
                sanitize(&e.comm),
                exit_description(e.exit_code, e.signal, e.core_dumped)
            ),
            e.signal.is_some(),
        ),
        Event::Rename(e) => (
            "rename",
            format!(
                "{} [{}]{}",
                e.pid,
                sanitize(&e.comm),
                e.cmdline
                    .as_ref()
                    .map(|c| format!(" {}", sanitize(&clip(&c.join(" "), LINE_TEXT_CAP))))
                    .unwrap_or_default()
            ),
            false,
        ),
        Event::Signal(e) => (
            "signal",
            format!(
                "{} to {} from {} [{}]{}",
                signal_name(e.sig),
                e.target_pid,
                e.sender_pid,
                sanitize(&e.sender_comm),
                if e.result == SignalResult::Delivered {
                    String::new()
                } else {
                    format!(" ({})", e.result.name())
                }
            ),
            false,
        ),
        Event::Reparent(e) => (
            "reparent",
            format!(
                "{} orphaned: parent {} exited, adopted by {}",
                e.pid, e.old_ppid, e.new_ppid
            ),
            true,
        ),
        Event::Finding(e) => ("FINDING", sanitize(&e.summary).into_owned(), true),
        Event::Lost(e) => (
            "LOST",
            format!(
                "{} kernel records (start {}, exec {}, exit {}, rename {}, signal {})",
                e.count,
                e.by_kind.process_start,
                e.by_kind.exec,
                e.by_kind.exit,
                e.by_kind.rename,
                e.by_kind.signal
            ),
            true,
        ),
        Event::Interpreter(e) => (
            "python",
            format!("{} {}", e.pid, sanitize(&e.describe())),
            false,
        ),
        // An event kind newer than this view: named, not described.
        other => (other.name(), String::new(), false),
    };
    let line = format!("{secs:>14.6} {name:<8} {details}");
    match (color, alarm, event) {
        (true, true, Event::Lost(_) | Event::Finding(_)) => format!("{BOLD}{RED}{line}{RESET}"),
        (true, true, _) => format!("{YELLOW}{line}{RESET}"),
        _ => line,
    }
}

pub fn status_line(model: &Model, status: &Status) -> String {
    format!(
        "{} processes, {} daemonic, {} orphaned | {} events ({:.0}/s) | lost {} | up {}",
        model.live_count(),
        model.daemonic_count(),
        model.orphan_count(),
        status.events,
        status.rate,
        status.lost.total(),
        duration(status.now_ts.saturating_sub(status.started_ts))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracer_core::fixtures::{self, key};

    fn snapshot(pid: u32, ppid: u32, cmdline: &str) -> Event {
        fixtures::snapshot(
            1_000_000_000,
            key(pid, pid as u64 * 10_000_000),
            ppid,
            cmdline,
        )
    }

    fn model() -> Model {
        let mut model = Model::new(10_000_000);
        let mut derived = Vec::new();
        for event in [
            snapshot(1, 0, "/sbin/init"),
            snapshot(2, 0, "kthreadd"),
            snapshot(3, 2, "kworker/0:0"),
            snapshot(10, 1, "sshd"),
            snapshot(11, 10, "bash"),
            snapshot(12, 11, "sleep 100"),
            snapshot(13, 10, "bash\x1b]0;pwned\x07"),
            snapshot(20, 1, "celery"),
            fixtures::fork(
                2_000_000_000,
                key(21, 2_000_000_000),
                key(20, 200_000_000),
                "celery",
            ),
            fixtures::fork(
                2_100_000_000,
                key(22, 2_100_000_000),
                key(21, 2_000_000_000),
                "celery",
            ),
            fixtures::exit(
                5_000_000_000,
                key(21, 2_000_000_000),
                20,
                (None, Some(9)),
                1,
            ),
        ] {
            model.apply(&event, &mut derived);
        }
        model
    }

    #[test]
    fn tree_shows_hierarchy_orphans_and_hides_kernel_threads() {
        let lines = tree_lines(&model(), &TreeStyle::default());
        assert_eq!(
            lines,
            [
                "1 /sbin/init",
                "├─ 10 sshd",
                "│  ├─ 11 bash",
                "│  │  └─ 12 sleep 100",
                "│  └─ 13 bash\\x1b]0;pwned\\x07",
                "├─ 20 celery",
                "└─ 22 celery  orphaned: parent 21 [celery] exited 0ms ago",
            ]
        );
        let with_kernel = tree_lines(
            &model(),
            &TreeStyle {
                kernel_threads: true,
                width: Some(12),
                ..Default::default()
            },
        );
        assert_eq!(with_kernel[7..], ["2 kthreadd", "└─ 3 kworker"]);
    }

    #[test]
    fn orphans_are_listed_newest_first() {
        let lines = orphan_lines(&model(), 5, None);
        assert_eq!(
            lines,
            ["orphan 22 celery under 1, parent 21 [celery] died 0ms ago"]
        );
        assert!(orphan_lines(&model(), 0, None)[0].starts_with("... and 1 more"));
    }

    #[test]
    fn event_lines_are_single_and_escaped() {
        let line = event_line(&snapshot(13, 10, "evil\nline"), false);
        assert!(!line.contains('\n'));
        assert!(line.contains("evil\\nline"), "{line}");
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(64), "signal 64");
        assert_eq!(duration(3_723_000_000_000), "1h02m");
        assert_eq!(duration(12_345_000_000), "12.3s");
        assert_eq!(
            exit_description(None, Some(6), true),
            "killed by SIGABRT (core dumped)"
        );
    }
}
