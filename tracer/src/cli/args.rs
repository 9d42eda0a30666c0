//! The command line's arguments, as clap reads them, and the options they turn into.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use tracer_core::privacy::Privacy;
use tracer_live::live::{self, LiveOptions};
use tracer_live::{DEFAULT_RING_BYTES, ProbeOptions, python};

use crate::tui::ViewOptions;

#[derive(Parser, Debug)]
#[command(
    name = "tracer",
    version,
    about = "Process lineage tracer: the live process tree of this host, with the history `ps` loses",
    long_about = None
)]
pub(super) struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
    /// Check that this host can run the tracer; exits non-zero if it cannot.
    Doctor,
    /// A postmortem of a trace: what each Celery worker and Airflow task started while
    /// daemonic, the orphans it left, and who killed what.
    Report {
        /// Trace files, or directories of them: a host's rotated files read as one
        /// history; several hosts' reported side by side.
        #[arg(required = true, value_name = "TRACE")]
        files: Vec<PathBuf>,
        /// Rules file to classify with (default: the rules the trace was recorded with).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// The report as JSON, for machines.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Print the effective role rules (built-in, after those of --rules FILE).
    Rules {
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
    },
    /// Show the live process tree (one line per event when not on a terminal).
    Watch {
        #[command(flatten)]
        capture: CaptureArgs,
        /// One line per event, even on a terminal.
        #[arg(long)]
        plain: bool,
        /// Also show kernel threads.
        #[arg(long)]
        kernel_threads: bool,
        #[command(flatten)]
        view: ViewArgs,
    },
    /// Run as a service: capture until SIGTERM, serve /metrics and /healthz, write rotating
    /// traces, send findings and lifecycle events to an OpenTelemetry Collector.
    Agent(AgentArgs),
    /// Record a trace (JSON Lines) until the duration ends, or SIGINT/SIGTERM.
    Record {
        /// The trace file to write (created with mode 0600).
        #[arg(long, short)]
        output: PathBuf,
        #[command(flatten)]
        capture: CaptureArgs,
    },
    /// Rebuild the process tree from a trace, as it was at the end or at --at.
    Replay {
        /// Trace files, or a directory of them: the rotated files of one capture.
        #[arg(required = true, value_name = "TRACE")]
        files: Vec<PathBuf>,
        /// Rules file to classify with (default: the rules the trace was recorded with).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        /// A time: nanoseconds since boot, +DURATION from the trace start (+30s, +250ms),
        /// -DURATION before its end (-5s), or from the Nth finding (finding:2, finding:2-5s).
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
        /// Scrub through the trace in the full-screen TUI (starting at --at, or the end).
        #[arg(long, conflicts_with_all = ["json", "findings"])]
        tui: bool,
        /// List the findings, numbered as finding:N counts them.
        #[arg(long, conflicts_with = "json")]
        findings: bool,
        #[command(flatten)]
        view: ViewArgs,
        /// Print one TUI frame of COLSxROWS cells as JSON (for screenshots and tests).
        #[arg(long, value_name = "COLSxROWS", hide = true, conflicts_with_all = ["json", "tui"])]
        frame: Option<String>,
        /// Also show kernel threads.
        #[arg(long)]
        kernel_threads: bool,
        /// Print every process the model holds (live and exited ancestors) as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Export a recording: a Perfetto trace, a Graphviz lineage graph, or a smaller trace.
    Export {
        /// Trace files, or a directory of them: the rotated files of one capture.
        #[arg(required = true, value_name = "TRACE")]
        files: Vec<PathBuf>,
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Only this pid's ancestors (by lineage) and every process it created, directly or not.
        #[arg(long, value_name = "PID")]
        pid: Option<u32>,
        /// From this time (the forms of replay --at).
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        from: Option<String>,
        /// Up to this time (the forms of replay --at).
        #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
        to: Option<String>,
        /// Write here (atomically, mode 0600) instead of to standard output.
        #[arg(long, short, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Rules file to classify with (default: the rules the trace was recorded with).
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
        #[command(flatten)]
        read: ReadArgs,
    },
}

/// `tracer agent`'s flags: each wins over the config file's key of the same name.
#[derive(Args, Debug, Default)]
pub(super) struct AgentArgs {
    /// The configuration file (TOML): see docs/agent.md for every key.
    #[arg(long, value_name = "FILE")]
    pub(super) config: Option<PathBuf>,
    /// Where /metrics and /healthz are served [default: 127.0.0.1:9464].
    #[arg(long, value_name = "IP:PORT")]
    pub(super) listen: Option<String>,
    /// Write traces here (mode 0700, files 0600), rotated and pruned.
    #[arg(long, value_name = "DIR")]
    pub(super) trace_dir: Option<PathBuf>,
    /// Start a new trace file past this size [default: 64M].
    #[arg(long, value_name = "SIZE")]
    pub(super) rotate_size: Option<String>,
    /// Start a new trace file past this age [default: 1h].
    #[arg(long, value_name = "DURATION")]
    pub(super) rotate_age: Option<String>,
    /// Remove the oldest trace files past this total size [default: 1G].
    #[arg(long, value_name = "SIZE")]
    pub(super) retain_size: Option<String>,
    /// The OpenTelemetry Collector's OTLP/HTTP base URL (e.g. http://127.0.0.1:4318); logs go
    /// to /v1/logs under it.
    #[arg(long, value_name = "URL")]
    pub(super) otlp_endpoint: Option<String>,
    /// Lifecycle events sent: `lineage` (processes with a role, their ancestors and
    /// descendants) or `all` [default: lineage]. Findings are always sent.
    #[arg(long, value_name = "WHICH")]
    pub(super) otlp_events: Option<String>,
    /// Rules file with roles to add (tried before the built-in ones).
    #[arg(long, value_name = "FILE")]
    pub(super) rules: Option<PathBuf>,
    /// Redact what REGEX matches in command lines (repeatable; adds to the file's).
    #[arg(long, value_name = "REGEX", allow_hyphen_values = true)]
    pub(super) redact: Vec<String>,
    /// Record this environment variable (repeatable; NAME* for a prefix; adds to the file's).
    #[arg(long, value_name = "NAME")]
    pub(super) capture_env: Vec<String>,
    /// Kernel ring buffer size: a power of two from 4K to 1024M [default: 8M].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub(super) ring_buffer: Option<String>,
    /// How long a burst of kernel records may gather before it is read, in ms (0 to 1000).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub(super) batch_delay: Option<u64>,
    /// Read Python parents' daemonic flags from their interpreters [default: on].
    #[arg(long, value_name = "on|off")]
    pub(super) python_inspect: Option<Switch>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ExportFormat {
    /// Chrome JSON trace events: open it in the Perfetto UI (ui.perfetto.dev).
    Perfetto,
    /// Graphviz: render with `dot -Tpng`.
    Dot,
    /// A trace file (JSON Lines) that `replay` and `report` read.
    Jsonl,
}

/// Where the TUI starts.
#[derive(Args, Debug, Clone)]
pub(super) struct ViewArgs {
    /// Show only this process's subtree (the TUI's focus).
    #[arg(long, value_name = "PID")]
    pub(super) pid: Option<u32>,
    /// Show only processes with this role (id or label) and their ancestors.
    #[arg(long, value_name = "ROLE")]
    pub(super) role: Option<String>,
    /// Show only the live orphans, under the processes that adopted them.
    #[arg(long)]
    pub(super) orphans: bool,
}

#[derive(Args, Debug, Clone, Copy)]
pub(super) struct ReadArgs {
    /// Skip the lines of the trace that are not valid events (and say how many), instead of
    /// stopping at the first.
    #[arg(long)]
    pub(super) lenient: bool,
}

#[derive(Args, Debug)]
pub(super) struct CaptureArgs {
    /// Rules file with roles to add (tried before the built-in ones): see `tracer rules`.
    #[arg(long, value_name = "FILE")]
    pub(super) rules: Option<PathBuf>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    pub(super) duration: Option<Duration>,
    /// Kernel ring buffer size: bytes, or with K/M (a power of two, at least 4K).
    #[arg(long, value_name = "SIZE", default_value_t = format!("{}M", DEFAULT_RING_BYTES >> 20), value_parser = parse_size)]
    pub(super) ring_buffer: String,
    /// Replace what REGEX matches in command lines and titles with [REDACTED] before anything
    /// is shown or recorded; with capture groups, only the groups (repeatable). Matched
    /// against the arguments joined by spaces, e.g. '--password[= ](\S+)'.
    #[arg(long, value_name = "REGEX", allow_hyphen_values = true)]
    pub(super) redact: Vec<String>,
    /// Record this environment variable of each process (repeatable; NAME* for a prefix,
    /// e.g. 'AIRFLOW_CTX_*'). No variable is read unless named here.
    #[arg(long, value_name = "NAME")]
    pub(super) capture_env: Vec<String>,
    /// How long a burst of kernel records may gather before the tracer reads it, in
    /// milliseconds: longer costs less CPU per event and adds that much latency; 0 reads
    /// each record as it comes.
    #[arg(long, value_name = "MS", default_value_t = live::DEFAULT_BATCH_DELAY_MS, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub(super) batch_delay: u64,
    /// Read each Python parent's daemonic flag from its interpreter's memory (keeps
    /// CAP_SYS_PTRACE while on); `off` leaves the verdicts to the title rules.
    #[arg(long, value_name = "on|off", default_value = "on")]
    pub(super) python_inspect: Switch,
}

/// A feature turned on or off.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Switch {
    On,
    Off,
}

impl Switch {
    pub(crate) fn is_on(self) -> bool {
        self == Switch::On
    }
}

pub(super) fn parse_seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|secs| *secs > 0.0)
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .ok_or_else(|| format!("{text:?} is not a positive number of seconds"))
}

