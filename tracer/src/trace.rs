//! Trace files: JSON Lines, a header line then one [`Event`] per line. The format is
//! documented in `docs/trace-format.md`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::event::Event;

pub const FORMAT: &str = "process-lineage-trace";
pub const VERSION: u32 = 1;

/// Longest line a reader accepts. Real lines are a few KiB at most (command lines are capped).
pub const MAX_LINE: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeaderTag {
    #[serde(rename = "header")]
    Header,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    pub event: HeaderTag,
    pub format: String,
    pub version: u32,
    pub tracer_version: String,
    pub host: String,
    pub kernel: String,
    pub boot_id: String,
    /// `CLOCK_BOOTTIME` in ns when the trace started; every `ts` uses this clock.
    pub ts: u64,
    /// Wall clock (ns since the Unix epoch) at the same instant, to turn `ts` into dates.
    pub wall_clock_ns: u64,
    /// Precision of start times taken from `/proc` (snapshot lines).
    pub clock_tick_ns: u64,
    /// The user rules file the tracer ran with (its text), so that replay classifies alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<String>,
}

impl TraceHeader {
    pub fn new(
        host: String,
        kernel: String,
        boot_id: String,
        ts: u64,
        wall_clock_ns: u64,
        clock_tick_ns: u64,
    ) -> Self {
        TraceHeader {
            event: HeaderTag::Header,
            format: FORMAT.into(),
            version: VERSION,
            tracer_version: env!("CARGO_PKG_VERSION").into(),
            host,
            kernel,
            boot_id,
            ts,
            wall_clock_ns,
            clock_tick_ns,
            rules: None,
        }
    }
}

/// Writes a trace. Lines are buffered and reach the file at each [`TraceWriter::flush`]
/// (once per ingested batch), so a crash loses at most the batch being written.
pub struct TraceWriter {
    out: BufWriter<File>,
    path: PathBuf,
    pub lines: u64,
}

impl TraceWriter {
    /// Creates the trace at `path` as a new private file (mode 0600). Whatever stood at that
    /// path (a file someone else holds open, a FIFO, a symlink) is replaced, never opened or
    /// followed (see [`PrivateFile`]). The file has its final name from the start, so a
    /// recorder that is killed leaves what it wrote where it was asked to.
    pub fn create(path: &Path) -> Result<TraceWriter> {
        let file = PrivateFile::create_beside(path)
            .and_then(PrivateFile::publish)
            .map_err(|e| anyhow!("cannot create trace {}: {e}", path.display()))?;
        Ok(TraceWriter {
            out: BufWriter::with_capacity(256 << 10, file),
            path: path.to_owned(),
            lines: 0,
        })
    }

    fn write_line<T: Serialize>(&mut self, value: &T) -> Result<()> {
        serde_json::to_writer(&mut self.out, value)
            .and_then(|()| self.out.write_all(b"\n").map_err(serde_json::Error::io))
            .with_context(|| format!("cannot write trace {}", self.path.display()))?;
        self.lines += 1;
        Ok(())
    }

    pub fn write_header(&mut self, header: &TraceHeader) -> Result<()> {
        self.write_line(header)
    }

    pub fn write_event(&mut self, event: &Event) -> Result<()> {
        self.write_line(event)
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("cannot write trace {}", self.path.display()))
    }

    /// Flushes and syncs the file to disk.
    pub fn finish(&mut self) -> Result<()> {
        self.flush()?;
        self.out
            .get_ref()
            .sync_all()
            .with_context(|| format!("cannot sync trace {}", self.path.display()))
    }
}

/// A new private file (mode 0600) created exclusively, never through a symlink, under a
/// temporary name beside `path`, to be renamed over `path` once ready: whatever stood at
/// `path` (a file someone holds open, a FIFO, a symlink) is replaced, never opened or
/// written through, and a reader sees the old file or the new one.
pub struct PrivateFile {
    pub file: File,
    temporary: PathBuf,
    path: PathBuf,
}

