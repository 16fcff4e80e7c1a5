//! HTTP/1.x on top of reassembled streams: parse both directions, pair every response with its
//! request, and emit one [`Exchange`] per request (answered or not) and per unexplained response.
//!
//! - The client is the side that sends a request, whatever the ports say.
//! - Requests queue per connection; responses pair first-in, first-out (pipelining, RFC 9112 9.3.2).
//! - Interim responses (1xx but 101) belong to the request they precede; the exchange completes with
//!   the final response, and the interim bytes count toward the response.
//! - 101 and a successful CONNECT end HTTP on the connection (counted as an exchange first); an
//!   HTTP/2 connection preface marks the connection HTTP/2 and it is ignored.
//! - After a gap or a parse error the direction resynchronises on the next segment that starts a
//!   message; a gap inside a body of known length loses nothing.
//! - A response lost whole in a gap would leave its request first in the queue, and every later
//!   response paired one request too early. TCP says when that happened: each request remembers
//!   how much of the response stream the client had acknowledged when it sent it. When a response
//!   starts at offset S after a gap in the response stream, and the request after the first one
//!   was sent having received more response bytes than when the first was sent (after the
//!   previous response had ended), and no more than S, then the first request's response began
//!   before S: it was lost, and the request is emitted unanswered (truncated) instead of taking
//!   this response. Positions are 32-bit and compared as TCP compares sequence numbers.

pub mod parser;

use std::{collections::VecDeque, net::SocketAddr};

use self::parser::{Event, Framing, Head, MessageParser, ParseError, RequestLine, starts_message};
use crate::flow::{CloseReason, ConnInfo, Handler};

/// Requests waiting for a response on one connection, at most.
pub const MAX_PENDING: usize = 256;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// One request and its response, or one of them alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub client: SocketAddr,
    pub server: SocketAddr,
    /// `false` for a response whose request was never seen (grouped as `_unknown`).
    pub request_seen: bool,
    /// Raw request method, target and Host (absent when the request head was lost).
    pub request: Option<RequestLine>,
    /// Final status; `None` when no response came.
    pub status: Option<u16>,
    /// Capture times (ns since the epoch) of the first and last request byte and of the first and
    /// last byte of the final response (0 when absent).
    pub req_first_ns: u64,
    pub req_last_ns: u64,
    pub resp_first_ns: u64,
    pub resp_last_ns: u64,
    /// Message sizes on the wire: start line, fields, body, chunk framing; interim responses count
    /// toward the response.
    pub req_bytes: u64,
    pub resp_bytes: u64,
    /// The response was cut short (close or reset before its end, or a gap it could not survive).
    pub truncated: bool,
}

impl Exchange {
    pub fn method(&self) -> Option<&[u8]> {
        self.request.as_ref().map(RequestLine::method)
    }

    pub fn target(&self) -> Option<&[u8]> {
        self.request.as_ref().map(RequestLine::target)
    }

    pub fn host(&self) -> Option<&[u8]> {
        self.request.as_ref().and_then(RequestLine::host)
    }

    /// First request byte to last response byte, in ns, when both exist.
    pub fn latency_ns(&self) -> Option<u64> {
        (self.request_seen && self.status.is_some() && self.resp_last_ns > 0)
            .then(|| self.resp_last_ns.saturating_sub(self.req_first_ns))
    }

    /// First request byte to first byte of the final response, in ns.
    pub fn ttfb_ns(&self) -> Option<u64> {
        (self.request_seen && self.status.is_some() && self.resp_first_ns > 0)
            .then(|| self.resp_first_ns.saturating_sub(self.req_first_ns))
    }
}

crate::counters! {
    /// Counters of the HTTP layer.
    pub struct HttpStats {
        requests: "requests" Counter,
        responses: "responses" Counter,
        interim_responses: "interim" Counter,
        unmatched_responses: "unmatched_responses" Counter,
        parse_errors: "parse_errors" Counter,
        /// Messages cut short by a close or reset (not a parse error: the peer stopped).
        truncated: "truncated" Counter,
        /// Directions that lost their place after a gap and had to resynchronise.
        resyncs: "resyncs" Counter,
        http2_connections: "http2" Counter,
        tunnels: "tunnels" Counter,
        /// Requests dropped because a connection had too many waiting for a response.
        pending_overflows: "pending_overflows" Counter,
        /// Requests whose response was lost in a gap (found from the client's acknowledgements).
        lost_responses: "lost_responses" Counter,
    }
}