pub(crate) fn ring_bytes(text: &str) -> Result<u32, String> {
    let upper = text.to_ascii_uppercase();
    let (number, scale) = match upper.strip_suffix('K') {
        Some(number) => (number, 1u64 << 10),
        None => match upper.strip_suffix('M') {
            Some(number) => (number, 1 << 20),
            None => (upper.as_str(), 1),
        },
    };
    let bytes = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&b| (4096..=1 << 30).contains(&b) && b.is_power_of_two())
        .ok_or_else(|| {
            format!("{text:?} is not a ring buffer size: give a power of two from 4K to 1024M")
        })?;
    Ok(bytes as u32)
}

pub(super) fn parse_size(text: &str) -> Result<String, String> {
    ring_bytes(text).map(|_| text.to_owned())
}

impl CaptureArgs {
    pub(super) fn options(&self) -> Result<LiveOptions> {
        Ok(LiveOptions {
            probes: ProbeOptions {
                ring_bytes: ring_bytes(&self.ring_buffer).unwrap_or(DEFAULT_RING_BYTES),
                ..ProbeOptions::default()
            },
            duration: self.duration,
            coalesce: Duration::from_millis(self.batch_delay),
            privacy: Privacy::new(&self.redact, &self.capture_env)?,
            python_reads_per_second: self
                .python_inspect
                .is_on()
                .then_some(python::DEFAULT_READS_PER_SECOND),
            ..LiveOptions::default()
        })
    }
}

impl ViewArgs {
    pub(super) fn options(&self, kernel_threads: bool) -> ViewOptions {
        ViewOptions {
            pid: self.pid,
            role: self.role.clone(),
            orphans: self.orphans,
            kernel_threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(ring_bytes("32M"), Ok(32 << 20));
        assert_eq!(ring_bytes("4k"), Ok(4096));
        assert_eq!(ring_bytes("65536"), Ok(65536));
        assert!(ring_bytes("3M").is_err());
        assert!(ring_bytes("2048").is_err());
        assert!(ring_bytes("lots").is_err());
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("1e30").is_err());
    }

    #[test]
    fn command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["tracer", "record", "-o", "t.jsonl", "--duration", "2"]).unwrap();
        assert!(matches!(cli.command, Command::Record { .. }));
        assert!(Cli::try_parse_from(["tracer", "record"]).is_err());
        assert!(Cli::try_parse_from(["tracer", "watch", "--ring-buffer", "5K"]).is_err());
    }
}
