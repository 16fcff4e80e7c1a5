//! One direction of an HTTP/1.x connection as a sequence of messages: head (httparse), then a body
//! framed as RFC 9112 section 6 says. Pull-style: [`MessageParser::feed`] consumes bytes up to the next
//! event and says how many it took, so the connection can react (decide a response's framing from its
//! request) before feeding the rest.
//!
//! Bounded: a head may grow to [`MAX_HEAD`] bytes and carry [`MAX_HEADERS`] headers; beyond, it is an
//! error and the parser resynchronises.

use http_top_common::{HTTP_TOKEN_MAX, starts_http_message};

/// Longest head (start line and fields) accepted.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in one head.
pub const MAX_HEADERS: usize = 128;

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

/// A request's method, target and Host field value, raw, in one allocation: a connection holds one
/// for each request waiting for its response, and under a flood of unanswered requests three small
/// allocations each were a fifth of the memory.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestLine {
    buf: Box<[u8]>,
    method_end: u32,
    target_end: u32,
    has_host: bool,
}

impl RequestLine {
    /// Heads are at most [`MAX_HEAD`] bytes, so the offsets fit in `u32`.
    pub fn new(method: &[u8], target: &[u8], host: Option<&[u8]>) -> Self {
        let host_bytes = host.unwrap_or_default();
        let mut buf = Vec::with_capacity(method.len() + target.len() + host_bytes.len());
        buf.extend_from_slice(method);
        buf.extend_from_slice(target);
        buf.extend_from_slice(host_bytes);
        Self {
            buf: buf.into_boxed_slice(),
            method_end: method.len() as u32,
            target_end: (method.len() + target.len()) as u32,
            has_host: host.is_some(),
        }
    }

    pub fn method(&self) -> &[u8] {
        &self.buf[..self.method_end as usize]
    }

    pub fn target(&self) -> &[u8] {
        &self.buf[self.method_end as usize..self.target_end as usize]
    }

    /// The first Host field's value; `None` when the request had none.
    pub fn host(&self) -> Option<&[u8]> {
        self.has_host.then(|| &self.buf[self.target_end as usize..])
    }
}

impl std::fmt::Debug for RequestLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        f.debug_struct("RequestLine")
            .field("method", &s(self.method()))
            .field("target", &s(self.target()))
            .field("host", &self.host().map(s))
            .finish()
    }
}

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
}

/// How the body after a head is delimited (RFC 9112 section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
    /// Until the connection closes (responses only).
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of a chunk size.
    Size { value: u64, digits: u8 },
    /// Skipping chunk extensions up to LF.
    Ext { value: u64 },
    /// Chunk data left.
    Data(u64),
    /// CR LF after chunk data.
    DataEnd { seen_cr: bool },
    /// Trailer section: at the start of a line.
    TrailerLineStart,
    /// Inside a trailer line.
    TrailerLine,
    /// CR of the empty line that ends the message.
    FinalLf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Between messages.
    Idle,
    /// Accumulating a head.
    Head,
    /// Head parsed; waiting for [`MessageParser::set_framing`].
    AwaitFraming,
    BodyLength(u64),
    BodyChunked(Chunk),
    BodyClose,
    /// After an error or gap: skip until a segment starts a message.
    Resync,
    /// Not HTTP any more.
    Tunnel,
}

/// One step's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// The first byte of a message, captured at `ts`.
    Start { ts: u64 },
    /// The head is complete; call `set_framing` before feeding more.
    Head(Head),
    /// The message is complete: its last byte was captured at `ts`; `bytes` is its size on the
    /// wire (head, body, chunk framing).
    End { ts: u64, bytes: u64 },
    /// The message in progress is lost; the parser resynchronises.
    Error(ParseError),
}

/// Parser for one direction.
#[derive(Debug)]
pub struct MessageParser {
    state: State,
    /// A head split over segments, gathered. Boxed and absent otherwise (nearly always): an empty
    /// `Vec` is 24 bytes in both directions of every connection in the table, the box 8.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes per direction instead of 24, see above"
    )]
    head: Option<Box<Vec<u8>>>,
    /// Bytes of the current message so far; after an error, of the failed message (until the
    /// next message starts).
    bytes: u64,
    /// Capture time of the last byte consumed.
    last_ts: u64,
}

impl Default for MessageParser {
    fn default() -> Self {
        Self {
            state: State::Idle,
            head: None,
            bytes: 0,
            last_ts: 0,
        }
    }
}

