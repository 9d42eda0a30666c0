//! Times on the command line (`replay --at`, `export --from/--to`): nanoseconds since boot,
//! `+DURATION` from the trace start, `-DURATION` before its end, or `finding:N[+-DURATION]`.

/// What a relative time can be counted from.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Anchors<'a> {
    /// The trace start (ns since boot).
    pub(super) start: u64,
    /// The latest event, when known.
    pub(super) end: Option<u64>,
    /// When each finding came, in order, when known.
    pub(super) findings: Option<&'a [u64]>,
}

/// Whether `text` counts from the end or from a finding: the caller must replay the whole
/// trace to know those.
pub(super) fn needs_whole_trace(text: &str) -> bool {
    text.starts_with('-') || text.starts_with("end") || text.starts_with("finding")
}

fn parse_duration(text: &str) -> Option<u64> {
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number.parse().ok()?;
    let scale = match unit {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    (value.is_finite() && value >= 0.0).then_some((value * scale) as u64)
}

/// `BASE`, `BASE+DURATION` or `BASE-DURATION`.
fn offset(base: u64, rest: &str) -> Option<u64> {
    if rest.is_empty() {
        Some(base)
    } else if let Some(after) = rest.strip_prefix('+') {
        Some(base.saturating_add(parse_duration(after)?))
    } else {
        Some(base.saturating_sub(parse_duration(rest.strip_prefix('-')?)?))
    }
}

/// Parses a time (`--at`, `--from`, `--to`): nanoseconds since boot (`1234567890`), from the
/// trace start (`+30s`, `+1.5s`, `+250ms`, `+2m`), before the end (`-5s`, `end`), or from the
/// Nth finding, counted from 1 in trace order (`finding:2`, `finding:2-5s`, `finding:2+30s`).
pub(super) fn parse_at(text: &str, anchors: &Anchors) -> Result<u64, String> {
    let error = || {
        format!(
            "--at {text:?}: give nanoseconds since boot, +DURATION from the trace start (+30s), \
             -DURATION before its end (-5s), or finding:N[+-DURATION] (finding:1-5s)"
        )
    };
    if let Some(after) = text.strip_prefix('+') {
        return parse_duration(after)
            .map(|d| anchors.start.saturating_add(d))
            .ok_or_else(error);
    }
    if text.starts_with('-') || text.starts_with("end") {
        let rest = text.strip_prefix("end").unwrap_or(text);
        let end = anchors.end.ok_or_else(error)?;
        return offset(end, rest).ok_or_else(error);
    }
    if let Some(spec) = text.strip_prefix("finding:") {
        let findings = anchors.findings.ok_or_else(error)?;
        let digits = spec.find(['+', '-']).unwrap_or(spec.len());
        let (number, rest) = spec.split_at(digits);
        let n: usize = number.parse().map_err(|_| error())?;
        let base = *n
            .checked_sub(1)
            .and_then(|i| findings.get(i))
            .ok_or_else(|| {
                format!(
                    "--at {text:?}: the trace has {} findings (see replay --findings)",
                    findings.len()
                )
            })?;
        return offset(base, rest).ok_or_else(error);
    }
    text.parse().map_err(|_| error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_times() {
        let start = |start| Anchors {
            start,
            ..Anchors::default()
        };
        assert_eq!(parse_at("123", &start(0)), Ok(123));
        assert_eq!(parse_at("+30s", &start(1_000)), Ok(30_000_001_000));
        assert_eq!(parse_at("+1.5", &start(0)), Ok(1_500_000_000));
        assert_eq!(parse_at("+250ms", &start(0)), Ok(250_000_000));
        assert!(parse_at("+5 parsecs", &start(0)).is_err());
        assert!(parse_at("-5s", &start(0)).is_err(), "no end known");
        assert!(
            parse_at("yesterday", &start(0))
                .unwrap_err()
                .contains("--at")
        );
    }

    #[test]
    fn times_from_the_end_and_from_findings() {
        let findings = [10_000_000_000, 20_000_000_000];
        let anchors = Anchors {
            start: 1_000_000_000,
            end: Some(60_000_000_000),
            findings: Some(&findings),
        };
        assert_eq!(parse_at("-5s", &anchors), Ok(55_000_000_000));
        assert_eq!(parse_at("end", &anchors), Ok(60_000_000_000));
        assert_eq!(parse_at("finding:1", &anchors), Ok(10_000_000_000));
        assert_eq!(parse_at("finding:2-5s", &anchors), Ok(15_000_000_000));
        assert_eq!(parse_at("finding:2+250ms", &anchors), Ok(20_250_000_000));
        assert!(
            parse_at("finding:3", &anchors)
                .unwrap_err()
                .contains("has 2 findings")
        );
        assert!(parse_at("finding:0", &anchors).is_err());
        assert!(parse_at("finding:x", &anchors).is_err());
        assert!(parse_at("finding:1*2", &anchors).is_err());
        assert!(needs_whole_trace("finding:1") && !needs_whole_trace("+3s"));
    }
}
