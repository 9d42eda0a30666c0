//! The tracers compared: how each is started writing to a file, known to be ready, stopped,
//! and how its output is counted.
//!
//! Counting is by name, the same way for every tool: the workload generator is `tracer-load`
//! (its children inherit that comm) and what it execs is `/bin/true` (comm `true`). So each
//! tool is credited with what it reported of the workload, not of whatever else the host ran.
//! forkstat is the exception: it names processes from `/proc` after the fact, and a process
//! that has already exited shows as `<unknown>`, so all its lines are counted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, Result};

pub const WORKLOAD_COMM: &str = "tracer-load";
pub const EXEC_COMM: &str = "true";

const BPFTRACE_SCRIPT: &str = include_str!("process-events.bt");

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tool {
    /// No tracer: the workload's own speed.
    Untraced,
    Tracer,
    /// `tracer agent`: traces to a directory and OTLP to a local receiver, as deployed
    /// (findings and the lifecycle of processes with a role).
    Agent,
    /// The same, exporting every process's lifecycle (`--otlp-events all`).
    AgentAll,
    Bpftrace,
    Execsnoop,
    Exitsnoop,
    Forkstat,
}

pub const ALL: [Tool; 8] = [
    Tool::Untraced,
    Tool::Tracer,
    Tool::Agent,
    Tool::AgentAll,
    Tool::Bpftrace,
    Tool::Execsnoop,
    Tool::Exitsnoop,
    Tool::Forkstat,
];