/// Does this segment start an HTTP/1.x message (request line or status line)?
pub fn starts_message(data: &[u8]) -> bool {
    let mut head = [0u8; HTTP_TOKEN_MAX];
    let n = data.len().min(HTTP_TOKEN_MAX);
    head[..n].copy_from_slice(&data[..n]);
    starts_http_message(&head, data.len())
}

impl MessageParser {
    /// Bytes the message reported by the last [`Event::Error`] had consumed (it still crossed the
    /// wire and counts toward its exchange).
    pub fn failed_bytes(&self) -> u64 {
        self.bytes
    }

    /// Capture time of the last byte consumed.
    pub fn last_ts(&self) -> u64 {
        self.last_ts
    }

    /// In the middle of a message (its start seen, its end not yet)?
    pub fn in_message(&self) -> bool {
        !matches!(self.state, State::Idle | State::Resync | State::Tunnel)
    }

    /// Skips bytes until the start of a segment that begins a message.
    pub fn resync(&mut self) {
        self.state = State::Resync;
        self.head = None;
    }

    pub fn tunnel(&mut self) {
        self.state = State::Tunnel;
        self.head = None;
    }

    /// Sets the body framing of the message whose head was just returned. A message with no body
    /// ends here.
    pub fn set_framing(&mut self, f: Framing) -> Option<Event> {
        debug_assert_eq!(self.state, State::AwaitFraming);
        match f {
            Framing::None | Framing::Length(0) => {
                self.state = State::Idle;
                Some(self.end())
            }
            Framing::Length(n) => {
                self.state = State::BodyLength(n);
                None
            }
            Framing::Chunked => {
                self.state = State::BodyChunked(Chunk::Size {
                    value: 0,
                    digits: 0,
                });
                None
            }
            Framing::Close => {
                self.state = State::BodyClose;
                None
            }
        }
    }

    fn end(&mut self) -> Event {
        let e = Event::End {
            ts: self.last_ts,
            bytes: self.bytes,
        };
        self.bytes = 0;
        e
    }

    fn fail(&mut self, e: ParseError) -> Event {
        self.resync();
        Event::Error(e)
    }

    /// `at_segment_start`: `data` begins where a captured segment began (resynchronisation only
    /// happens there). Returns the bytes consumed and the event reached, if any.
    pub fn feed(&mut self, ts: u64, data: &[u8], at_segment_start: bool) -> (usize, Option<Event>) {
        if data.is_empty() {
            return (0, None);
        }
        match &mut self.state {
            State::Tunnel => (data.len(), None),
            State::Resync => {
                if at_segment_start && starts_message(data) {
                    self.state = State::Idle;
                    (0, None)
                } else {
                    (data.len(), None)
                }
            }
            State::Idle => {
                // Empty lines before a request line are tolerated (RFC 9112 2.2).
                let skip = data
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                if skip > 0 {
                    return (skip, None);
                }
                if !starts_message(data) {
                    return (0, Some(self.fail(ParseError::BadHead)));
                }
                self.state = State::Head;
                self.head = None;
                self.bytes = 0;
                self.last_ts = ts;
                (0, Some(Event::Start { ts }))
            }
            State::Head => self.feed_head(ts, data),
            State::AwaitFraming => (0, None),
            State::BodyLength(rem) => {
                let n = (*rem).min(data.len() as u64);
                *rem -= n;
                self.bytes += n;
                self.last_ts = ts;
                if *rem == 0 {
                    self.state = State::Idle;
                    (n as usize, Some(self.end()))
                } else {
                    (n as usize, None)
                }
            }
            State::BodyClose => {
                self.bytes += data.len() as u64;
                self.last_ts = ts;
                (data.len(), None)
            }
            State::BodyChunked(_) => self.feed_chunked(ts, data),
        }
    }

    fn feed_head(&mut self, ts: u64, data: &[u8]) -> (usize, Option<Event>) {
        if self.head.is_none()
            && let Ok(Some((end, head))) = parse_head_prefix(data)
            && end <= MAX_HEAD
        {
            // The whole head is in this segment, as it nearly always is: parse it where it lies,
            // in one pass that also finds its end. Anything else (a head split over segments, an
            // error) takes the general path below, which reports errors only at the head's end.
            self.bytes += end as u64;
            self.last_ts = ts;
            return self.parsed(end, Ok(head));
        }
        let buf = self.head.get_or_insert_default();
        let old = buf.len();
        let room = MAX_HEAD + 4 - old;
        let take = data.len().min(room);
        buf.extend_from_slice(&data[..take]);
        // The head ends at the first empty line; search only where it can newly appear.
        let from = old.saturating_sub(3);
        let end = find_head_end(&buf[from..]).map(|e| from + e);
        let Some(end) = end else {
            if buf.len() > MAX_HEAD {
                return (take, Some(self.fail(ParseError::HeadTooLarge)));
            }
            self.last_ts = ts;
            self.bytes += take as u64;
            return (take, None);
        };
        if end > MAX_HEAD {
            return (take, Some(self.fail(ParseError::HeadTooLarge)));
        }
        let used = end - old;
        buf.truncate(end);
        self.bytes += used as u64;
        self.last_ts = ts;
        let parsed = parse_head(buf);
        // The head's buffer is not kept between messages: an idle connection (most of a big
        // table) then holds no buffer at all.
        self.head = None;
        self.parsed(used, parsed)
    }