impl PrivateFile {
    pub fn create_beside(path: &Path) -> std::io::Result<PrivateFile> {
        let name = path.file_name().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name")
        })?;
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(format!(
            ".{}.{}.tmp",
            std::process::id(),
            crate::host::boottime_ns()
        ));
        let temporary = directory.join(temporary_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temporary)?;
        Ok(PrivateFile {
            file,
            temporary,
            path: path.to_owned(),
        })
    }

    /// Renames the file over its path; on failure, removes it.
    pub fn publish(self) -> std::io::Result<File> {
        match std::fs::rename(&self.temporary, &self.path) {
            Ok(()) => Ok(self.file),
            Err(error) => {
                self.discard();
                Err(error)
            }
        }
    }

    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.temporary);
    }
}

/// Reads a trace line by line. Errors name the file and line.
pub struct TraceReader<R> {
    input: R,
    name: String,
    line: usize,
    buffer: Vec<u8>,
    /// Bytes after the last newline that did not form a complete line (a crash mid-write).
    pub trailing_bytes: usize,
    done: bool,
    lenient: bool,
    /// Lines skipped in lenient mode, and the first problem met.
    pub skipped: Skipped,
}

/// What a lenient reader left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    pub lines: u64,
    /// `FILE:LINE: problem` of the first skipped line.
    pub first: Option<String>,
}

/// A line the reader could not use; `next_line` reports it, the caller decides.
enum LineError {
    TooLong,
    Io(std::io::Error),
}

impl TraceReader<BufReader<File>> {
    pub fn open(path: &Path) -> Result<(TraceHeader, Self)> {
        let file =
            File::open(path).map_err(|e| anyhow!("cannot open trace {}: {e}", path.display()))?;
        TraceReader::new(BufReader::new(file), path.display().to_string())
    }
}

impl<R: BufRead> TraceReader<R> {
    pub fn new(input: R, name: String) -> Result<(TraceHeader, Self)> {
        let mut reader = TraceReader {
            input,
            name,
            line: 0,
            buffer: Vec::new(),
            trailing_bytes: 0,
            done: false,
            lenient: false,
            skipped: Skipped::default(),
        };
        let first = match reader.next_line() {
            Ok(Some(line)) => line,
            Ok(None) if reader.trailing_bytes > 0 => bail!(
                "{}: no complete header line ({} bytes, cut short): not a trace, or truncated",
                reader.name,
                reader.trailing_bytes
            ),
            Ok(None) => bail!("{}: empty file, not a trace", reader.name),
            Err(error) => return Err(reader.line_error(error)),
        };
        let header: TraceHeader = serde_json::from_slice(&first)
            .map_err(|e| anyhow!("{}:1: not a trace header ({e})", reader.name))?;
        if header.format != FORMAT {
            bail!(
                "{}:1: format {:?} is not {FORMAT:?}",
                reader.name,
                header.format
            );
        }
        if header.version != VERSION {
            bail!(
                "{}:1: trace format version {} is not supported (this tracer reads version {VERSION})",
                reader.name,
                header.version
            );
        }
        Ok((header, reader))
    }

