//! Traces: JSON Lines, a header line then one [`Event`] per line, read from any [`BufRead`]
//! and written to any [`Write`]. The format is documented in `docs/trace-format.md`.

use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use crate::error::{TraceError, TraceProblem};
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
#[non_exhaustive]
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
    /// This file's place in a series of rotated files (the agent's `--trace-dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment: Option<Segment>,
    /// The tracer read Python interpreters (`--python-inspect on`): the analysis waits a
    /// moment for a read before it judges a Python parent's spawn, on replay too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub python_inspect: bool,
}

/// Rotated files of one capture: `series` is the `ts` of its first file's header, `index`
/// counts from 0. Files of a series, in index order, read as one history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub series: u64,
    pub index: u32,
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
            segment: None,
            python_inspect: false,
        }
    }
}

/// Writes a trace to `out`, one line per call. Lines reach `out` at each
/// [`TraceWriter::flush`] when `out` buffers (a file behind a `BufWriter`, as the recorder
/// writes it: a crash then loses at most the batch being written).
pub struct TraceWriter<W> {
    out: W,
    pub lines: u64,
}

impl<W: Write> TraceWriter<W> {
    pub fn new(out: W) -> TraceWriter<W> {
        TraceWriter { out, lines: 0 }
    }

    fn write_line<T: Serialize>(&mut self, value: &T) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, value)?;
        self.out.write_all(b"\n")?;
        self.lines += 1;
        Ok(())
    }

    pub fn write_header(&mut self, header: &TraceHeader) -> std::io::Result<()> {
        self.write_line(header)
    }

    pub fn write_event(&mut self, event: &Event) -> std::io::Result<()> {
        self.write_line(event)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// What the lines are written to (to sync a file, say).
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads a trace line by line, after its header. Errors name the trace and the line.
pub struct TraceReader<R> {
    input: R,
    header: TraceHeader,
    name: String,
    line: usize,
    buffer: Vec<u8>,
    /// Bytes after the last newline that did not form a complete line (a crash mid-write).
    pub trailing_bytes: usize,
    done: bool,
    lenient: bool,
    /// Lines skipped in lenient mode, and the first problem met.
    pub skipped: Skipped,
    /// Traces read after this one as the same history ([`TraceReader::followed_by`]).
    parts: std::collections::VecDeque<TraceReader<R>>,
    /// What [`TraceReader::name`] calls a history of several parts.
    title: Option<String>,
}

/// What a lenient reader left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Skipped {
    pub lines: u64,
    /// `NAME:LINE: problem` of the first skipped line.
    pub first: Option<String>,
}

/// A line the reader could not use; `next_line` reports it, the caller decides.
enum LineError {
    TooLong,
    Io(std::io::Error),
}

impl<R: BufRead> TraceReader<R> {
    /// Reads and checks the header; `name` (a path, usually) is what errors call the trace.
    pub fn new(input: R, name: String) -> Result<Self, TraceError> {
        let mut reader = TraceReader {
            input,
            header: TraceHeader::new(String::new(), String::new(), String::new(), 0, 0, 0),
            name,
            line: 0,
            buffer: Vec::new(),
            trailing_bytes: 0,
            done: false,
            lenient: false,
            skipped: Skipped::default(),
            parts: std::collections::VecDeque::new(),
            title: None,
        };
        let first = match reader.next_line() {
            Ok(Some(line)) => line,
            Ok(None) if reader.trailing_bytes > 0 => {
                let bytes = reader.trailing_bytes;
                return Err(reader.whole_file_error(TraceProblem::HeaderCut { bytes }));
            }
            Ok(None) => return Err(reader.whole_file_error(TraceProblem::Empty)),
            Err(error) => return Err(reader.line_error(error)),
        };
        let header: TraceHeader = serde_json::from_slice(&first)
            .map_err(|e| reader.error_at(1, TraceProblem::NotAHeader(e.to_string())))?;
        if header.format != FORMAT {
            return Err(reader.error_at(1, TraceProblem::Format(header.format)));
        }
        if header.version != VERSION {
            return Err(reader.error_at(1, TraceProblem::Version(header.version)));
        }
        reader.header = header;
        Ok(reader)
    }

    pub fn header(&self) -> &TraceHeader {
        &self.header
    }

