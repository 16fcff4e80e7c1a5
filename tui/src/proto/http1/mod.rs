//! HTTP/1.x on top of reassembled streams: parse both directions, pair every response with its
//! request, and emit one [`Exchange`] per request (answered or not) and per unexplained response.
//!
//! - The client is the side that sends a request, whatever the ports say.
//! - Requests queue per connection; responses pair first-in, first-out (pipelining, RFC 9112 9.3.2).
//! - Interim responses (1xx but 101) belong to the request they precede; the exchange completes with
//!   the final response, and the interim bytes count toward the response.
//! - 101 and a successful CONNECT end HTTP on the connection (counted as an exchange first).
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

mod head;
pub mod parser;

use std::collections::VecDeque;

use self::parser::{Event, Framing, Head, MessageParser, ParseError};
use super::{Ctx, Detecting, Exchange, Parser, Protocol, RequestLine};
use crate::flow::CloseReason;

/// Requests waiting for a response on one connection, at most.
pub const MAX_PENDING: usize = 256;

#[derive(Debug, Default)]
struct Pending {
    line: Option<RequestLine>,
    /// Minor version of the request's head (HTTP/1.0 or 1.1); 1 until the head is seen.
    minor: u8,
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
    /// Minor version of the final response's head.
    minor: u8,
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
    /// A tunnel (101, CONNECT): bytes are ignored.
    Ignored,
}

/// An HTTP/1.x connection's state, kept in the flow table.
#[derive(Debug, Default)]
pub struct Http1Conn {
    /// Direction whose sender is the client.
    client: u8,
    parsers: [MessageParser; 2],
    pending: VecDeque<Pending>,
    response: Response,
    mode: Mode,
    /// Bytes delivered per direction, gaps included (mod 2^32).
    pos: [u32; 2],
    /// What the client last acknowledged of the responses (offset, mod 2^32); before the
    /// protocol was known, what either side last acknowledged.
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

impl Http1Conn {
    /// Takes over a connection whose client sends in direction `client`, with what was seen
    /// before its first message.
    pub fn new(client: usize, d: &Detecting) -> Self {
        let mut c = Self {
            client: client as u8,
            pos: d.pos,
            acked: d.acked,
            ..Self::default()
        };
        for (p, dirty) in c.parsers.iter_mut().zip(d.dirty) {
            if dirty {
                p.resync();
            }
        }
        c
    }

