//! Making bytes from the wire safe to show a person: nothing they contain may reach a terminal as a
//! control character or escape sequence.

use std::fmt::Write as _;

/// Printable ASCII passes through; a backslash becomes `\\`; every other byte (controls, ESC, DEL,
/// non-ASCII) becomes `\xNN`. The result is a single line that cannot move the cursor or change the
/// terminal's state, and it can be read back unambiguously.
#[must_use]
pub fn printable(bytes: &[u8]) -> String {
    // Most are plain ASCII (every field of every exchange with --json): taken in one piece.
    if bytes
        .iter()
        .all(|&b| (0x20..=0x7e).contains(&b) && b != b'\\')
    {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

/// Cuts `s` to `width` characters, ending in an ellipsis when it was longer: names in tables are
/// cut, never wrapped.
#[must_use]
pub fn ellipsize(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_owned();
    }
    if width == 0 {
        return String::new();
    }
    let mut t: String = s.chars().take(width - 1).collect();
    t.push('…');
    t
}

/// The first line of an HTTP message (up to CR or LF), at most `max` bytes of it.
#[must_use]
pub fn first_line(payload: &[u8], max: usize) -> &[u8] {
    let end = payload
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(payload.len());
    &payload[..end.min(max)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_keeps_text() {
        assert_eq!(printable(b"GET /a?b=c HTTP/1.1"), "GET /a?b=c HTTP/1.1");
        assert_eq!(printable(b"\x1b[2J\x07x\x00"), "\\x1b[2J\\x07x\\x00");
        assert_eq!(printable("é".as_bytes()), "\\xc3\\xa9");
        assert_eq!(printable(b"a\\b"), "a\\\\b");
        assert_eq!(printable(b"\x7f\r\n\t"), "\\x7f\\x0d\\x0a\\x09");
    }

    #[test]
    fn ellipsize_cuts_with_an_ellipsis() {
        assert_eq!(ellipsize("/api/v1", 10), "/api/v1");
        assert_eq!(ellipsize("/api/v1/users", 8), "/api/v1…");
        assert_eq!(ellipsize("é€x", 2), "é…");
        assert_eq!(ellipsize("abc", 0), "");
    }

    #[test]
    fn first_line_stops_at_crlf_and_cap() {
        assert_eq!(
            first_line(b"GET / HTTP/1.1\r\nHost: x\r\n", 100),
            b"GET / HTTP/1.1"
        );
        assert_eq!(first_line(b"GET /long", 5), b"GET /");
        assert_eq!(first_line(b"", 5), b"");
    }
}