#[derive(Debug, Default)]
struct Pending {
    line: Option<RequestLine>,
    /// Response-stream offset the client had acknowledged when it sent the request's first byte.
    resp_seen: u32,
    /// The response stream's gap count then.
    resp_gaps: u8,
    first_ns: u64,
    last_ns: u64,
    bytes: u64,
}

/// The response being received.
#[derive(Debug, Default)]
struct Response {
    first_ns: u64,
    status: u16,
    interim: bool,
    /// Bytes of interim (1xx) responses so far: small heads, so 32 bits keep the connection
    /// 8 bytes smaller.
    interim_bytes: u32,
    tunnel: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Mode {
    #[default]
    Http,
    /// HTTP/2, a tunnel, or otherwise not ours: bytes are ignored.
    Ignored,
}

/// Per-connection state, kept in the flow table.
#[derive(Debug, Default)]
pub struct HttpConn {
    /// Direction whose sender is the client, once known.
    client: Option<u8>,
    parsers: [MessageParser; 2],
    pending: VecDeque<Pending>,
    response: Response,
    mode: Mode,
    /// Bytes delivered per direction, gaps included (mod 2^32).
    pos: [u32; 2],
    /// What the client last acknowledged of the responses (offset, mod 2^32); before the client
    /// is known, what either side last acknowledged.
    acked: u32,
    /// Gaps in the response direction so far (wrapping).
    resp_gaps: u8,
    /// End of the last response that ended in order; while a response is in progress, its start
    /// (the end is the start plus its size).
    last_end: u32,
    last_end_known: bool,
}

/// `a <= b` for positions that wrap at 2^32 and lie within 2 GiB of each other.
fn seq_le(a: u32, b: u32) -> bool {
    b.wrapping_sub(a) as i32 >= 0
}

/// Collects exchanges from every connection.
#[derive(Debug, Default)]
pub struct HttpHandler {
    pub stats: HttpStats,
    /// Offset in its direction of the byte the parser is at, while `on_data` feeds it.
    cursor: u32,
    /// Finished exchanges, in completion order; drained by the caller.
    pub exchanges: Vec<Exchange>,
}

impl HttpHandler {
    fn emit(
        &mut self,
        c: &mut HttpConn,
        info: &ConnInfo,
        req: Option<Pending>,
        status: Option<u16>,
        resp_end: (u64, u64),
        truncated: bool,
    ) {
        let client_dir = usize::from(c.client.unwrap_or(0));
        let resp = &c.response;
        let (resp_last_ns, resp_bytes) = resp_end;
        let request_seen = req.is_some();
        let req = req.unwrap_or_default();
        if status.is_some() {
            self.stats.responses += 1;
            if !request_seen {
                self.stats.unmatched_responses += 1;
            }
        }
        self.exchanges.push(Exchange {
            client: info.addrs[client_dir],
            server: info.addrs[1 - client_dir],
            request_seen,
            request: req.line,
            status,
            req_first_ns: req.first_ns,
            req_last_ns: req.last_ns,
            resp_first_ns: if status.is_some() { resp.first_ns } else { 0 },
            resp_last_ns,
            req_bytes: req.bytes,
            resp_bytes,
            truncated,
        });
    }

