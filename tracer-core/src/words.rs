//! The words the tracer's outputs share: signal names, durations, how a process ended, and
//! dates. Analysis, report, exports and the terminal all say these the same way.

/// `SIGKILL` for 9; `signal 77` for a number with no name.
pub fn signal_name(sig: i32) -> String {
    const NAMES: [&str; 32] = [
        "0",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    usize::try_from(sig)
        .ok()
        .and_then(|i| NAMES.get(i))
        .map_or_else(|| format!("signal {sig}"), |name| (*name).to_owned())
}

/// `1h02m`, `3m05s`, `12.3s`, `450ms`.
pub fn duration(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms}ms"),
        1..60 => format!("{}.{}s", secs, (ms % 1000) / 100),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// How a process's exit reads: `exit code 3`, `killed by SIGKILL (core dumped)`.
pub fn exit_description(exit_code: Option<i32>, signal: Option<i32>, core_dumped: bool) -> String {
    let mut text = match (exit_code, signal) {
        (_, Some(sig)) => format!("killed by {}", signal_name(sig)),
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => "exit unknown".to_owned(),
    };
    if core_dumped {
        text.push_str(" (core dumped)");
    }
    text
}

/// `2026-11-24 15:31:40Z` from nanoseconds since the Unix epoch.
pub fn utc(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rest / 3600,
        (rest % 3600) / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_durations() {
        assert_eq!(signal_name(9), "SIGKILL");
        assert_eq!(signal_name(77), "signal 77");
        assert_eq!(signal_name(-1), "signal -1");
        assert_eq!(duration(450_000_000), "450ms");
        assert_eq!(duration(12_345_000_000), "12.3s");
        assert_eq!(duration(185_000_000_000), "3m05s");
        assert_eq!(duration(3_720_000_000_000), "1h02m");
        assert_eq!(exit_description(Some(3), None, false), "exit code 3");
        assert_eq!(
            exit_description(None, Some(6), true),
            "killed by SIGABRT (core dumped)"
        );
        assert_eq!(exit_description(None, None, false), "exit unknown");
        assert_eq!(utc(1_796_197_809_000_000_000), "2026-12-02 07:50:09Z");
    }
}