    fn parsed(&mut self, used: usize, head: Result<Head, ParseError>) -> (usize, Option<Event>) {
        match head {
            Ok(h) => {
                self.state = State::AwaitFraming;
                (used, Some(Event::Head(h)))
            }
            Err(e) => (used, Some(self.fail(e))),
        }
    }

    fn feed_chunked(&mut self, ts: u64, data: &[u8]) -> (usize, Option<Event>) {
        let State::BodyChunked(mut st) = self.state.clone() else {
            unreachable!()
        };
        self.last_ts = ts;
        let mut i = 0;
        while i < data.len() {
            if let Chunk::Data(rem) = st {
                let n = rem.min((data.len() - i) as u64);
                i += n as usize;
                st = if rem == n {
                    Chunk::DataEnd { seen_cr: false }
                } else {
                    Chunk::Data(rem - n)
                };
                continue;
            }
            let b = data[i];
            i += 1;
            st = match st {
                Chunk::Size { value, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let d = u64::from((b as char).to_digit(16).expect("hex digit"));
                        // About 2^63 at most: anything larger is an attack or a bug, not a body.
                        if value >= 1 << 59 {
                            self.bytes += i as u64;
                            return (i, Some(self.fail(ParseError::BadChunk)));
                        }
                        Chunk::Size {
                            value: value * 16 + d,
                            digits: digits + 1,
                        }
                    }
                    b';' | b' ' | b'\t' | b'\r' if digits > 0 => Chunk::Ext { value },
                    b'\n' if digits > 0 => chunk_after_size(value),
                    _ => {
                        self.bytes += i as u64;
                        return (i, Some(self.fail(ParseError::BadChunk)));
                    }
                },
                Chunk::Ext { value } => {
                    if b == b'\n' {
                        chunk_after_size(value)
                    } else {
                        Chunk::Ext { value }
                    }
                }
                Chunk::DataEnd { seen_cr } => match (b, seen_cr) {
                    (b'\r', false) => Chunk::DataEnd { seen_cr: true },
                    (b'\n', _) => Chunk::Size {
                        value: 0,
                        digits: 0,
                    },
                    _ => {
                        self.bytes += i as u64;
                        return (i, Some(self.fail(ParseError::BadChunk)));
                    }
                },
                Chunk::TrailerLineStart => match b {
                    b'\r' => Chunk::FinalLf,
                    b'\n' => {
                        self.bytes += i as u64;
                        self.state = State::Idle;
                        return (i, Some(self.end()));
                    }
                    _ => Chunk::TrailerLine,
                },
                Chunk::TrailerLine => {
                    if b == b'\n' {
                        Chunk::TrailerLineStart
                    } else {
                        Chunk::TrailerLine
                    }
                }
                Chunk::FinalLf => {
                    if b == b'\n' {
                        self.bytes += i as u64;
                        self.state = State::Idle;
                        return (i, Some(self.end()));
                    }
                    self.bytes += i as u64;
                    return (i, Some(self.fail(ParseError::BadChunk)));
                }
                Chunk::Data(_) => unreachable!("handled above"),
            };
        }
        self.bytes += i as u64;
        self.state = State::BodyChunked(st);
        (i, None)
    }

    /// `len` bytes of this direction were never captured.
    pub fn gap(&mut self, len: u64, ts: u64) -> Option<Event> {
        match &mut self.state {
            State::Tunnel | State::Resync => None,
            State::BodyClose => {
                self.bytes += len;
                None
            }
            // A body of known length survives a gap inside it, and one that ends inside a gap is
            // complete; only what follows it in the gap (the next message's start) is lost.
            State::BodyLength(rem) => {
                let n = len.min(*rem);
                *rem -= n;
                self.bytes += n;
                self.last_ts = ts;
                if *rem == 0 {
                    let e = self.end();
                    if len > n {
                        self.resync();
                    } else {
                        self.state = State::Idle;
                    }
                    return Some(e);
                }
                None
            }
            State::BodyChunked(Chunk::Data(rem)) if len <= *rem => {
                *rem -= len;
                self.bytes += len;
                if *rem == 0 {
                    self.state = State::BodyChunked(Chunk::DataEnd { seen_cr: false });
                }
                None
            }
            State::Idle => {
                // Whatever follows may be the middle of a message.
                self.resync();
                None
            }
            _ => Some(self.fail(ParseError::Gap)),
        }
    }

    /// The direction ended (FIN, reset, idle, end of capture). A close-delimited body ends here;
    /// any other message in progress is truncated.
    pub fn close(&mut self, clean: bool) -> Option<Event> {
        match self.state {
            State::BodyClose if clean => {
                self.state = State::Idle;
                Some(self.end())
            }
            State::Head
            | State::AwaitFraming
            | State::BodyLength(_)
            | State::BodyChunked(_)
            | State::BodyClose => Some(self.fail(ParseError::Truncated)),
            _ => None,
        }
    }
}