/// Events a tool reported, by kind, and the losses it admitted to.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counted {
    pub forks: u64,
    pub execs: u64,
    pub exits: u64,
    /// Everything it reported, the workload's or not: what its CPU time was spent on.
    pub all_events: u64,
    /// Events it said it lost (forkstat only says that it lost some: each report counts 1).
    pub reported_lost: u64,
    /// The tracer's p50 and p99 from kernel to trace, in ms, as it reported them.
    pub latency_ms: Option<(f64, f64)>,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Untraced => "untraced",
            Tool::Tracer => "tracer",
            Tool::Agent => "agent",
            Tool::AgentAll => "agent-all",
            Tool::Bpftrace => "bpftrace",
            Tool::Execsnoop => "execsnoop",
            Tool::Exitsnoop => "exitsnoop",
            Tool::Forkstat => "forkstat",
        }
    }

    pub fn parse(name: &str) -> Option<Tool> {
        ALL.into_iter().find(|tool| tool.name() == name)
    }

    /// Which event kinds it reports: (fork, exec, exit).
    pub fn kinds(self) -> (bool, bool, bool) {
        match self {
            Tool::Untraced => (false, false, false),
            Tool::Tracer | Tool::Agent | Tool::AgentAll | Tool::Bpftrace | Tool::Forkstat => {
                (true, true, true)
            }
            Tool::Execsnoop => (false, true, false),
            Tool::Exitsnoop => (false, false, true),
        }
    }

    pub fn uses_bpf(self) -> bool {
        matches!(
            self,
            Tool::Tracer
                | Tool::Agent
                | Tool::AgentAll
                | Tool::Bpftrace
                | Tool::Execsnoop
                | Tool::Exitsnoop
        )
    }

    /// Output and buffer settings, for the report.
    pub fn settings(self) -> &'static str {
        match self {
            Tool::Untraced => "",
            Tool::Tracer => {
                "`tracer record -o FILE`, defaults: 8 MiB ring buffer, 5 ms batch delay"
            }
            Tool::Agent => {
                "`tracer agent --trace-dir DIR --otlp-endpoint URL`, defaults otherwise (findings and role processes' lifecycle exported), sending to a local receiver that answers 200"
            }
            Tool::AgentAll => {
                "the agent as above with `--otlp-events all`: a log record for every process start, exec and exit"
            }
            Tool::Bpftrace => {
                "`bpftrace -o FILE` (block-buffered), perf buffer 64 pages per CPU (default), BPFTRACE_STRLEN=200"
            }
            Tool::Execsnoop => {
                "`execsnoop > FILE` (block-buffered), perf buffer 64 pages per CPU (fixed)"
            }
            Tool::Exitsnoop => {
                "`exitsnoop > FILE` (block-buffered), perf buffer 16 pages per CPU (fixed)"
            }
            Tool::Forkstat => {
                "`forkstat -e fork,exec,exit > FILE` (block-buffered), netlink socket buffer net.core.rmem_default"
            }
        }
    }

    /// Starts the tool writing into `dir`. None for [`Tool::Untraced`].
    pub fn spawn(self, dir: &Path, tracer: &Path) -> Result<Option<Child>> {
        let out = dir.join("out");
        let err = || -> Result<Stdio> {
            Ok(std::fs::File::create(dir.join("err"))
                .context("cannot create the tool's error file")?
                .into())
        };
        let file = || -> Result<Stdio> {
            Ok(std::fs::File::create(&out)
                .context("cannot create the tool's output file")?
                .into())
        };
        let mut command = match self {
            Tool::Untraced => return Ok(None),
            Tool::Tracer => {
                let mut command = Command::new(tracer);
                command
                    .arg("record")
                    .arg("-o")
                    .arg(&out)
                    .stdout(Stdio::null());
                command
            }
            Tool::Agent | Tool::AgentAll => {
                let receiver = start_receiver()?;
                let mut command = agent_command(tracer, dir, receiver, self == Tool::AgentAll);
                command.stdout(Stdio::null());
                command
            }
            Tool::Bpftrace => {
                let script = dir.join("process-events.bt");
                std::fs::write(&script, BPFTRACE_SCRIPT).context("cannot write the script")?;
                let mut command = Command::new("bpftrace");
                command
                    .env("BPFTRACE_STRLEN", "200")
                    .arg("-o")
                    .arg(&out)
                    .arg(&script)
                    .stdout(Stdio::null());
                command
            }
            Tool::Execsnoop => {
                let mut command = Command::new("execsnoop");
                command.stdout(file()?);
                command
            }
            Tool::Exitsnoop => {
                let mut command = Command::new("exitsnoop");
                command.stdout(file()?);
                command
            }
            Tool::Forkstat => {
                let mut command = Command::new("forkstat");
                command.args(["-e", "fork,exec,exit"]).stdout(file()?);
                command
            }
        };
        command.stdin(Stdio::null()).stderr(err()?);
        // The tool goes when the bench does, however the bench ends (Ctrl-C, a panic that
        // aborts, a kill): the kernel sends it SIGTERM as its parent dies.
        // SAFETY: prctl is async-signal-safe and the closure allocates nothing.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut command, || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot start {}", self.name()))?;
        Ok(Some(child))
    }

    /// Whether the tool says it is attached, where it says so unbuffered.
    pub fn says_ready(self, dir: &Path) -> Option<bool> {
        match self {
            Tool::Tracer => Some(
                std::fs::read_to_string(dir.join("err"))
                    .is_ok_and(|err| err.contains("tracer: recording to")),
            ),
            Tool::Agent | Tool::AgentAll => Some(
                std::fs::read_to_string(dir.join("err"))
                    .is_ok_and(|err| err.contains("tracer agent: capturing")),
            ),
            _ => None,
        }
    }

    /// Counts what the stopped tool wrote into `dir`.
    pub fn count(self, dir: &Path) -> Result<Counted> {
        if self == Tool::Untraced {
            return Ok(Counted::default());
        }
        let read = |name: &str| -> Result<String> {
            let path: PathBuf = dir.join(name);
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        };
        let err = read("err")?;
        if matches!(self, Tool::Agent | Tool::AgentAll) {
            // Its rotated traces, in order: together, the whole capture.
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("traces"))
                .context("the agent wrote no trace directory")?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .collect();
            files.sort();
            let mut out = String::new();
            for file in files {
                out.push_str(&String::from_utf8_lossy(&std::fs::read(&file)?));
            }
            return Ok(count_tracer(&out, &err));
        }
        let out = read("out")?;
        Ok(match self {
            Tool::Untraced | Tool::Agent | Tool::AgentAll => unreachable!("counted above"),
            Tool::Tracer => count_tracer(&out, &err),
            Tool::Bpftrace => count_bpftrace(&out),
            Tool::Execsnoop => count_columns(&out, &err, Tool::Execsnoop),
            Tool::Exitsnoop => count_columns(&out, &err, Tool::Exitsnoop),
            Tool::Forkstat => count_forkstat(&out),
        })
    }
}

/// `tracer agent` writing its traces under `dir` and sending OTLP to `collector`, with every
/// event exported when `all`.
pub fn agent_command(
    tracer: &Path,
    dir: &Path,
    collector: std::net::SocketAddr,
    all: bool,
) -> Command {
    let mut command = Command::new(tracer);
    command
        .arg("agent")
        .arg("--trace-dir")
        .arg(dir.join("traces"))
        .args(["--listen", "127.0.0.1:0"])
        .arg("--otlp-endpoint")
        .arg(format!("http://{collector}"));
    if all {
        command.args(["--otlp-events", "all"]);
    }
    command
}

