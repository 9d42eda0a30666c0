//! Exports of a recording: a Perfetto (Chrome JSON) trace, a Graphviz lineage graph, or a
//! smaller trace of a subtree and time window, all from one [`Timeline`].

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::event::{Event, ProcessKey};
use crate::history::{History, Life, Timeline};
use crate::ingest::Sink;
use crate::model::Model;
use crate::sanitize::sanitize;
use crate::trace::TraceWriter;

/// Which part of a recording to export.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// This pid's lineage and descendants only.
    pub pid: Option<u32>,
    /// ns since boot.
    pub from: Option<u64>,
    pub to: Option<u64>,
}

impl Selection {
    fn lives<'a>(&self, history: &'a History) -> Result<Vec<&'a Life>> {
        let around = self.pid.map(|pid| history.around(pid));
        if let (Some(pid), Some(around)) = (self.pid, &around)
            && around.is_empty()
        {
            return Err(Error::UnknownPid(pid));
        }
        let (from, to) = (self.from.unwrap_or(0), self.to.unwrap_or(u64::MAX));
        Ok(history
            .lives
            .iter()
            .filter(|l| around.as_ref().is_none_or(|a| a.contains(&l.key)))
            .filter(|l| l.start <= to && l.end.unwrap_or(history.end) >= from)
            .collect())
    }

    fn covers(&self, ts: u64) -> bool {
        self.from.is_none_or(|f| ts >= f) && self.to.is_none_or(|t| ts <= t)
    }
}

/// Lives in depth-first lineage order, each with its depth: creators before what they
/// created, siblings by start.
fn lineage_order<'a>(lives: &[&'a Life]) -> Vec<(&'a Life, usize)> {
    let keys: HashSet<ProcessKey> = lives.iter().map(|l| l.key).collect();
    let mut created: HashMap<ProcessKey, Vec<&Life>> = HashMap::new();
    let mut roots = Vec::new();
    for &life in lives {
        match life.creator.filter(|c| keys.contains(c)) {
            Some(creator) => created.entry(creator).or_default().push(life),
            None => roots.push(life),
        }
    }
    let by_start = |a: &&Life, b: &&Life| (a.start, a.key).cmp(&(b.start, b.key));
    roots.sort_by(by_start);
    for list in created.values_mut() {
        list.sort_by(by_start);
    }
    let mut order = Vec::with_capacity(lives.len());
    let mut stack: Vec<(&Life, usize)> = roots.into_iter().rev().map(|l| (l, 0)).collect();
    while let Some((life, depth)) = stack.pop() {
        order.push((life, depth));
        for &child in created.get(&life.key).into_iter().flatten().rev() {
            stack.push((child, depth + 1));
        }
    }
    order
}

/// pid_max is at most 2^22: processes that reused a pid get tracks of their own above it.
const PID_SPACE: u64 = 1 << 22;

/// A Chrome JSON trace (which the Perfetto UI opens): one process track per process, ordered
/// and indented by lineage, its lifetime as a slice, exec/rename/signal/orphaning as instants
/// on it, and findings as instants on it and across the whole timeline.
pub fn perfetto(history: &History, selection: &Selection) -> Result<Value> {
    let lives = selection.lives(history)?;
    let origin = history.start();
    let micros = |ts: u64| ts.saturating_sub(origin) as f64 / 1000.0;
    let mut seen_pids: HashMap<u32, u64> = HashMap::new();
    let mut events = Vec::new();
    for (sort, (life, depth)) in lineage_order(&lives).into_iter().enumerate() {
        let reuse = seen_pids.entry(life.key.pid).or_insert(0);
        let track = u64::from(life.key.pid) + *reuse * PID_SPACE;
        *reuse += 1;
        let title = sanitize(&life.title);
        let name = format!("{}{} {}", "· ".repeat(depth), life.key.pid, title);
        events.push(
            json!({"ph": "M", "name": "process_name", "pid": track, "tid": track,
            "args": {"name": name}}),
        );
        events.push(
            json!({"ph": "M", "name": "process_sort_index", "pid": track, "tid": track,
            "args": {"sort_index": sort}}),
        );
        events.push(
            json!({"ph": "M", "name": "thread_name", "pid": track, "tid": track,
            "args": {"name": "lifetime"}}),
        );
        let start = life.start.max(selection.from.unwrap_or(0));
        let end = life
            .end
            .unwrap_or(history.end)
            .min(selection.to.unwrap_or(u64::MAX));
        let mut args = json!({
            "pid": life.key.pid,
            "start_time": life.key.start_time,
            "title": title,
            "daemonic": life.daemonic,
        });
        if let Some(creator) = life.creator {
            args["created_by"] = json!(creator.pid);
        }
        if let Some(role) = &life.role {
            args["role"] = json!(sanitize(role));
        }
        if let Some((_, new_ppid)) = life.orphaned {
            args["orphaned_adopted_by"] = json!(new_ppid);
        }
        args["end"] = json!(
            life.how
                .as_deref()
                .unwrap_or("alive at the end of the recording")
        );
        events.push(
            json!({"ph": "X", "cat": "process", "name": title, "pid": track,
            "tid": track, "ts": micros(start), "dur": micros(end) - micros(start), "args": args}),
        );
        for mark in life.marks.iter().filter(|m| selection.covers(m.ts)) {
            let text = sanitize(&mark.text);
            events.push(json!({"ph": "i", "s": "t", "cat": mark.kind,
                "name": format!("{} {}", mark.kind, text), "pid": track, "tid": track,
                "ts": micros(mark.ts), "args": {"detail": text}}));
            if mark.kind == "finding" {
                events.push(json!({"ph": "i", "s": "g", "cat": "finding",
                    "name": format!("FINDING {} {}", life.key.pid, text), "pid": track,
                    "tid": track, "ts": micros(mark.ts)}));
            }
        }
    }
    Ok(json!({
        "displayTimeUnit": "ms",
        "otherData": {
            "host": history.header.as_ref().map(|h| sanitize(&h.host).into_owned()),
            "boot_ns_at_zero": origin,
        },
        "traceEvents": events,
    }))
}