fn chunk_after_size(value: u64) -> Chunk {
    if value == 0 {
        Chunk::TrailerLineStart
    } else {
        Chunk::Data(value)
    }
}

/// Offset just past the empty line that ends a head (CRLF CRLF, or bare LF LF, which httparse also
/// accepts).
fn find_head_end(buf: &[u8]) -> Option<usize> {
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

/// A whole head.
fn parse_head(buf: &[u8]) -> Result<Head, ParseError> {
    parse_head_prefix(buf)?
        .map(|(_, h)| h)
        .ok_or(ParseError::BadHead)
}

/// The head at the start of `buf`: its length and what it says; `None` when `buf` ends first.
fn parse_head_prefix(buf: &[u8]) -> Result<Option<(usize, Head)>, ParseError> {
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
        // Only four names matter; their lengths differ, so most fields are skipped on length.
        if !matches!(name.len(), 4 | 10 | 14 | 17) {
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
        } else if name.eq_ignore_ascii_case(b"connection") {
            head.close |= h
                .value
                .split(|&b| b == b',')
                .any(|t| trim(t).eq_ignore_ascii_case(b"close"));
        }
    }
    head.request = request_line.map(|(method, target)| RequestLine::new(method, target, host));
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
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` split at every `step` bytes, answering heads with `framing(head)`; returns the
    /// events.
    fn run(data: &[u8], step: usize, framing: impl Fn(&Head) -> Framing) -> Vec<Event> {
        let mut p = MessageParser::default();
        let mut out = Vec::new();
        for (i, part) in data.chunks(step).enumerate() {
            let mut rest = part;
            let mut first = true;
            while !rest.is_empty() {
                let (n, ev) = p.feed(i as u64, rest, first);
                first = false;
                rest = &rest[n..];
                if let Some(ev) = ev {
                    if let Event::Head(h) = &ev {
                        let f = framing(h);
                        out.push(ev);
                        if let Some(e) = p.set_framing(f) {
                            out.push(e);
                        }
                    } else {
                        out.push(ev);
                    }
                }
            }
        }
        out
    }

    fn req_framing(h: &Head) -> Framing {
        if h.chunked {
            Framing::Chunked
        } else {
            h.content_length.map_or(Framing::None, Framing::Length)
        }
    }

    fn ends(ev: &[Event]) -> Vec<u64> {
        ev.iter()
            .filter_map(|e| {
                if let Event::End { bytes, .. } = e {
                    Some(*bytes)
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn pipelined_requests_at_any_split() {
        let data = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET /c HTTP/1.1\r\n\r\n";
        for step in 1..data.len() {
            let ev = run(data, step, req_framing);
            assert_eq!(ends(&ev), [28, 44, 19], "step {step}");
            assert!(
                !ev.iter().any(|e| matches!(e, Event::Error(_))),
                "step {step}: {ev:?}"
            );
        }
    }

    #[test]
    fn chunked_body_with_extensions_and_trailers() {
        let data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: y\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        for step in 1..data.len() {
            let ev = run(data, step, |h| {
                if h.status == 204 {
                    Framing::None
                } else {
                    Framing::Chunked
                }
            });
            assert_eq!(
                ends(&ev),
                [data.len() as u64 - 27, 27],
                "step {step}: {ev:?}"
            );
        }
    }

    #[test]
    fn huge_chunk_size_is_an_error_not_an_overflow() {
        let data = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFF\r\n";
        let ev = run(data, data.len(), |_| Framing::Chunked);
        assert!(ev.contains(&Event::Error(ParseError::BadChunk)), "{ev:?}");
    }

    #[test]
    fn conflicting_content_lengths_are_rejected() {
        let data = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        let ev = run(data, data.len(), req_framing);
        assert!(ev.contains(&Event::Error(ParseError::BadContentLength)));
        let data = b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\nhello";
        assert_eq!(ends(&run(data, 7, req_framing)), [data.len() as u64]);
    }

    #[test]
    fn oversized_head_and_too_many_headers_are_errors() {
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 10));
        let ev = run(&big, 1000, req_framing);
        assert!(ev.contains(&Event::Error(ParseError::HeadTooLarge)));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..10_000 {
            many.extend(format!("H{i}: v\r\n").as_bytes());
        }
        many.extend(b"\r\n");
        let ev = run(&many, 1400, req_framing);
        assert!(
            ev.contains(&Event::Error(ParseError::HeadTooLarge)),
            "{:?}",
            &ev[..ev.len().min(3)]
        );
    }

    #[test]
    fn after_garbage_it_resyncs_on_a_segment_that_starts_a_message() {
        let mut p = MessageParser::default();
        let (_, ev) = p.feed(1, b"\x16\x03\x01 not http", true);
        assert_eq!(ev, Some(Event::Error(ParseError::BadHead)));
        // The rest of the garbage, then a segment that does not start a message, are skipped.
        assert_eq!(p.feed(2, b"more", true), (4, None));
        assert_eq!(p.feed(3, b"body GET / HTTP/1.1", true).0, 19);
        // A segment starting a request brings it back.
        assert_eq!(p.feed(4, b"GET / HTTP/1.1\r\n\r\n", true), (0, None));
        assert_eq!(
            p.feed(4, b"GET / HTTP/1.1\r\n\r\n", true),
            (0, Some(Event::Start { ts: 4 }))
        );
    }

    #[test]
    fn a_gap_inside_a_known_length_body_keeps_the_message() {
        let mut p = MessageParser::default();
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
        p.feed(1, head, true);
        let (n, ev) = p.feed(1, head, true);
        assert!(matches!(ev, Some(Event::Head(_))));
        assert_eq!(n, head.len());
        assert_eq!(p.set_framing(Framing::Length(100)), None);
        assert_eq!(p.feed(2, &[b'x'; 30], true), (30, None));
        assert_eq!(p.gap(50, 3), None);
        let (n, ev) = p.feed(4, &[b'x'; 30], true);
        assert_eq!(n, 20);
        assert_eq!(
            ev,
            Some(Event::End {
                ts: 4,
                bytes: head.len() as u64 + 100
            })
        );
    }

    #[test]
    fn a_gap_past_the_end_of_a_body_completes_it_and_resyncs() {
        let mut p = MessageParser::default();
        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        p.feed(1, head, true);
        p.feed(1, head, true);
        p.set_framing(Framing::Length(10));
        p.feed(2, b"abc", true);
        // 7 body bytes and the start of the next message were never captured.
        assert_eq!(
            p.gap(50, 3),
            Some(Event::End {
                ts: 3,
                bytes: head.len() as u64 + 10
            })
        );
        // The rest of that next message is skipped; a segment starting a message resumes.
        assert_eq!(p.feed(4, b"xyz\r\n\r\n", true), (7, None));
        assert_eq!(
            p.feed(5, b"HTTP/1.1 204 No Content\r\n\r\n", true),
            (0, None)
        );
    }

    #[test]
    fn close_ends_a_close_delimited_body_and_truncates_others() {
        let mut p = MessageParser::default();
        let head = b"HTTP/1.0 200 OK\r\n\r\n";
        p.feed(1, head, true);
        p.feed(1, head, true);
        p.set_framing(Framing::Close);
        p.feed(2, b"abc", true);
        assert_eq!(
            p.close(true),
            Some(Event::End {
                ts: 2,
                bytes: head.len() as u64 + 3
            })
        );
        let mut q = MessageParser::default();
        q.feed(1, head, true);
        q.feed(1, head, true);
        q.set_framing(Framing::Length(10));
        assert_eq!(q.close(true), Some(Event::Error(ParseError::Truncated)));
    }

    #[test]
    fn head_fields() {
        let h = parse_head(
            b"GET http://h/p?q HTTP/1.0\r\nHOST: example\r\nConnection: keep-alive, Close\r\n\r\n",
        )
        .unwrap();
        let r = h.request.expect("a request");
        assert_eq!(r.method(), b"GET");
        assert_eq!(r.target(), b"http://h/p?q");
        assert_eq!(r.host(), Some(&b"example"[..]));
        assert_eq!(h.minor, 0);
        assert!(h.close);
        let r = parse_head(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 12\r\n\r\n").unwrap();
        assert_eq!((r.status, r.content_length), (304, Some(12)));
    }
}