    /// Skips lines that are not valid events (counting them in [`TraceReader::skipped`])
    /// instead of failing at the first one. A bad header is still an error.
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }

    /// The next complete line, without its newline. An overlong line is consumed (never held
    /// in memory whole) and reported.
    fn next_line(&mut self) -> Result<Option<Vec<u8>>, LineError> {
        if self.done {
            return Ok(None);
        }
        self.buffer.clear();
        let read = (&mut self.input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.buffer)
            .map_err(LineError::Io)?;
        if read == 0 {
            self.done = true;
            return Ok(None);
        }
        self.line += 1;
        if self.buffer.last() != Some(&b'\n') {
            if self.buffer.len() > MAX_LINE {
                self.buffer.clear();
                self.skip_rest_of_line().map_err(LineError::Io)?;
                return Err(LineError::TooLong);
            }
            self.done = true;
            self.trailing_bytes = self.buffer.len();
            return Ok(None);
        }
        self.buffer.pop();
        Ok(Some(std::mem::take(&mut self.buffer)))
    }

    /// Reads up to and including the next newline, keeping nothing.
    fn skip_rest_of_line(&mut self) -> std::io::Result<()> {
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                self.done = true;
                return Ok(());
            }
            match available.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.input.consume(end + 1);
                    return Ok(());
                }
                None => {
                    let len = available.len();
                    self.input.consume(len);
                }
            }
        }
    }

    fn line_error(&self, error: LineError) -> anyhow::Error {
        match error {
            LineError::TooLong => anyhow!(
                "{}:{}: line is longer than {MAX_LINE} bytes",
                self.name,
                self.line
            ),
            LineError::Io(error) => anyhow!("{}:{}: {error}", self.name, self.line + 1),
        }
    }

    /// In lenient mode, counts a bad line and says to go on; otherwise it is the error.
    fn skip_or_fail(&mut self, problem: anyhow::Error) -> Option<anyhow::Error> {
        if !self.lenient {
            self.done = true;
            return Some(anyhow!("{problem} (--lenient skips bad lines)"));
        }
        self.skipped.lines += 1;
        self.skipped
            .first
            .get_or_insert_with(|| problem.to_string());
        None
    }

    /// The line number of the last line read (1 is the header).
    pub fn line(&self) -> usize {
        self.line
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Result<Event>> {
        loop {
            let problem = match self.next_line() {
                Ok(Some(line)) if line.trim_ascii().is_empty() => {
                    anyhow!("{}:{}: empty line", self.name, self.line)
                }
                Ok(Some(line)) => match serde_json::from_slice(&line) {
                    Ok(event) => return Some(Ok(event)),
                    Err(e) => anyhow!("{}:{}: {e}", self.name, self.line),
                },
                Ok(None) => return None,
                Err(LineError::Io(e)) => {
                    self.done = true;
                    return Some(Err(self.line_error(LineError::Io(e))));
                }
                Err(too_long) => self.line_error(too_long),
            };
            if let Some(error) = self.skip_or_fail(problem) {
                return Some(Err(error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Lost, LostCounts};
    use std::io::Cursor;

    fn header() -> TraceHeader {
        TraceHeader::new(
            "host".into(),
            "6.18".into(),
            "boot".into(),
            10,
            20,
            10_000_000,
        )
    }

    fn lost(ts: u64) -> Event {
        Event::Lost(Lost {
            ts,
            pid: 0,
            start_time: 0,
            count: 1,
            by_kind: LostCounts {
                exec: 1,
                ..Default::default()
            },
            since: 0,
        })
    }

    fn text(lines: &[String]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    }

    #[test]
    fn writes_private_files_and_reads_them_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut writer = TraceWriter::create(&path).unwrap();
        writer.write_header(&header()).unwrap();
        writer.write_event(&lost(11)).unwrap();
        writer.finish().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary left"
        );

        let (read_header, reader) = TraceReader::open(&path).unwrap();
        assert_eq!(read_header, header());
        let events: Vec<Event> = reader.map(Result::unwrap).collect();
        assert_eq!(events, [lost(11)]);
    }

    #[test]
    fn what_stood_at_the_path_is_replaced_never_opened() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");

        // A file someone else made, and holds open to read what gets written.
        std::fs::write(&path, "old").unwrap();
        let planted = File::open(&path).unwrap();
        let mut writer = TraceWriter::create(&path).unwrap();
        writer.write_header(&header()).unwrap();
        writer.finish().unwrap();
        assert_ne!(
            planted.metadata().unwrap().ino(),
            std::fs::metadata(&path).unwrap().ino()
        );
        assert_eq!(std::io::read_to_string(&planted).unwrap(), "old");

        // A symlink to a file elsewhere: replaced, not followed.
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        TraceWriter::create(&path).unwrap();
        assert!(!std::fs::symlink_metadata(&path).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");

        // A FIFO: opening it would block or feed a reader; it is replaced too.
        std::fs::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        TraceWriter::create(&path).unwrap();
        assert!(std::fs::metadata(&path).unwrap().is_file());

        // A directory cannot be replaced: a clear error, and no temporary left behind.
        let error = TraceWriter::create(dir.path()).err().unwrap().to_string();
        assert!(error.starts_with("cannot create trace"), "{error}");
        let blocker = dir.path().join("d");
        std::fs::create_dir(&blocker).unwrap();
        std::fs::write(blocker.join("x"), "").unwrap();
        assert!(TraceWriter::create(&blocker).is_err());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let head = serde_json::to_string(&header()).unwrap();
        let good = serde_json::to_string(&lost(1)).unwrap();
        let input = text(&[head.clone(), good, r#"{"event":"exit","ts":"soon"}"#.into()]);
        let (_, mut reader) = TraceReader::new(Cursor::new(input), "t.jsonl".into()).unwrap();
        assert!(reader.next().unwrap().is_ok());
        let error = reader.next().unwrap().unwrap_err().to_string();
        assert!(error.starts_with("t.jsonl:3: "), "{error}");

        let error = TraceReader::new(Cursor::new(b"garbage\n".to_vec()), "g".into())
            .err()
            .unwrap()
            .to_string();
        assert!(error.starts_with("g:1: not a trace header"), "{error}");

        let future = head.replace("\"version\":1", "\"version\":99");
        let error = TraceReader::new(Cursor::new(text(&[future])), "f".into())
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("version 99 is not supported"), "{error}");
    }

    #[test]
    fn a_torn_last_line_is_counted_not_parsed() {
        let head = serde_json::to_string(&header()).unwrap();
        let good = serde_json::to_string(&lost(1)).unwrap();
        let mut input = text(&[head, good]);
        input.extend_from_slice(br#"{"event":"lo"#);
        let (_, mut reader) = TraceReader::new(Cursor::new(input), "t".into()).unwrap();
        assert!(reader.next().unwrap().is_ok());
        assert!(reader.next().is_none());
        assert_eq!(reader.trailing_bytes, 12);
    }

    #[test]
    fn an_overlong_line_is_an_error_not_an_allocation() {
        let head = serde_json::to_string(&header()).unwrap();
        let mut input = text(&[head]);
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.push(b'\n');
        let (_, mut reader) = TraceReader::new(Cursor::new(input), "t".into()).unwrap();
        let error = reader.next().unwrap().unwrap_err().to_string();
        assert!(error.contains("t:2: line is longer than"), "{error}");
        assert!(reader.next().is_none());
    }

    #[test]
    fn a_lenient_reader_skips_and_counts_bad_lines() {
        let head = serde_json::to_string(&header()).unwrap();
        let good = |ts| serde_json::to_string(&lost(ts)).unwrap();
        let mut input = text(&[
            head,
            good(1),
            "garbage".into(),
            r#"{"event":"exit","ts":"soon"}"#.into(),
            r#"{"event":"no_such_event","ts":1}"#.into(),
        ]);
        input.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE));
        input.push(b'\n');
        input.extend_from_slice(&[0xff, 0xfe, b'\n']);
        input.extend(text(&[good(2)]));
        input.extend_from_slice(b"{\"torn");

        let (_, reader) = TraceReader::new(Cursor::new(input.clone()), "t".into()).unwrap();
        let strict: Vec<Result<Event>> = reader.collect();
        assert_eq!(strict.len(), 2, "stops at the first bad line");
        let error = strict[1].as_ref().unwrap_err().to_string();
        assert!(error.starts_with("t:3: ") && error.ends_with("(--lenient skips bad lines)"));

        let (_, mut reader) = TraceReader::new(Cursor::new(input), "t".into()).unwrap();
        reader = reader.lenient(true);
        let events: Vec<Event> = (&mut reader).map(Result::unwrap).collect();
        assert_eq!(events, [lost(1), lost(2)]);
        assert_eq!(reader.skipped.lines, 5);
        assert!(
            reader
                .skipped
                .first
                .as_deref()
                .unwrap()
                .starts_with("t:3: ")
        );
        assert_eq!(reader.trailing_bytes, 6);
        assert!(
            reader.buffer.capacity() <= MAX_LINE + 1 + 8192,
            "the long line was not held"
        );
    }

    #[test]
    fn a_cut_header_says_so() {
        let head = serde_json::to_string(&header()).unwrap();
        let error = TraceReader::new(Cursor::new(head.as_bytes()[..20].to_vec()), "h".into())
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("h: no complete header line (20 bytes"),
            "{error}"
        );
    }
}
