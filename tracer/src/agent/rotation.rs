//! Traces in a directory, rotated by size and age and kept within a total size. Each file is
//! a complete trace: its own header, then every live process as a snapshot line, then the
//! events, so that `replay` and `report` read any one of them alone, and a host's files in
//! name order as one history. Files are flushed at each batch (a crash loses at most the
//! batch being written) and rotated only between batches.

use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow};
use tracer_core::event::Event;
use tracer_core::ingest::{Sink, Status};
use tracer_core::model::Model;
use tracer_core::trace::{Segment, TraceHeader};
use tracer_core::words::utc;
use tracer_metrics::Metrics;

use super::config::Rotation;
use crate::files::{TraceFile, create_trace, finish_trace};

const PREFIX: &str = "trace-";
const SUFFIX: &str = ".jsonl";

/// The clocks a recorder reads: `CLOCK_BOOTTIME` (event time) and the wall clock (file names,
/// headers), both in ns. Passed in, so that tests can run the clock.
#[derive(Clone, Copy)]
pub struct Clocks {
    pub boottime_ns: fn() -> u64,
    pub wall_clock_ns: fn() -> u64,
}

struct Current {
    writer: TraceFile,
    path: PathBuf,
    opened_ts: u64,
    bytes: u64,
    /// Its size once the header and snapshot were written: rotation is by what came after,
    /// or a large snapshot would rotate at every batch.
    bytes_at_open: u64,
}

pub struct RotatingRecorder {
    dir: PathBuf,
    rotation: Rotation,
    clocks: Clocks,
    metrics: Metrics,
    header: Option<TraceHeader>,
    current: Option<Current>,
    /// Files this recorder created: the next file's index in the series.
    pub files_created: u32,
}

impl RotatingRecorder {
    /// Creates `dir` (mode 0700) if it is missing.
    pub fn new(
        dir: &Path,
        rotation: Rotation,
        clocks: Clocks,
        metrics: Metrics,
    ) -> Result<RotatingRecorder> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| anyhow!("cannot create trace directory {}: {e}", dir.display()))?;
        Ok(RotatingRecorder {
            dir: dir.to_owned(),
            rotation,
            clocks,
            metrics,
            header: None,
            current: None,
            files_created: 0,
        })
    }

    /// The file being written.
    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|c| c.path.as_path())
    }

    fn free_name(&self, wall_clock_ns: u64) -> PathBuf {
        // 2026-11-24 15:31:40Z → 20261124T153140Z: names sort as times do.
        let stamp: String = utc(wall_clock_ns)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == ' ')
            .map(|c| if c == ' ' { 'T' } else { c })
            .collect();
        (0u32..)
            .map(|seq| self.dir.join(format!("{PREFIX}{stamp}-{seq:04}{SUFFIX}")))
            .find(|path| std::fs::symlink_metadata(path).is_err())
            .expect("a free name among 2^32")
    }

    /// Opens a new file: the header, then the live processes as snapshot lines.
    fn open(&mut self, model: Option<&Model>) -> std::io::Result<()> {
        let Some(header) = &self.header else {
            return Ok(());
        };
        let now = (self.clocks.boottime_ns)();
        let wall = (self.clocks.wall_clock_ns)();
        let mut header = header.clone();
        header.segment = Some(Segment {
            series: header.ts,
            index: self.files_created,
        });
        if model.is_some() {
            header.ts = now;
            header.wall_clock_ns = wall;
        }
        let path = self.free_name(wall);
        let mut writer = create_trace(&path).map_err(std::io::Error::other)?;
        writer.write_header(&header)?;
        if let Some(model) = model {
            for (_, process) in model.processes().filter(|(_, p)| p.is_alive()) {
                writer.write_event(&Event::Snapshot(process.snapshot(now)))?;
            }
        }
        self.files_created += 1;
        self.current = Some(Current {
            writer,
            path,
            opened_ts: now,
            bytes: 0,
            bytes_at_open: 0,
        });
        self.count_bytes()?;
        if let Some(current) = &mut self.current {
            current.bytes_at_open = current.bytes;
        }
        Ok(())
    }

    /// Adds what the current file grew by to the metrics (after a flush).
    fn count_bytes(&mut self) -> std::io::Result<()> {
        let Some(current) = &mut self.current else {
            return Ok(());
        };
        current.writer.flush()?;
        let bytes = current.writer.get_ref().get_ref().metadata()?.len();
        self.metrics
            .count_trace_bytes(bytes.saturating_sub(current.bytes));
        current.bytes = bytes;
        Ok(())
    }

    fn due(&self) -> bool {
        self.current.as_ref().is_some_and(|current| {
            let age = (self.clocks.boottime_ns)().saturating_sub(current.opened_ts);
            let max_age = u64::try_from(self.rotation.max_file_age.as_nanos()).unwrap_or(u64::MAX);
            current.bytes - current.bytes_at_open >= self.rotation.max_file_bytes || age >= max_age
        })
    }

    fn rotate(&mut self, model: &Model) -> std::io::Result<()> {
        if let Some(mut done) = self.current.take() {
            finish_trace(&mut done.writer)?;
        }
        // Room first: on a full disk, the old files go before the new one is written.
        self.enforce_retention()?;
        self.open(Some(model))?;
        self.enforce_retention()
    }

    /// Removes the oldest traces of the directory until they fit in the retained size; never
    /// the file being written, nor anything not named as this recorder names its files.
    fn enforce_retention(&mut self) -> std::io::Result<()> {
        // Oldest first by modification time, then name: a wall clock stepped back must not
        // make the newest file look oldest.
        let mut traces: Vec<(std::time::SystemTime, PathBuf, u64)> = std::fs::read_dir(&self.dir)?
            .filter_map(|entry| {
                let entry = entry.ok()?;
                let name = entry.file_name().into_string().ok()?;
                let metadata = entry.metadata().ok()?;
                let ours = name.starts_with(PREFIX) && name.ends_with(SUFFIX) && metadata.is_file();
                ours.then_some(())?;
                Some((metadata.modified().ok()?, entry.path(), metadata.len()))
            })
            .collect();
        traces.sort();
        let mut total: u64 = traces.iter().map(|(_, _, len)| len).sum();
        let current = self.current_path().map(Path::to_owned);
        for (_, path, len) in traces {
            if total <= self.rotation.retain_bytes {
                break;
            }
            if Some(&path) == current.as_ref() {
                continue;
            }
            std::fs::remove_file(&path)?;
            total -= len;
        }
        Ok(())
    }
}