    /// Skips lines that are not valid events (counting them in [`TraceReader::skipped`])
    /// instead of failing at the first one. A bad header is still an error.
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }

    fn whole_file_error(&self, problem: TraceProblem) -> TraceError {
        TraceError {
            name: self.name.clone(),
            line: None,
            problem,
        }
    }

    fn error_at(&self, line: usize, problem: TraceProblem) -> TraceError {
        TraceError {
            name: self.name.clone(),
            line: Some(line),
            problem,
        }
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
            // Added: a history of several parts counts every torn tail.
            self.trailing_bytes += self.buffer.len();
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

    fn line_error(&self, error: LineError) -> TraceError {
        match error {
            LineError::TooLong => self.error_at(self.line, TraceProblem::LineTooLong),
            LineError::Io(error) => self.error_at(self.line + 1, TraceProblem::Io(error)),
        }
    }

    /// In lenient mode, counts a bad line and says to go on; otherwise it is the error.
    fn skip_or_fail(&mut self, problem: TraceError) -> Option<TraceError> {
        if !self.lenient {
            self.done = true;
            self.parts.clear();
            return Some(problem);
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

    /// The trace's name (a path), or for several parts, the first and last and how many.
    pub fn name(&self) -> &str {
        self.title.as_deref().unwrap_or(&self.name)
    }

    /// Reads `parts` after this trace as one history: the later parts' headers (already read
    /// by their own readers) are not events, and errors name the part and its line. The
    /// header is this trace's. Torn last lines of the parts add up in `trailing_bytes`.
    pub fn followed_by(mut self, parts: Vec<TraceReader<R>>) -> Self {
        if let Some(last) = parts.last() {
            self.title = Some(format!(
                "{} … {} ({} files)",
                self.name,
                last.name,
                parts.len() + 1
            ));
        }
        self.parts = parts.into();
        self
    }

    /// Moves on to the next part, if any.
    fn next_part(&mut self) -> bool {
        let Some(part) = self.parts.pop_front() else {
            return false;
        };
        self.input = part.input;
        self.name = part.name;
        self.line = part.line;
        self.done = part.done;
        self.trailing_bytes += part.trailing_bytes;
        true
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Event, TraceError>;

    fn next(&mut self) -> Option<Result<Event, TraceError>> {
        loop {
            let problem = match self.next_line() {
                Ok(Some(line)) if line.trim_ascii().is_empty() => {
                    self.error_at(self.line, TraceProblem::EmptyLine)
                }
                Ok(Some(line)) => match serde_json::from_slice(&line) {
                    Ok(event) => return Some(Ok(event)),
                    Err(e) => self.error_at(self.line, TraceProblem::BadEvent(e.to_string())),
                },
                Ok(None) if self.next_part() => continue,
                Ok(None) => return None,
                Err(LineError::Io(e)) => {
                    self.done = true;
                    self.parts.clear();
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
    use crate::fixtures::{header, lost};
    use std::io::Cursor;

    #[test]
    fn written_traces_read_back() {
        let mut writer = TraceWriter::new(Vec::new());
        writer.write_header(&header()).unwrap();
        writer.write_event(&lost(11)).unwrap();
        writer.flush().unwrap();
        assert_eq!(writer.lines, 2);
        let reader = TraceReader::new(writer.get_ref().as_slice(), "t".into()).unwrap();
        assert_eq!(reader.header(), &header());
        let events: Vec<Event> = reader.map(Result::unwrap).collect();
        assert_eq!(events, [lost(11)]);
    }

    fn text(lines: &[String]) -> Vec<u8> {
        lines
            .iter()
            .flat_map(|l| format!("{l}\n").into_bytes())
            .collect()
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let head = serde_json::to_string(&header()).unwrap();
        let good = serde_json::to_string(&lost(1)).unwrap();
        let input = text(&[head.clone(), good, r#"{"event":"exit","ts":"soon"}"#.into()]);
        let mut reader = TraceReader::new(Cursor::new(input), "t.jsonl".into()).unwrap();
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
        let mut reader = TraceReader::new(Cursor::new(input), "t".into()).unwrap();
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
        let mut reader = TraceReader::new(Cursor::new(input), "t".into()).unwrap();
        let error = reader.next().unwrap().unwrap_err().to_string();
        assert!(error.contains("t:2: line is longer than"), "{error}");
        assert!(reader.next().is_none());
    }

    #[test]
    fn parts_read_as_one_history_and_errors_name_their_part() {
        let header = serde_json::to_string(&crate::fixtures::header()).unwrap();
        let event = |ts: u64| serde_json::to_string(&crate::fixtures::lost(ts)).unwrap();
        let part = |name: &str, lines: &[String]| {
            TraceReader::new(Cursor::new(text(lines)), name.to_owned()).unwrap()
        };
        let first = part("a", &[header.clone(), event(1), event(2)]);
        let second = part("b", &[header.clone(), event(3)]);
        let third = part("c", &[header.clone(), event(4), "{oops".to_owned()]);
        let reader = first.followed_by(vec![second, third]);
        assert_eq!(reader.name(), "a … c (3 files)");
        let read: Vec<Result<Event, TraceError>> = reader.collect();
        let times: Vec<u64> = read
            .iter()
            .filter_map(|e| Some(e.as_ref().ok()?.ts()))
            .collect();
        assert_eq!(times, [1, 2, 3, 4]);
        let error = read.last().unwrap().as_ref().unwrap_err().to_string();
        assert!(error.starts_with("c:3:"), "{error}");
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

        let reader = TraceReader::new(Cursor::new(input.clone()), "t".into()).unwrap();
        let strict: Vec<Result<Event, TraceError>> = reader.collect();
        assert_eq!(strict.len(), 2, "stops at the first bad line");
        let error = strict[1].as_ref().unwrap_err();
        assert!(error.to_string().starts_with("t:3: "), "{error}");
        assert!(error.is_skippable(), "a lenient reader would skip it");

        let mut reader = TraceReader::new(Cursor::new(input), "t".into()).unwrap();
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