    fn event(&mut self, c: &mut HttpConn, info: &ConnInfo, dir: usize, ev: Event) {
        let from_client = c.client.map(usize::from) == Some(dir);
        match ev {
            Event::Start { ts } => {
                if from_client {
                    if c.pending.len() >= MAX_PENDING {
                        self.stats.pending_overflows += 1;
                        c.pending.pop_front();
                    }
                    self.stats.requests += 1;
                    // Room for one: most connections never pipeline, and the default first
                    // allocation (four) is most of an idle connection's memory.
                    if c.pending.capacity() == 0 {
                        c.pending.reserve_exact(1);
                    }
                    c.pending.push_back(Pending {
                        first_ns: ts,
                        last_ns: ts,
                        resp_seen: c.acked,
                        resp_gaps: c.resp_gaps,
                        ..Pending::default()
                    });
                } else {
                    let start = self.cursor;
                    if c.response.interim_bytes == 0 {
                        self.drop_lost(c, info, start);
                    }
                    c.last_end = start;
                    // The first byte of this response; for a final response after interim ones,
                    // this is its own first byte, which is what TTFB measures.
                    c.response.first_ns = ts;
                }
            }
            Event::Head(head) => {
                let framing = if from_client {
                    self.request_head(c, head)
                } else {
                    self.response_head(c, head)
                };
                match framing {
                    Some(f) => {
                        if let Some(ev) = c.parsers[dir].set_framing(f) {
                            self.event(c, info, dir, ev);
                        }
                    }
                    None => {
                        // A message of the wrong kind for this direction.
                        self.stats.parse_errors += 1;
                        c.parsers[dir].resync();
                    }
                }
            }
            Event::End { ts, bytes } => {
                if from_client {
                    if let Some(p) = c.pending.back_mut() {
                        p.last_ns = ts;
                        p.bytes = bytes;
                    }
                } else if c.response.interim {
                    self.stats.interim_responses += 1;
                    c.response.interim_bytes =
                        c.response.interim_bytes.saturating_add(bytes as u32);
                    c.response.interim = false;
                } else {
                    c.last_end = c.last_end.wrapping_add(bytes as u32);
                    c.last_end_known = true;
                    let req = c.pending.pop_front();
                    let total = bytes + u64::from(c.response.interim_bytes);
                    let status = Some(c.response.status);
                    let tunnel = c.response.tunnel;
                    self.emit(c, info, req, status, (ts, total), false);
                    c.response = Response::default();
                    if tunnel {
                        // 101 or CONNECT 2xx: the connection is no longer HTTP/1.x.
                        self.stats.tunnels += 1;
                        c.mode = Mode::Ignored;
                        c.parsers.iter_mut().for_each(MessageParser::tunnel);
                    }
                }
            }
            Event::Error(e) => {
                match e {
                    ParseError::Truncated => self.stats.truncated += 1,
                    ParseError::Gap => {}
                    _ => self.stats.parse_errors += 1,
                }
                self.stats.resyncs += 1;
                if from_client {
                    return;
                }
                // Where this response really ended is unknown now.
                c.last_end_known = false;
                if c.response.status != 0 && !c.response.interim {
                    // The response's head was seen: it answered the front request, even if its
                    // body was cut. Keep the pairing aligned.
                    let req = c.pending.pop_front();
                    let status = Some(c.response.status);
                    let last = c.response.first_ns.max(c.parsers[dir].last_ts());
                    let bytes = u64::from(c.response.interim_bytes) + c.parsers[dir].failed_bytes();
                    self.emit(c, info, req, status, (last, bytes), true);
                }
                c.response = Response::default();
            }
        }
    }

    /// Emits, unanswered, the first waiting requests whose responses the client's
    /// acknowledgements show were lost before a response starting at `start` (see the module
    /// notes).
    fn drop_lost(&mut self, c: &mut HttpConn, info: &ConnInfo, start: u32) {
        while c.last_end_known && c.pending.len() >= 2 {
            let (first, next) = (&c.pending[0], &c.pending[1]);
            let lost = first.resp_gaps != c.resp_gaps
                && seq_le(c.last_end, first.resp_seen)
                && first.resp_seen != next.resp_seen
                && seq_le(first.resp_seen, next.resp_seen)
                && seq_le(next.resp_seen, start);
            if !lost {
                break;
            }
            self.stats.lost_responses += 1;
            let req = c.pending.pop_front();
            self.emit(c, info, req, None, (0, 0), true);
        }
    }

    fn request_head(&mut self, c: &mut HttpConn, head: Head) -> Option<Framing> {
        let line = head.request?;
        let p = c.pending.back_mut()?;
        let connect = line.method() == b"CONNECT";
        p.line = Some(line);
        // RFC 9112 6.3: a request's body is chunked or Content-Length long, else empty; a CONNECT's
        // bytes after the head are the tunnel's, not a body.
        Some(if connect {
            Framing::None
        } else if head.chunked {
            Framing::Chunked
        } else {
            head.content_length.map_or(Framing::None, Framing::Length)
        })
    }

