//! What the offline commands read: trace files, or directories of them (an agent's
//! `--trace-dir`, traces gathered from a fleet). Files are sorted into histories: the rotated
//! files of one capture (same host, boot and series, consecutive) read in order as one trace;
//! everything else is a history of its own.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use tracer_core::trace::{TraceHeader, TraceReader};

use crate::files::open_trace;

/// One history: its files in reading order, and the first one's header.
pub(super) struct History {
    pub(super) files: Vec<PathBuf>,
    pub(super) header: TraceHeader,
}

impl History {
    /// A reader over every file, as one trace.
    pub(super) fn open(&self, lenient: bool) -> Result<TraceReader<BufReader<File>>> {
        let mut files = self.files.iter();
        let first = open_trace(files.next().expect("a history has a file"))?;
        let rest = files
            .map(|file| open_trace(file).map(|reader| reader.lenient(lenient)))
            .collect::<Result<Vec<_>>>()?;
        Ok(first.lenient(lenient).followed_by(rest))
    }

    /// `host`, and the boot and files when that is not enough to tell histories apart.
    pub(super) fn title(&self) -> String {
        let files = match self.files.as_slice() {
            [only] => only.display().to_string(),
            [first, .., last] => format!(
                "{} … {} ({} files)",
                first.display(),
                last.display(),
                self.files.len()
            ),
            [] => String::new(),
        };
        let boot: String = self.header.boot_id.chars().take(8).collect();
        format!("{} (boot {boot}): {files}", self.header.host)
    }
}

/// The trace files `paths` name: files as given, directories' `*.jsonl` files by name.
fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| anyhow!("cannot read directory {}: {e}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|file| file.is_file() && file.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        if found.is_empty() {
            bail!("{} holds no trace files (*.jsonl)", path.display());
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// The histories in `paths`, by host, then time.
pub(super) fn histories(paths: &[PathBuf]) -> Result<Vec<History>> {
    // Each file with the path that identifies it: one file named twice (`./d/x`, `d/x`) is
    // read once, under the name it was given.
    let mut traces: Vec<(PathBuf, PathBuf, TraceHeader)> = expand(paths)?
        .into_iter()
        .map(|file| {
            let header = open_trace(&file)?.header().clone();
            let identity = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            Ok((identity, file, header))
        })
        .collect::<Result<_>>()?;
    // A series' files together, in index order, whatever their times and names; other files
    // by time.
    let order = |header: &TraceHeader| match header.segment {
        Some(segment) => (segment.series, segment.index),
        None => (header.ts, 0),
    };
    traces.sort_by(|(a_id, _, a), (b_id, _, b)| {
        (&a.host, &a.boot_id, order(a), a_id).cmp(&(&b.host, &b.boot_id, order(b), b_id))
    });
    traces.dedup_by(|(a, _, _), (b, _, _)| a == b);
    let mut histories: Vec<History> = Vec::new();
    for (_, file, header) in traces {
        if let Some(last) = histories.last_mut()
            && continues(&last.header, last.files.len(), &header)
        {
            last.files.push(file);
            continue;
        }
        histories.push(History {
            files: vec![file],
            header,
        });
    }
    Ok(histories)
}

/// Whether `next` is the file after the `count` files of the history that `first` starts.
fn continues(first: &TraceHeader, count: usize, next: &TraceHeader) -> bool {
    let (Some(started), Some(following)) = (first.segment, next.segment) else {
        return false;
    };
    first.host == next.host
        && first.boot_id == next.boot_id
        && started.series == following.series
        && following.index as usize == started.index as usize + count
}

/// The one history of `paths`, for the commands that show one tree.
pub(super) fn one_history(paths: &[PathBuf]) -> Result<History> {
    let mut all = histories(paths)?;
    if all.len() > 1 {
        let titles: Vec<String> = all.iter().map(History::title).collect();
        bail!(
            "these traces hold {} separate histories (hosts, boots or captures): give the files of one; {}",
            all.len(),
            titles.join("; ")
        );
    }
    Ok(all.remove(0))
}

/// A name for messages: the one path, or the first and how many.
pub(super) fn display(paths: &[PathBuf]) -> String {
    match paths {
        [only] => only.display().to_string(),
        _ => paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use tracer_core::trace::{Segment, TraceWriter};

    fn write(dir: &Path, name: &str, host: &str, segment: Option<(u64, u32)>, ts: u64) -> PathBuf {
        let path = dir.join(name);
        let mut header = tracer_core::fixtures::header();
        header.host = host.to_owned();
        header.ts = ts;
        header.segment = segment.map(|(series, index)| Segment { series, index });
        let mut writer = TraceWriter::new(File::create(&path).unwrap());
        writer.write_header(&header).unwrap();
        writer
            .write_event(&tracer_core::fixtures::lost(ts + 1))
            .unwrap();
        path
    }

    #[test]
    fn rotated_files_join_and_the_rest_stand_alone() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = dir.path().join("fleet");
        std::fs::create_dir(&fleet).unwrap();
        write(&fleet, "a-0.jsonl", "worker-1", Some((100, 0)), 100);
        write(&fleet, "a-1.jsonl", "worker-1", Some((100, 1)), 200);
        write(&fleet, "a-2.jsonl", "worker-1", Some((100, 2)), 300);
        // The agent restarted: a new series.
        write(&fleet, "b-0.jsonl", "worker-1", Some((400, 0)), 400);
        // Pruned by retention: the series starts at index 3; then index 5 follows a gap.
        write(&fleet, "c-3.jsonl", "worker-2", Some((50, 3)), 60);
        write(&fleet, "c-5.jsonl", "worker-2", Some((50, 5)), 80);
        let plain = write(dir.path(), "plain.jsonl", "worker-3", None, 10);
        std::fs::write(fleet.join("notes.txt"), "not a trace").unwrap();

        let found = histories(&[fleet.clone(), plain]).unwrap();
        let shapes: Vec<(String, usize)> = found
            .iter()
            .map(|h| (h.header.host.clone(), h.files.len()))
            .collect();
        assert_eq!(
            shapes,
            [
                ("worker-1".into(), 3),
                ("worker-1".into(), 1),
                ("worker-2".into(), 1),
                ("worker-2".into(), 1),
                ("worker-3".into(), 1),
            ]
        );
        let events: Vec<_> = found[0].open(false).unwrap().map(Result::unwrap).collect();
        assert_eq!(events.len(), 3, "one history, three files");

        let one = one_history(&[fleet.join("a-0.jsonl"), fleet.join("a-1.jsonl")]).unwrap();
        assert_eq!(one.files.len(), 2);
        let error = one_history(&[fleet]).err().unwrap().to_string();
        assert!(error.contains("4 separate histories"), "{error}");
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(
            histories(&[empty])
                .err()
                .unwrap()
                .to_string()
                .contains("holds no trace files")
        );
    }
}