impl Sink for RotatingRecorder {
    fn header(&mut self, header: &TraceHeader) -> std::io::Result<()> {
        self.header = Some(header.clone());
        self.enforce_retention()?;
        self.open(None)
    }

    fn event(&mut self, event: &Event, _model: &Model) -> std::io::Result<()> {
        match &mut self.current {
            Some(current) => current.writer.write_event(event),
            None => Ok(()),
        }
    }

    fn flush(&mut self, model: &Model, _status: &Status) -> std::io::Result<()> {
        self.count_bytes()?;
        if self.due() {
            self.rotate(model)?;
        }
        Ok(())
    }

    fn finish(&mut self, _model: &Model, _status: &Status) -> std::io::Result<()> {
        self.count_bytes()?;
        if let Some(current) = &mut self.current {
            finish_trace(&mut current.writer)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;
    use tracer_core::analysis::Analyzer;
    use tracer_core::fixtures;
    use tracer_core::ingest::Pipeline;
    use tracer_core::roles::Rules;

    static NOW: AtomicU64 = AtomicU64::new(1_000_000_000);

    fn boottime() -> u64 {
        NOW.load(Ordering::Relaxed)
    }

    fn wall() -> u64 {
        1_790_000_000_000_000_000 + NOW.load(Ordering::Relaxed)
    }

    #[test]
    fn files_rotate_by_size_and_age_each_complete_and_old_ones_go() {
        let dir = tempfile::tempdir().unwrap();
        let traces = dir.path().join("traces");
        let rotation = Rotation {
            max_file_bytes: 4096,
            max_file_age: Duration::from_secs(60),
            retain_bytes: 12 << 10,
        };
        let clocks = Clocks {
            boottime_ns: boottime,
            wall_clock_ns: wall,
        };
        let metrics = Metrics::new();
        let recorder = RotatingRecorder::new(&traces, rotation, clocks, metrics.clone()).unwrap();
        // Someone else's file in the directory is never removed.
        std::fs::write(traces.join("notes.txt"), vec![b'x'; 20 << 10]).unwrap();
        let mut pipeline = Pipeline::new(
            Model::new(10_000_000),
            Analyzer::new(Rules::builtin()),
            recorder,
        );
        pipeline.header(&fixtures::header()).unwrap();
        let init = fixtures::key(1, 0);
        pipeline
            .apply(&fixtures::snapshot(1, init, 0, "init"))
            .unwrap();
        let long_lived = fixtures::key(2, 5);
        pipeline
            .apply(&fixtures::snapshot(1, long_lived, 1, "worker --long-lived"))
            .unwrap();
        let status = Status::default();
        for round in 0..40u32 {
            NOW.fetch_add(1_000_000, Ordering::Relaxed);
            let child = fixtures::key(1000 + round, boottime());
            pipeline
                .apply(&fixtures::fork(boottime(), child, long_lived, "job"))
                .unwrap();
            pipeline
                .apply(&fixtures::exit(
                    boottime() + 1,
                    child,
                    2,
                    (Some(0), None),
                    1,
                ))
                .unwrap();
            pipeline.sink.flush(&pipeline.model, &status).unwrap();
        }
        let by_size = pipeline.sink.files_created;
        assert!(by_size > 3, "{by_size} files");
        // An hour without events: the age rotates it too.
        NOW.fetch_add(3_600_000_000_000, Ordering::Relaxed);
        pipeline.sink.flush(&pipeline.model, &status).unwrap();
        assert_eq!(pipeline.sink.files_created, by_size + 1);
        pipeline.sink.finish(&pipeline.model, &status).unwrap();

        let mut kept: Vec<PathBuf> = std::fs::read_dir(&traces)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        kept.sort();
        let total: u64 = kept
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(total <= 12 << 10, "{total} bytes kept");
        assert!(
            kept.len() < pipeline.sink.files_created as usize,
            "old files were removed"
        );
        assert!(traces.join("notes.txt").exists());
        assert_eq!(
            kept.last().map(PathBuf::as_path),
            pipeline.sink.current_path()
        );
        for path in &kept {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            // Each file alone rebuilds the tree: the long-lived worker is in each.
            let reader = crate::files::open_trace(path).unwrap();
            let events: Vec<Event> = reader.map(Result::unwrap).collect();
            assert!(
                events
                    .iter()
                    .any(|e| matches!(e, Event::Snapshot(s) if s.pid == 2)),
                "{}",
                path.display()
            );
        }
        let written = metrics.encode();
        let line = written
            .lines()
            .find(|l| l.starts_with("tracer_trace_bytes_written_total "))
            .unwrap();
        let counted: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(counted > total, "{counted} bytes counted, {total} kept");
    }
}