    fn response_head(&mut self, c: &mut HttpConn, head: Head) -> Option<Framing> {
        if head.request.is_some() {
            return None;
        }
        let status = head.status;
        let method = c
            .pending
            .front()
            .and_then(|p| p.line.as_ref())
            .map(RequestLine::method);
        c.response.status = status;
        c.response.interim = (100..200).contains(&status) && status != 101;
        // RFC 9112 6.3, in order.
        Some(
            if c.response.interim || method == Some(b"HEAD") || status == 204 || status == 304 {
                Framing::None
            } else if status == 101 || (method == Some(b"CONNECT") && (200..300).contains(&status))
            {
                c.response.tunnel = true;
                Framing::None
            } else if head.chunked {
                Framing::Chunked
            } else if head.has_te {
                Framing::Close
            } else if let Some(n) = head.content_length {
                Framing::Length(n)
            } else {
                Framing::Close
            },
        )
    }

    /// Decides who the client is from the first message start seen on a connection.
    fn classify(&mut self, c: &mut HttpConn, dir: usize, data: &[u8]) {
        if data.starts_with(H2_PREFACE) {
            self.stats.http2_connections += 1;
            c.mode = Mode::Ignored;
        } else if data.starts_with(b"HTTP/") {
            c.client = Some(1 - dir as u8);
        } else if starts_message(data) {
            c.client = Some(dir as u8);
        }
    }
}

impl Handler for HttpHandler {
    type Conn = HttpConn;

    fn on_ack(&mut self, c: &mut HttpConn, dir: usize, offset: u64) {
        if c.client.is_none_or(|client| usize::from(client) == dir) {
            c.acked = offset as u32;
        }
    }

    fn on_data(&mut self, c: &mut HttpConn, info: &ConnInfo, dir: usize, ts: u64, data: &[u8]) {
        let base = c.pos[dir];
        c.pos[dir] = base.wrapping_add(data.len() as u32);
        if c.mode == Mode::Ignored {
            return;
        }
        if c.client.is_none() && !c.parsers[dir].in_message() {
            self.classify(c, dir, data);
            if c.mode == Mode::Ignored {
                return;
            }
            if c.client.is_none() {
                // Mid-stream bytes of a connection picked up late: wait for a message start.
                c.parsers[dir].resync();
            }
        }
        let mut rest = data;
        let mut at_start = true;
        while !rest.is_empty() && c.mode == Mode::Http {
            let (n, ev) = c.parsers[dir].feed(ts, rest, at_start);
            at_start = false;
            rest = &rest[n..];
            if let Some(ev) = ev {
                self.cursor = base.wrapping_add((data.len() - rest.len()) as u32);
                self.event(c, info, dir, ev);
            }
        }
    }

    fn on_gap(&mut self, c: &mut HttpConn, info: &ConnInfo, dir: usize, len: u64, ts: u64) {
        c.pos[dir] = c.pos[dir].wrapping_add(len as u32);
        if c.client.is_some_and(|client| usize::from(client) != dir) {
            c.resp_gaps = c.resp_gaps.wrapping_add(1);
        }
        if c.mode == Mode::Ignored {
            return;
        }
        if let Some(ev) = c.parsers[dir].gap(len, ts) {
            self.event(c, info, dir, ev);
        }
    }

    fn on_close(&mut self, c: &mut HttpConn, info: &ConnInfo, reason: CloseReason, _ts: u64) {
        if c.mode == Mode::Http {
            let clean = reason != CloseReason::Reset;
            // The server side first: a close-delimited response ends here and pairs with its
            // request before the requests still waiting are flushed as unanswered.
            let client = usize::from(c.client.unwrap_or(0));
            for dir in [1 - client, client] {
                if let Some(ev) = c.parsers[dir].close(clean) {
                    self.event(c, info, dir, ev);
                }
            }
        }
        // Whatever is still waiting never got a response.
        while let Some(req) = c.pending.pop_front() {
            self.emit(c, info, Some(req), None, (0, 0), false);
        }
    }
}

#[cfg(test)]
mod tests;
