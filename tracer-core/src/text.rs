//! Bytes from processes as text: argument areas and anything that may not be UTF-8.

/// Splits a NUL-separated argument area (as in `/proc/PID/cmdline`) into arguments. Trailing
/// NULs are padding (setproctitle clears the rest of the area with them), not empty arguments.
pub fn split_args(area: &[u8]) -> Vec<String> {
    let end = area.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    if end == 0 {
        return Vec::new();
    }
    area[..end].split(|&b| b == 0).map(text_of).collect()
}

/// Bytes from a process (comm, argv, paths) as text. Invalid UTF-8 stays visible and
/// recoverable as `\xNN` escapes instead of collapsing into U+FFFD.
pub fn text_of(bytes: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return text.to_owned();
    }
    let mut text = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        text.push_str(chunk.valid());
        for byte in chunk.invalid() {
            text.push_str(&format!("\\x{byte:02x}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_areas() {
        assert_eq!(split_args(b"sleep\x00100\x00"), ["sleep", "100"]);
        assert_eq!(split_args(b"[celeryd: w1]\0\0\0\0"), ["[celeryd: w1]"]);
        assert_eq!(split_args(b"a\0\0b\0"), ["a", "", "b"]);
        assert!(split_args(b"\0\0").is_empty());
        assert_eq!(split_args(b"bad\xff"), ["bad\\xff"]);
        assert_eq!(text_of(b"caf\xc3\xa9 \xc3("), "caf\u{e9} \\xc3(");
    }
}
