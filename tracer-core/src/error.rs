//! The errors of the library's public functions. Each reads as one line that names what is
//! wrong; a front end adds what its user can do about it.

use std::fmt;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The trace cannot be used as it is.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// A rules text does not compile (`source: rule N (id): problem`).
    #[error("{0}")]
    Rules(String),
    /// The rules a trace was recorded with no longer compile.
    #[error("{0}")]
    RecordedRules(String),
    /// A redaction pattern or environment name is not valid.
    #[error("{0}")]
    Privacy(String),
    /// An export selection names a pid the recording never saw.
    #[error("pid {0} does not appear in the recording")]
    UnknownPid(u32),
    /// A sink could not take what it was given.
    #[error(transparent)]
    Sink(#[from] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A trace that cannot be read, and where.
#[derive(Debug)]
pub struct TraceError {
    /// The trace's name, as its reader was given it (a path, usually).
    pub name: String,
    /// The line, counting the header as 1; none for a problem with the file as a whole.
    pub line: Option<usize>,
    pub problem: TraceProblem,
}

#[derive(Debug)]
#[non_exhaustive]
pub enum TraceProblem {
    /// Nothing at all.
    Empty,
    /// Bytes but no newline: a header cut short.
    HeaderCut {
        bytes: usize,
    },
    /// The first line is not a trace header.
    NotAHeader(String),
    /// A header of another format.
    Format(String),
    /// A header of another version of this format.
    Version(u32),
    LineTooLong,
    EmptyLine,
    /// A line that is not a valid event.
    BadEvent(String),
    Io(std::io::Error),
}

impl TraceError {
    /// Whether a lenient reader skips this line rather than failing.
    pub fn is_skippable(&self) -> bool {
        matches!(
            self.problem,
            TraceProblem::LineTooLong | TraceProblem::EmptyLine | TraceProblem::BadEvent(_)
        )
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.name, self.problem),
            None => write!(f, "{}: {}", self.name, self.problem),
        }
    }
}

impl std::error::Error for TraceError {}

impl fmt::Display for TraceProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::trace::{FORMAT, MAX_LINE, VERSION};
        match self {
            TraceProblem::Empty => write!(f, "empty file, not a trace"),
            TraceProblem::HeaderCut { bytes } => write!(
                f,
                "no complete header line ({bytes} bytes, cut short): not a trace, or truncated"
            ),
            TraceProblem::NotAHeader(why) => write!(f, "not a trace header ({why})"),
            TraceProblem::Format(format) => write!(f, "format {format:?} is not {FORMAT:?}"),
            TraceProblem::Version(version) => write!(
                f,
                "trace format version {version} is not supported (this tracer reads version {VERSION})"
            ),
            TraceProblem::LineTooLong => write!(f, "line is longer than {MAX_LINE} bytes"),
            TraceProblem::EmptyLine => write!(f, "empty line"),
            TraceProblem::BadEvent(why) => write!(f, "{why}"),
            TraceProblem::Io(error) => write!(f, "{error}"),
        }
    }
}