fn dot_text(text: &str, max: usize) -> String {
    let text = sanitize(text);
    let mut cut: String = text.chars().take(max).collect();
    if text.chars().count() > max {
        cut.push('…');
    }
    cut.replace('\\', "\\\\").replace('"', "\\\"")
}

fn node_id(key: ProcessKey) -> String {
    format!("p{}_{}", key.pid, key.start_time)
}

/// A Graphviz lineage graph: an edge from each process to each it created; processes started
/// by daemonic ones on red edges; an orphan's adoption as a dashed edge from its new parent.
pub fn dot(history: &History, selection: &Selection) -> Result<String> {
    let lives = selection.lives(history)?;
    let keys: HashSet<ProcessKey> = lives.iter().map(|l| l.key).collect();
    let mut out = String::from(
        "digraph lineage {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", \
         fillcolor=white, fontname=\"DejaVu Sans Mono\", fontsize=10];\n  edge [color=gray40];\n",
    );
    for (life, _) in lineage_order(&lives) {
        let mut label = format!("{} {}", life.key.pid, dot_text(&life.title, 48));
        if let Some(role) = &life.role {
            let _ = write!(label, "\\n({})", dot_text(role, 48));
        }
        let mut attributes = Vec::new();
        if life.orphaned.is_some() {
            label.push_str("\\norphan");
            attributes.push("fillcolor=\"#ffe08a\", color=darkorange, penwidth=2".to_owned());
        } else if life.daemonic {
            attributes.push("fillcolor=\"#f6d5fa\", color=magenta3".to_owned());
        }
        if life.daemonic && life.orphaned.is_some() {
            label.push_str(" (daemonic)");
        }
        if let Some(how) = &life.how {
            let _ = write!(label, "\\n{}", dot_text(how, 48));
            attributes.push("style=\"rounded,filled,dashed\", fontcolor=gray30".to_owned());
        }
        attributes.insert(0, format!("label=\"{label}\""));
        let _ = writeln!(out, "  {} [{}];", node_id(life.key), attributes.join(", "));
    }
    for &life in &lives {
        if let Some(creator) = life.creator.filter(|c| keys.contains(c)) {
            let daemonic_parent = history.life(creator).is_some_and(|c| c.daemonic);
            let style = if daemonic_parent {
                " [color=red, penwidth=2, label=\"daemonic spawn\", fontcolor=red]"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {} -> {}{style};",
                node_id(creator),
                node_id(life.key)
            );
        }
        if let Some((ts, new_ppid)) = life.orphaned {
            let adopter = lives.iter().find(|l| {
                l.key.pid == new_ppid && l.start <= ts && l.end.is_none_or(|end| end >= ts)
            });
            if let Some(adopter) = adopter {
                let _ = writeln!(
                    out,
                    "  {} -> {} [style=dashed, color=darkorange, label=\"adopted\", fontcolor=darkorange, constraint=false];",
                    node_id(adopter.key),
                    node_id(life.key)
                );
            }
        }
    }
    out.push_str("}\n");
    Ok(out)
}

fn snapshot_of(model: &Model, key: ProcessKey, ts: u64) -> Option<Event> {
    Some(Event::Snapshot(model.get(model.find(key)?).snapshot(ts)))
}

/// A trace of the selection that `replay` reads like any other, written to `out`: processes
/// alive at `from` become snapshot lines at `from`, then the selection's observed events up
/// to `to`. Derived lines (findings, reparents the model derives) are left out: replay
/// derives them.
pub fn jsonl<S: Sink + Clone + Default, W: std::io::Write>(
    timeline: &Timeline<S>,
    selection: &Selection,
    out: W,
) -> Result<W> {
    let history = timeline.history();
    let keys: HashSet<ProcessKey> = selection.lives(history)?.iter().map(|l| l.key).collect();
    let recording = timeline.recording();
    let mut header = recording.header.clone();
    let mut writer = TraceWriter::new(out);
    let mut snapshots = Vec::new();
    if let Some(from) = selection.from.filter(|&f| f > header.ts) {
        let state = timeline.at(from)?;
        let mut alive: Vec<ProcessKey> = keys
            .iter()
            .copied()
            .filter(|&k| state.model.find(k).is_some())
            .collect();
        alive.sort();
        snapshots.extend(
            alive
                .into_iter()
                .filter_map(|k| snapshot_of(&state.model, k, from)),
        );
        header.ts = from;
    }
    writer.write_header(&header)?;
    for snapshot in &snapshots {
        writer.write_event(snapshot)?;
    }
    let after = selection.from.unwrap_or(0);
    for event in &recording.events {
        if event.ts() > selection.to.unwrap_or(u64::MAX) {
            continue;
        }
        if selection.from.is_some() && event.ts() <= after {
            continue;
        }
        let wanted = match event {
            Event::Lost(_) => true,
            _ => selection.pid.is_none() || keys.contains(&event.key()),
        };
        if wanted {
            writer.write_event(event)?;
        }
    }
    writer.flush()?;
    Ok(writer.into_inner())
}