/// A stand-in for an OpenTelemetry Collector: reads each HTTP/1.1 request (keep-alive) and
/// answers `200` with an empty body, as fast as it can. It decodes nothing: the bench measures
/// the agent, not a receiver. Lives as long as the bench.
fn start_receiver() -> Result<std::net::SocketAddr> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("cannot start the OTLP receiver")?;
    let address = listener.local_addr()?;
    // One connection at a time, on this one thread: the agent keeps one alive, and a thread
    // per connection would add forks to the kernel's count the workload is judged by.
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = serve_connection(stream);
        }
    });
    Ok(address)
}

/// Answers every request of one connection with `200`, until the client closes it.
fn serve_connection(stream: std::net::TcpStream) -> Option<()> {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let mut writer = stream.try_clone().ok()?;
    let mut reader = BufReader::new(stream);
    loop {
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).ok()? == 0 {
                return None;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().ok()?;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .ok()?;
    }
}

fn is_workload(comm: &str) -> bool {
    comm == WORKLOAD_COMM || comm == EXEC_COMM
}

/// The tracer's trace: process_start, exec and exit lines (by comm), and the loss and
/// latency it reported when it stopped.
fn count_tracer(trace: &str, err: &str) -> Counted {
    let mut counted = Counted {
        latency_ms: parse_latency(err),
        ..Counted::default()
    };
    for line in trace.lines() {
        let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let kind = value["event"].as_str().unwrap_or("");
        let comm = value["comm"].as_str().unwrap_or("");
        match kind {
            "process_start" | "exec" | "exit" | "rename" | "signal" => counted.all_events += 1,
            "lost" => counted.reported_lost += value["count"].as_u64().unwrap_or(0),
            _ => continue,
        }
        match kind {
            "process_start" if comm == WORKLOAD_COMM => counted.forks += 1,
            "exec" if is_workload(comm) => counted.execs += 1,
            "exit" if is_workload(comm) => counted.exits += 1,
            _ => {}
        }
    }
    // The lost lines already hold what the summary reports; the summary is the check that
    // the recorder got to say it.
    if !err.contains("no kernel records lost") && counted.reported_lost == 0 {
        counted.reported_lost = err
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(3)
            .find(|w| w[1] == "KERNEL" && w[2] == "RECORDS")
            .and_then(|w| w[0].parse().ok())
            .unwrap_or(0);
    }
    counted
}

/// `… kernel-to-trace latency p50 0.412 ms, p99 2.310 ms, …`
fn parse_latency(err: &str) -> Option<(f64, f64)> {
    let text = &err[err.find("latency p50 ")? + "latency p50 ".len()..];
    let p50 = text.split_whitespace().next()?.parse().ok()?;
    let text = &text[text.find("p99 ")? + 4..];
    let p99 = text.split_whitespace().next()?.parse().ok()?;
    Some((p50, p99))
}

/// `{"ts":…,"ev":"fork","pid":…,"ppid":…,"comm":"…"}` lines, and `Lost N events` lines.
fn count_bpftrace(out: &str) -> Counted {
    let mut counted = Counted::default();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Lost ") {
            counted.reported_lost += rest
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            continue;
        }
        let Some(kind) = field(line, "\"ev\":\"") else {
            continue;
        };
        counted.all_events += 1;
        let comm = field(line, "\"comm\":\"").unwrap_or("");
        match kind {
            "fork" if comm == WORKLOAD_COMM => counted.forks += 1,
            "exec" if is_workload(comm) => counted.execs += 1,
            "exit" if is_workload(comm) => counted.exits += 1,
            _ => {}
        }
    }
    counted
}

/// The quoted value after `key` in a line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let len = line[start..].find('"')?;
    Some(&line[start..start + len])
}

/// execsnoop and exitsnoop: a header, then one line per event with PCOMM first; losses on
/// standard error as `Lost N events on CPU #C!` (execsnoop) or `lost N events on CPU #C`.
fn count_columns(out: &str, err: &str, tool: Tool) -> Counted {
    let mut counted = Counted::default();
    for line in out.lines().skip(1) {
        let Some(comm) = line.split_whitespace().next() else {
            continue;
        };
        counted.all_events += 1;
        if is_workload(comm) {
            match tool {
                Tool::Execsnoop => counted.execs += 1,
                _ => counted.exits += 1,
            }
        }
    }
    for line in err.lines() {
        let mut words = line.split_whitespace();
        if words.next().is_some_and(|w| w.eq_ignore_ascii_case("lost")) {
            counted.reported_lost += words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        }
    }
    counted
}

