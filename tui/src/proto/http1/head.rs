//! An HTTP/1.x head: start line and the fields that decide framing, parsed by httparse.

use http_top_common::{HTTP_TOKEN_MAX, starts_http_message};

use crate::proto::{RequestLine, SpareLines};

/// Why a message could not be parsed. Counted, never logged per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The head is not valid HTTP/1.x (httparse rejected it).
    BadHead,
    /// The head exceeded [`MAX_HEAD`] or [`MAX_HEADERS`].
    HeadTooLarge,
    /// Content-Length is not a number, or two of them disagree.
    BadContentLength,
    /// A chunk-size line is malformed or larger than 2^63.
    BadChunk,
    /// Bytes were lost where the parser could not skip them (inside a head or chunk framing).
    Gap,
    /// A message ended before its body did (close or reset).
    Truncated,
}

/// Longest head (start line and fields) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in one head.
pub const MAX_HEADERS: usize = http_top_common::HEAD_FIELDS_MAX as usize;

/// What the start line and the fields that matter say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head {
    /// Method, target and Host of a request; `None` for a response.
    pub request: Option<RequestLine>,
    /// Response status; 0 for a request.
    pub status: u16,
    /// Minor version: 0 or 1.
    pub minor: u8,
    /// Content-Length, when present and valid.
    pub content_length: Option<u64>,
    /// Transfer-Encoding present at all.
    pub has_te: bool,
    /// Transfer-Encoding's final coding is chunked.
    pub chunked: bool,
    /// `Connection: close`.
    pub close: bool,
    /// `Upgrade: h2c` (on a 101: the connection continues as HTTP/2).
    pub upgrade_h2c: bool,
}

/// Does this segment start an HTTP/1.x message (request line or status line)?
pub fn starts_message(data: &[u8]) -> bool {
    let mut head = [0u8; HTTP_TOKEN_MAX];
    let n = data.len().min(HTTP_TOKEN_MAX);
    head[..n].copy_from_slice(&data[..n]);
    starts_http_message(&head, data.len())
}

/// Offset just past the empty line that ends a head (CRLF CRLF, or bare LF LF, which httparse also
/// accepts).
pub(super) fn find_head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let at = i + p;
        match buf.get(at + 1) {
            Some(b'\n') => return Some(at + 2),
            Some(b'\r') if buf.get(at + 2) == Some(&b'\n') => return Some(at + 3),
            _ => i = at + 1,
        }
    }
    None
}

/// A whole head; a request's line goes in a buffer from `spare`.
pub(super) fn parse_head(buf: &[u8], spare: &mut SpareLines) -> Result<Head, ParseError> {
    parse_head_prefix(buf, spare)?
        .map(|(_, h)| h)
        .ok_or(ParseError::BadHead)
}

/// The head at the start of `buf`: its length and what it says; `None` when `buf` ends first. A
/// request's line goes in a buffer from `spare`.
pub(super) fn parse_head_prefix(
    buf: &[u8],
    spare: &mut SpareLines,
) -> Result<Option<(usize, Head)>, ParseError> {
    // Uninitialised: zeroing 128 header slots for every head was measurable.
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let config = httparse::ParserConfig::default();
    let fail = |e: httparse::Error| match e {
        httparse::Error::TooManyHeaders => ParseError::HeadTooLarge,
        _ => ParseError::BadHead,
    };
    let mut head = Head::default();
    // Method and target, for a request.
    let mut request_line = None;
    let len;
    let headers: &[httparse::Header<'_>] = if buf.starts_with(b"HTTP/") {
        let mut r = httparse::Response::new(&mut []);
        len = match config.parse_response_with_uninit_headers(&mut r, buf, &mut fields) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        head.status = r.code.ok_or(ParseError::BadHead)?;
        head.minor = r.version.ok_or(ParseError::BadHead)?;
        r.headers
    } else {
        let mut r = httparse::Request::new(&mut []);
        len = match config.parse_request_with_uninit_headers(&mut r, buf, &mut fields) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(fail(e)),
        };
        request_line = Some((
            r.method.ok_or(ParseError::BadHead)?.as_bytes(),
            r.path.ok_or(ParseError::BadHead)?.as_bytes(),
        ));
        head.minor = r.version.ok_or(ParseError::BadHead)?;
        r.headers
    };
    let mut host = None;
    for h in headers {
        let name = h.name.as_bytes();
        // Only five names matter; their lengths differ, so most fields are skipped on length.
        if !matches!(name.len(), 4 | 7 | 10 | 14 | 17) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"host") {
            host.get_or_insert(h.value);
        } else if name.eq_ignore_ascii_case(b"content-length") {
            // A list of identical values is allowed (RFC 9110 8.6); differing ones are not.
            for v in h.value.split(|&b| b == b',') {
                let n = parse_decimal(trim(v)).ok_or(ParseError::BadContentLength)?;
                if head.content_length.is_some_and(|c| c != n) {
                    return Err(ParseError::BadContentLength);
                }
                head.content_length = Some(n);
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            head.has_te = true;
            let last = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .map(trim)
                .unwrap_or_default();
            head.chunked = last.eq_ignore_ascii_case(b"chunked");
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            head.upgrade_h2c |= h
                .value
                .split(|&b| b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(b"h2c"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            head.close |= h
                .value
                .split(|&b| b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(b"close"));
        }
    }
    head.request =
        request_line.map(|(method, target)| RequestLine::new_in(spare, method, target, host));
    Ok(Some((len, head)))
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &v[s..e]
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    // 19 digits cannot overflow a u64 (10^19 - 1 < 2^64), so no step needs checking; a plain
    // loop keeps the sum in a register (the checked fold kept it in memory, a tenth of the
    // function's time).
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &d in v {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(d - b'0');
    }
    Some(n)
}
