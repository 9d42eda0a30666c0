//! Makes untrusted text (comm, command lines, paths: any process can set them) safe to print
//! on a terminal: control characters and bidirectional overrides are shown as escapes, never
//! sent to the terminal.

use std::borrow::Cow;
use std::fmt::Write as _;

fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && is_unsafe(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Longest command line an event line shows: the trace keeps the whole (capped) text.
pub const LINE_TEXT_CAP: usize = 4096;

/// `text` cut to at most `max` bytes (at a character boundary), saying how much was left out.
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let end = text.floor_char_boundary(max);
    Cow::Owned(format!("{}… (+{} bytes)", &text[..end], text.len() - end))
}

/// JSON for a terminal: serde_json escapes only C0 controls, so DEL, C1 controls and
/// bidirectional overrides, which can only stand inside JSON strings, become `\uXXXX`
/// escapes. The result is the same JSON value.
pub fn escape_json_for_terminal(json: &str) -> Cow<'_, str> {
    if !json.chars().any(is_unsafe) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if is_unsafe(c) && !matches!(c, '\n' | '\r' | '\t') {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_clipped_at_a_character_boundary() {
        assert!(matches!(clip("short", 10), Cow::Borrowed("short")));
        assert_eq!(clip("aaaaé", 5), "aaaa… (+2 bytes)");
        assert_eq!(clip(&"x".repeat(10), 4), "xxxx… (+6 bytes)");
    }

    #[test]
    fn escapes_control_and_bidi_characters() {
        assert!(matches!(sanitize("python3 -m celery"), Cow::Borrowed(_)));
        assert_eq!(sanitize("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(sanitize("line\nbreak\ttab\r"), "line\\nbreak\\ttab\\r");
        assert_eq!(sanitize("\u{9b}31m"), "\\x9b31m");
        assert_eq!(sanitize("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(sanitize("caf\u{e9} \u{fffd}"), "caf\u{e9} \u{fffd}");
    }

    #[test]
    fn json_for_terminals_stays_the_same_json() {
        let value = serde_json::json!({ "title": "a\u{9b}31m\u{202e}b\u{7f}", "n": 1 });
        let text = serde_json::to_string_pretty(&value).unwrap();
        let safe = escape_json_for_terminal(&text);
        assert!(
            !safe
                .chars()
                .any(|c| c == '\u{9b}' || c == '\u{202e}' || c == '\u{7f}')
        );
        assert!(
            safe.contains("\\u009b") && safe.contains("\\u202e"),
            "{safe}"
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&safe).unwrap(),
            value
        );
    }
}