/// forkstat: `TIME fork PID parent|child …`, `TIME exec PID …`, `TIME exit PID STATUS …`;
/// a lost batch shows as a `recv ----- nobufs` line.
fn count_forkstat(out: &str) -> Counted {
    let mut counted = Counted::default();
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            [_, "fork", _, "child", ..] => counted.forks += 1,
            [_, "fork", _, "parent", ..] => continue,
            [_, "exec", ..] => counted.execs += 1,
            [_, "exit", ..] => counted.exits += 1,
            [_, "recv", _, "nobufs", ..] => {
                counted.reported_lost += 1;
                continue;
            }
            _ => continue,
        }
        counted.all_events += 1;
    }
    counted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracer_lines_are_counted_by_workload_name() {
        let trace = r#"{"format":"tracer-trace"}
{"event":"process_start","pid":5,"comm":"tracer-load"}
{"event":"process_start","pid":6,"comm":"bash"}
{"event":"exec","pid":5,"comm":"true"}
{"event":"exit","pid":5,"comm":"true"}
{"event":"exit","pid":7,"comm":"tracer-load"}
{"event":"lost","count":3}
{"event":"finding","pid":5}"#;
        let counted = count_tracer(trace, "tracer: recorded 7 lines (3 KERNEL RECORDS LOST");
        assert_eq!(
            counted,
            Counted {
                forks: 1,
                execs: 1,
                exits: 2,
                all_events: 5,
                reported_lost: 3,
                latency_ms: None,
            }
        );
        let err = "tracer: recorded 5 lines (no kernel records lost); kernel-to-trace latency p50 0.412 ms, p99 2.310 ms, max 4.1 ms over 9 events";
        assert_eq!(parse_latency(err), Some((0.412, 2.31)));
    }

    #[test]
    fn bpftrace_lines_and_losses() {
        let out = "Attaching 3 probes...\n\
            {\"ts\":1,\"ev\":\"fork\",\"pid\":2,\"ppid\":1,\"comm\":\"tracer-load\"}\n\
            {\"ts\":1,\"ev\":\"exec\",\"pid\":2,\"ppid\":1,\"comm\":\"true\",\"filename\":\"/bin/true\"}\n\
            {\"ts\":1,\"ev\":\"exit\",\"pid\":3,\"ppid\":1,\"comm\":\"sshd\",\"code\":0,\"sig\":0}\n\
            Lost 25 events\n";
        let counted = count_bpftrace(out);
        assert_eq!((counted.forks, counted.execs, counted.exits), (1, 1, 0));
        assert_eq!((counted.all_events, counted.reported_lost), (3, 25));
    }

    #[test]
    fn snoop_columns_and_losses() {
        let out = "PCOMM            PID    PPID   RET ARGS\n\
                   true             1115   1109     0 /bin/true\n\
                   cat              1116   1109     0 /usr/bin/cat x\n";
        let counted = count_columns(out, "Lost 7 events on CPU #1!\n", Tool::Execsnoop);
        assert_eq!(
            (counted.execs, counted.all_events, counted.reported_lost),
            (1, 2, 7)
        );
        let out = "PCOMM PID PPID TID AGE(s) EXIT_CODE\ntracer-load 5 4 5 0.00 0\n";
        let counted = count_columns(out, "lost 4 events on CPU #0\n", Tool::Exitsnoop);
        assert_eq!((counted.exits, counted.reported_lost), (1, 4));
    }

    #[test]
    fn forkstat_lines_and_losses() {
        let out = "Time     Event   PID Info   Duration Process\n\
            18:19:29 fork  11513 parent          bash\n\
            18:19:29 fork  11518 child           bash\n\
            18:19:29 exec  11518                 sh -c exit 3\n\
            18:19:29 exit  11518    768   0.001s <unknown>\n\
            18:20:13 recv ----- nobufs          (No buffer space available)\n";
        let counted = count_forkstat(out);
        assert_eq!(
            (
                counted.forks,
                counted.execs,
                counted.exits,
                counted.reported_lost
            ),
            (1, 1, 1, 1)
        );
    }
}