    fn emit(
        &mut self,
        cx: &mut Ctx<'_>,
        req: Option<Pending>,
        status: Option<u16>,
        resp_end: (u64, u64),
        truncated: bool,
    ) {
        let client_dir = usize::from(self.client);
        let resp = &self.response;
        let (resp_last_ns, resp_bytes) = resp_end;
        let request_seen = req.is_some();
        // The request's version, else the response's.
        let minor = req.as_ref().map_or(resp.minor, |r| r.minor);
        let req = req.unwrap_or_default();
        if status.is_some() {
            cx.stats.responses += 1;
            if !request_seen {
                cx.stats.unmatched_responses += 1;
            }
        }
        cx.exchanges.push(Exchange {
            client: cx.info.addrs[client_dir],
            server: cx.info.addrs[1 - client_dir],
            protocol: if minor == 0 {
                Protocol::Http10
            } else {
                Protocol::Http11
            },
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

    /// One parser event of direction `dir`; `cursor` is the offset in that direction of the byte
    /// the parser is at.
    fn event(&mut self, cx: &mut Ctx<'_>, dir: usize, ev: Event, cursor: u32) {
        let from_client = usize::from(self.client) == dir;
        match ev {
            Event::Start { ts } => {
                if from_client {
                    if self.pending.len() >= MAX_PENDING {
                        cx.stats.pending_overflows += 1;
                        self.pending.pop_front();
                    }
                    cx.stats.requests += 1;
                    // Room for one: most connections never pipeline, and the default first
                    // allocation (four) is most of an idle connection's memory.
                    if self.pending.capacity() == 0 {
                        self.pending.reserve_exact(1);
                    }
                    self.pending.push_back(Pending {
                        minor: 1,
                        first_ns: ts,
                        last_ns: ts,
                        resp_seen: self.acked,
                        resp_gaps: self.resp_gaps,
                        ..Pending::default()
                    });
                } else {
                    let start = cursor;
                    if self.response.interim_bytes == 0 {
                        self.drop_lost(cx, start);
                    }
                    self.last_end = start;
                    // The first byte of this response; for a final response after interim ones,
                    // this is its own first byte, which is what TTFB measures.
                    self.response.first_ns = ts;
                }
            }
            Event::Head(head) => {
                let framing = if from_client {
                    self.request_head(head)
                } else {
                    self.response_head(head)
                };
                match framing {
                    Some(f) => {
                        if let Some(ev) = self.parsers[dir].set_framing(f) {
                            self.event(cx, dir, ev, cursor);
                        }
                    }
                    None => {
                        // A message of the wrong kind for this direction.
                        cx.stats.parse_errors += 1;
                        self.parsers[dir].resync();
                    }
                }
            }
            Event::End { ts, bytes } => {
                if from_client {
                    if let Some(p) = self.pending.back_mut() {
                        p.last_ns = ts;
                        p.bytes = bytes;
                    }
                } else if self.response.interim {
                    cx.stats.interim_responses += 1;
                    self.response.interim_bytes =
                        self.response.interim_bytes.saturating_add(bytes as u32);
                    self.response.interim = false;
                } else {
                    self.last_end = self.last_end.wrapping_add(bytes as u32);
                    self.last_end_known = true;
                    let req = self.pending.pop_front();
                    let total = bytes + u64::from(self.response.interim_bytes);
                    let status = Some(self.response.status);
                    let tunnel = self.response.tunnel;
                    self.emit(cx, req, status, (ts, total), false);
                    self.response = Response::default();
                    if tunnel {
                        // 101 or CONNECT 2xx: the connection is no longer HTTP/1.x.
                        cx.stats.tunnels += 1;
                        self.mode = Mode::Ignored;
                        self.parsers.iter_mut().for_each(MessageParser::tunnel);
                    }
                }
            }
            Event::Error(e) => {
                match e {
                    ParseError::Truncated => cx.stats.truncated += 1,
                    ParseError::Gap => {}
                    _ => cx.stats.parse_errors += 1,
                }
                cx.stats.resyncs += 1;
                if from_client {
                    return;
                }
                // Where this response really ended is unknown now.
                self.last_end_known = false;
                if self.response.status != 0 && !self.response.interim {
                    // The response's head was seen: it answered the front request, even if its
                    // body was cut. Keep the pairing aligned.
                    let req = self.pending.pop_front();
                    let status = Some(self.response.status);
                    let last = self.response.first_ns.max(self.parsers[dir].last_ts());
                    let bytes =
                        u64::from(self.response.interim_bytes) + self.parsers[dir].failed_bytes();
                    self.emit(cx, req, status, (last, bytes), true);
                }
                self.response = Response::default();
            }
        }
    }

    /// Emits, unanswered, the first waiting requests whose responses the client's
    /// acknowledgements show were lost before a response starting at `start` (see the module
    /// notes).
    fn drop_lost(&mut self, cx: &mut Ctx<'_>, start: u32) {
        while self.last_end_known && self.pending.len() >= 2 {
            let (first, next) = (&self.pending[0], &self.pending[1]);
            let lost = first.resp_gaps != self.resp_gaps
                && seq_le(self.last_end, first.resp_seen)
                && first.resp_seen != next.resp_seen
                && seq_le(first.resp_seen, next.resp_seen)
                && seq_le(next.resp_seen, start);
            if !lost {
                break;
            }
            cx.stats.lost_responses += 1;
            let req = self.pending.pop_front();
            self.emit(cx, req, None, (0, 0), true);
        }
    }

    fn request_head(&mut self, head: Head) -> Option<Framing> {
        let line = head.request?;
        let p = self.pending.back_mut()?;
        let connect = line.method() == b"CONNECT";
        p.line = Some(line);
        p.minor = head.minor;
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

    fn response_head(&mut self, head: Head) -> Option<Framing> {
        if head.request.is_some() {
            return None;
        }
        let status = head.status;
        let method = self
            .pending
            .front()
            .and_then(|p| p.line.as_ref())
            .map(RequestLine::method);
        self.response.status = status;
        self.response.minor = head.minor;
        self.response.interim = (100..200).contains(&status) && status != 101;
        // RFC 9112 6.3, in order.
        Some(
            if self.response.interim || method == Some(b"HEAD") || status == 204 || status == 304 {
                Framing::None
            } else if status == 101 || (method == Some(b"CONNECT") && (200..300).contains(&status))
            {
                self.response.tunnel = true;
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
}

impl Parser for Http1Conn {
    fn on_ack(&mut self, dir: usize, offset: u64) {
        if usize::from(self.client) == dir {
            self.acked = offset as u32;
        }
    }

    fn on_data(&mut self, cx: &mut Ctx<'_>, dir: usize, ts: u64, data: &[u8]) {
        let base = self.pos[dir];
        self.pos[dir] = base.wrapping_add(data.len() as u32);
        let mut rest = data;
        let mut at_start = true;
        while !rest.is_empty() && self.mode == Mode::Http {
            let (n, ev) = self.parsers[dir].feed(ts, rest, at_start);
            at_start = false;
            rest = &rest[n..];
            if let Some(ev) = ev {
                let cursor = base.wrapping_add((data.len() - rest.len()) as u32);
                self.event(cx, dir, ev, cursor);
            }
        }
    }

    fn on_gap(&mut self, cx: &mut Ctx<'_>, dir: usize, len: u64, ts: u64) {
        self.pos[dir] = self.pos[dir].wrapping_add(len as u32);
        if usize::from(self.client) != dir {
            self.resp_gaps = self.resp_gaps.wrapping_add(1);
        }
        if self.mode == Mode::Ignored {
            return;
        }
        if let Some(ev) = self.parsers[dir].gap(len, ts) {
            let cursor = self.pos[dir];
            self.event(cx, dir, ev, cursor);
        }
    }

    fn on_close(&mut self, cx: &mut Ctx<'_>, reason: CloseReason) {
        if self.mode == Mode::Http {
            let clean = reason != CloseReason::Reset;
            // The server side first: a close-delimited response ends here and pairs with its
            // request before the requests still waiting are flushed as unanswered.
            let client = usize::from(self.client);
            for dir in [1 - client, client] {
                if let Some(ev) = self.parsers[dir].close(clean) {
                    let cursor = self.pos[dir];
                    self.event(cx, dir, ev, cursor);
                }
            }
        }
        // Whatever is still waiting never got a response.
        while let Some(req) = self.pending.pop_front() {
            self.emit(cx, Some(req), None, (0, 0), false);
        }
    }
}
