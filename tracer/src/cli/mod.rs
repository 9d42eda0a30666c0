//! The `tracer` command line: [`args`] as clap reads them, the commands that capture from
//! the kernel ([`capture`]), those that read a recording ([`offline`]), and the times they
//! take ([`time`]). Every error is one line on stderr and a non-zero exit.

mod args;
mod capture;
mod inputs;
mod offline;
mod time;

pub(crate) use args::ring_bytes;
pub(crate) use capture::lost_note;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use tracer_core::error::{Error as CoreError, TraceError};
use tracer_core::sanitize::sanitize;

use args::{Cli, Command};

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Doctor => capture::doctor_command().await,
        Command::Report {
            files,
            rules,
            json,
            read,
        } => offline::report_command(&files, rules.as_deref(), json, read),
        Command::Rules { rules } => offline::rules_command(rules.as_deref()),
        Command::Watch {
            capture,
            plain,
            kernel_threads,
            view,
        } => capture::watch(&capture, plain, kernel_threads, &view).await,
        Command::Record { output, capture } => capture::record(&output, &capture).await,
        Command::Agent(agent) => capture::agent(agent).await,
        Command::Replay {
            files,
            rules,
            at,
            tui,
            findings,
            view,
            frame,
            kernel_threads,
            json,
            read,
        } => offline::replay_command(&offline::ReplayArgs {
            files: &files,
            rules: rules.as_deref(),
            at: at.as_deref(),
            kernel_threads,
            json,
            read,
            tui,
            findings,
            view: &view,
            frame: frame.as_deref(),
        }),
        Command::Export {
            files,
            format,
            pid,
            from,
            to,
            output,
            rules,
            read,
        } => offline::export_command(&offline::ExportRequest {
            files: &files,
            format,
            pid,
            from: from.as_deref(),
            to: to.as_deref(),
            output: output.as_deref(),
            rules: rules.as_deref(),
            read,
        }),
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Runs the command line; errors are one line on stderr and a non-zero exit.
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("tracer: internal error{location}: {message} (please report this)");
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tracer: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tracer: error: {}", sanitize(&message(&error)));
            ExitCode::FAILURE
        }
    }
}

/// The error in one line, with what the user can do about it where the library's error
/// cannot know (the flags are this command line's).
fn message(error: &anyhow::Error) -> String {
    let mut text = format!("{error:#}");
    let skippable = |e: &TraceError| e.is_skippable();
    for cause in error.chain() {
        if let Some(core) = cause.downcast_ref::<CoreError>() {
            match core {
                CoreError::Trace(trace) if skippable(trace) => {
                    text.push_str(" (--lenient skips bad lines)");
                }
                CoreError::RecordedRules(_) => text.push_str(": pass --rules to use other rules"),
                _ => {}
            }
            break;
        }
        if let Some(trace) = cause.downcast_ref::<TraceError>() {
            if skippable(trace) {
                text.push_str(" (--lenient skips bad lines)");
            }
            break;
        }
    }
    text
}
