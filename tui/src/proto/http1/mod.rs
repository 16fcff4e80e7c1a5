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
//! - More generally, after bytes lost where a whole message could have been, a response is paired
//!   only with a request that positions prove it answers (`pairing::settle`); otherwise the
//!   request is emitted unanswered and the response alone, both flagged, never paired by guess.
//!   Every exchange whose bytes a gap touched is flagged (`Exchange::gap`).
//! - A response may end before its request does (the server answers early: `return` on a POST,
//!   413 mid-upload, a final status instead of 100 Continue): it is held by its request and the
//!   exchange is emitted when the request ends (or fails, or the connection closes), so the
//!   request's bytes are all counted. Latency is still first request byte to last response byte.
//! - Bytes that are not HTTP where a request should start (`THIS IS NOT HTTP`, a malformed head)
//!   are a request of their own, `unparsable`: its bytes are what the client sent up to the next
//!   message start, and it pairs with the response the server gives it (nginx's 400).

mod framing;
mod head;
mod pairing;
pub mod parser;

use std::collections::VecDeque;

// The kernel filter's rules (`common/`): a body is skipped from SKIP_MIN bytes on, in stretches of
// at most SKIP_MAX that end where a multiple of it is left, so the next is due when a call
// crosses such a point, with no state kept.
use http_top_common::{SKIP_MAX, SKIP_MIN, stretch};

use self::{
    pairing::{
        Answer, H2C, HTTP10, INTERIM, Pending, ReqState, Response, TOUCHED, TUNNEL, UNMATCHED,
    },
    parser::{Event, Framing, MessageParser, ParseError},
};
use super::{BodyAhead, Ctx, Detecting, Parser, RequestLine};
use crate::flow::CloseReason;

/// The request that upgraded its connection to HTTP/2 (`Upgrade: h2c`, answered by 101): stream 1
/// of the HTTP/2 connection that follows, whose response comes as HTTP/2 frames.
#[derive(Debug)]
pub struct Upgrade {
    pub line: Option<RequestLine>,
    pub first_ns: u64,
    pub last_ns: u64,
    pub bytes: u64,
    /// The 101's bytes: they count toward stream 1's response, as an interim response would.
    pub switching_bytes: u64,
    pub gap: bool,
    /// The server's bytes after the 101 in the same segment: the first HTTP/2 frames.
    pub rest: Vec<u8>,
}

/// Requests waiting for a response on one connection, at most.
pub const MAX_PENDING: usize = 256;

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
    /// What the client last acknowledged of the responses (offset, mod 2^32), and whether that is
    /// known.
    acked: u32,
    acked_known: bool,
    /// What the server last acknowledged of the requests (offset, mod 2^32), once it has.
    server_acked: u32,
    server_ack_known: bool,
    /// Gaps in the response direction so far (wrapping).
    resp_gaps: u8,
    /// Response bytes were lost where whole responses could have been, and no request sent after
    /// them has been paired yet; `resp_gap_end` is the response-stream offset after them.
    resp_loss: bool,
    resp_gap_end: u32,
    /// Request bytes were lost where whole requests could have been: the next request is marked.
    req_loss: bool,
    /// End of the last response that ended in order; while a response is in progress, its start
    /// (the end is the start plus its size).
    last_end: u32,
    last_end_known: bool,
}

impl Http1Conn {
    /// The direction the client sends in.
    pub fn client(&self) -> usize {
        usize::from(self.client)
    }

    /// Takes over a connection whose client sends in direction `client`, with what was seen
    /// before its first message.
    pub fn new(client: usize, d: &Detecting, cx: &mut Ctx<'_>) -> Self {
        let server = 1 - client;
        let mut c = Self {
            client: client as u8,
            pos: d.pos,
            acked: d.acked[client],
            // A connection seen from its first message: the client had received nothing when it
            // first sent, so its offset 0 is known even before its first acknowledgement.
            acked_known: d.acked_known[client] || !(d.dirty[0] || d.dirty[1]),
            server_acked: d.acked[server],
            server_ack_known: d.acked_known[server],
            ..Self::default()
        };
        for (p, dirty) in c.parsers.iter_mut().zip(d.dirty) {
            if dirty {
                p.resync();
            }
        }
        // Bytes before the first message that are not known whole (a stream picked up
        // mid-connection, or lost): messages may have been in them.
        c.req_loss = d.dirty[client] && !d.from_start[client];
        if d.dirty[server] {
            c.resp_loss = true;
            c.resp_gap_end = d.pos[server];
        }
        if d.dirty[client] && d.from_start[client] {
            // The client's first bytes were not HTTP (`THIS IS NOT HTTP`, a malformed head) and
            // the server answers them: a request of their own.
            cx.stats.parse_errors += 1;
            c.pending.push_back(Pending {
                minor: 1,
                state: ReqState::Failed,
                unparsable: true,
                resp_seen: c.acked,
                first_ns: d.first_ns[client],
                last_ns: d.last_ns[client],
                bytes: u64::from(d.pos[client]),
                ..Pending::default()
            });
            cx.stats.requests += 1;
        }
        c
    }

    /// One parser event of direction `dir` at `ts`; `cursor` is the offset in that direction of
    /// the byte the parser is at.
    fn event(&mut self, cx: &mut Ctx<'_>, dir: usize, ev: Event, cursor: u32, ts: u64) {
        let from_client = usize::from(self.client) == dir;
        match ev {
            Event::Start { ts } if from_client => self.request_start(cx, cursor, ts),
            Event::Start { ts } => {
                if self.response.interim_bytes == 0 {
                    self.drop_lost(cx, cursor);
                    self.settle(cx, cursor);
                }
                self.last_end = cursor;
                // The first byte of this response; for a final response after interim ones,
                // this is its own first byte, which is what TTFB measures.
                self.response.first_ns = ts;
            }
            Event::Head(head) => {
                // A length the kernel filter may have read from the head and skipped by.
                let announced = head.content_length.is_some_and(|n| n >= SKIP_MIN);
                let framing = if from_client {
                    self.request_head(head)
                } else {
                    self.response_head(head)
                };
                if announced && !from_client && framing == Some(Framing::None) {
                    // It announced a body it does not send (the answer to a HEAD): whatever the
                    // filter set from the length must go before the next response is cut.
                    self.clear_skip(cx, dir, cursor);
                }
                match framing {
                    Some(f) => match self.parsers[dir].set_framing(f) {
                        Some(ev) => self.event(cx, dir, ev, cursor, ts),
                        // A body follows, from `cursor`.
                        None => self.ask_skip(cx, dir, cursor),
                    },
                    None => {
                        // A message of the wrong kind for this direction.
                        cx.stats.parse_errors += 1;
                        self.parsers[dir].resync();
                        if from_client {
                            self.request_failed(cx, ts, cursor, ParseError::BadHead);
                        }
                    }
                }
            }
            Event::End { ts, bytes } if from_client => {
                self.request_end(cx, ts, bytes, ReqState::Ended);
            }
            Event::End { bytes, .. } if self.response.is(INTERIM) => {
                cx.stats.interim_responses += 1;
                self.response.interim_bytes =
                    self.response.interim_bytes.saturating_add(bytes as u32);
                self.response.set(INTERIM, false);
            }
            Event::End { ts, bytes } => {
                self.last_end = self.last_end.wrapping_add(bytes as u32);
                self.last_end_known = true;
                let answer = self.answer(ts, bytes, false);
                let tunnel = self.response.is(TUNNEL);
                if tunnel
                    && self.response.is(H2C)
                    && let Some(p) = self.pending.pop_front()
                {
                    // Not an exchange yet: the upgrade request is HTTP/2's stream 1.
                    // Handed to the protocol layer (not kept here: a connection's state stays
                    // small), which switches the connection once this segment is read.
                    *cx.upgrade = Some(Box::new(Upgrade {
                        line: p.line,
                        first_ns: p.first_ns,
                        last_ns: p.last_ns,
                        bytes: p.bytes,
                        switching_bytes: answer.bytes,
                        gap: p.gap || answer.gap,
                        rest: Vec::new(),
                    }));
                    self.response = Response::default();
                    self.mode = Mode::Ignored;
                    self.parsers.iter_mut().for_each(MessageParser::tunnel);
                    return;
                }
                self.response_end(cx, answer);
                self.response = Response::default();
                if tunnel {
                    // 101 or CONNECT 2xx: the connection is no longer HTTP/1.x.
                    cx.stats.tunnels += 1;
                    self.mode = Mode::Ignored;
                    self.parsers.iter_mut().for_each(MessageParser::tunnel);
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
                    self.request_failed(cx, ts, cursor, e);
                    return;
                }
                // Where this response really ended is unknown now.
                self.last_end_known = false;
                if e != ParseError::Truncated {
                    // A gap, or bytes that are not a response: whole responses may be lost.
                    self.resp_lost();
                }
                if self.response.status != 0 && !self.response.is(INTERIM) {
                    // The response's head was seen: it answered the front request, even if its
                    // body was cut. Keep the pairing aligned.
                    let last = self.response.first_ns.max(self.parsers[dir].last_ts());
                    let mut answer = self.answer(last, self.parsers[dir].failed_bytes(), true);
                    answer.gap |= e == ParseError::Gap;
                    self.response_end(cx, answer);
                }
                self.response = Response::default();
            }
        }
    }

    /// The final response being received, as it ends at `ts` with `bytes` (its own, without
    /// interim responses).
    fn answer(&self, ts: u64, bytes: u64, truncated: bool) -> Answer {
        let r = &self.response;
        Answer {
            status: r.status,
            minor: u8::from(!r.is(HTTP10)),
            first_ns: r.first_ns,
            last_ns: ts,
            bytes: bytes + u64::from(r.interim_bytes),
            truncated,
            gap: r.is(TOUCHED) || r.is(UNMATCHED),
        }
    }

    /// The request being received could not be completed: its bytes so far count, and after a
    /// parse error (not a gap or a close) so do the bytes skipped up to the next message start.
    fn request_failed(&mut self, cx: &mut Ctx<'_>, ts: u64, at: u32, e: ParseError) {
        let client = usize::from(self.client);
        let bytes = self.parsers[client].failed_bytes();
        let receiving = self.last_if(ReqState::Receiving).is_some();
        match e {
            ParseError::Gap => {
                self.req_loss = true;
                if let Some(p) = self.last_if(ReqState::Receiving) {
                    p.gap = true;
                }
                self.request_end(cx, ts, bytes, ReqState::Ended);
            }
            ParseError::Truncated => self.request_end(cx, ts, bytes, ReqState::Ended),
            _ if receiving => {
                if let Some(p) = self.last_if(ReqState::Receiving) {
                    p.unparsable = p.line.is_none();
                }
                self.request_end(cx, ts, bytes, ReqState::Failed);
            }
            _ => {
                // Not HTTP where a request should start: a request of its own.
                self.request_start(cx, at, ts);
                if let Some(p) = self.pending.back_mut() {
                    p.unparsable = true;
                }
                self.request_end(cx, ts, bytes, ReqState::Failed);
            }
        }
    }

    /// When live capture can skip bodies and direction `dir` has just entered one (at stream
    /// offset `at`) with enough of it to come, asks the kernel filter to skip its first stretch.
    fn ask_skip(&mut self, cx: &mut Ctx<'_>, dir: usize, at: u32) {
        let Some(out) = cx.bodies_ahead.as_deref_mut() else {
            return;
        };
        let Some(ahead) = self.parsers[dir].body_ahead() else {
            return;
        };
        if ahead < SKIP_MIN {
            return;
        }
        out.push(BodyAhead::of(
            &cx.info.addrs,
            dir,
            at,
            stretch(ahead) as u32,
        ));
    }

    /// Asks the filter to drop any stretch of direction `dir` (one it set from a head that
    /// announced a body that does not come).
    fn clear_skip(&mut self, cx: &mut Ctx<'_>, dir: usize, at: u32) {
        if let Some(out) = cx.bodies_ahead.as_deref_mut() {
            out.push(BodyAhead::of(&cx.info.addrs, dir, at, 0));
        }
    }

    /// After a call that read or skipped bytes of direction `dir`, with `before` body bytes
    /// ahead when it began: a body longer than one stretch asks for the next when the call
    /// crossed the end of the last (what is left went down through a multiple of
    /// [`SKIP_MAX`]).
    fn ask_next_skip(&mut self, cx: &mut Ctx<'_>, dir: usize, before: Option<u64>) {
        if cx.bodies_ahead.is_none() {
            return;
        }
        if let (Some(b), Some(a)) = (before, self.parsers[dir].body_ahead())
            && a < b
            && (b - 1) / SKIP_MAX > (a.max(1) - 1) / SKIP_MAX
        {
            let at = self.pos[dir];
            self.ask_skip(cx, dir, at);
        }
    }

    /// Response bytes were lost where the parser could not skip them: whole responses may be in
    /// them.
    fn resp_lost(&mut self) {
        let server = 1 - usize::from(self.client);
        self.resp_loss = true;
        self.resp_gap_end = self.pos[server];
    }
}

impl Parser for Http1Conn {
    fn on_ack(&mut self, dir: usize, offset: u64) {
        if usize::from(self.client) == dir {
            self.acked = offset as u32;
            self.acked_known = true;
        } else {
            self.server_acked = offset as u32;
            self.server_ack_known = true;
        }
    }

    fn on_data(&mut self, cx: &mut Ctx<'_>, dir: usize, ts: u64, data: &[u8]) {
        let ahead = self.parsers[dir].body_ahead();
        let base = self.pos[dir];
        self.pos[dir] = base.wrapping_add(data.len() as u32);
        let from_client = usize::from(self.client) == dir;
        let mut rest = data;
        let mut at_start = true;
        while !rest.is_empty() && self.mode == Mode::Http {
            let skipping = self.parsers[dir].resyncing();
            let (n, ev) = self.parsers[dir].feed(ts, rest, at_start, cx.spare);
            at_start = false;
            rest = &rest[n..];
            if skipping && from_client && n > 0 {
                // Bytes after a request that failed to parse are still that request's.
                if let Some(p) = self.last_if(ReqState::Failed) {
                    p.bytes += n as u64;
                    p.last_ns = p.last_ns.max(ts);
                }
            }
            if let Some(ev) = ev {
                let cursor = base.wrapping_add((data.len() - rest.len()) as u32);
                self.event(cx, dir, ev, cursor, ts);
            }
        }
        if let Some(u) = cx.upgrade.as_mut()
            && !from_client
        {
            u.rest.extend_from_slice(rest);
        }
        self.ask_next_skip(cx, dir, ahead);
    }

    fn on_skip(&mut self, cx: &mut Ctx<'_>, dir: usize, len: u64, ts: u64) -> u64 {
        if self.mode == Mode::Ignored {
            self.pos[dir] = self.pos[dir].wrapping_add(len as u32);
            return len;
        }
        let ahead = self.parsers[dir].body_ahead();
        let (taken, ev) = self.parsers[dir].skip(len, ts);
        self.pos[dir] = self.pos[dir].wrapping_add(taken as u32);
        if let Some(ev) = ev {
            let cursor = self.pos[dir];
            self.event(cx, dir, ev, cursor, ts);
        }
        self.ask_next_skip(cx, dir, ahead);
        taken
    }

    fn on_gap(&mut self, cx: &mut Ctx<'_>, dir: usize, len: u64, ts: u64) {
        self.pos[dir] = self.pos[dir].wrapping_add(len as u32);
        let from_client = usize::from(self.client) == dir;
        if from_client {
            // The request being received lost bytes (a body survives a gap, but not whole).
            if let Some(p) = self.last_if(ReqState::Receiving) {
                p.gap = true;
            }
        } else {
            self.resp_gaps = self.resp_gaps.wrapping_add(1);
            if self.parsers[dir].in_message() {
                self.response.set(TOUCHED, true);
            }
        }
        if self.mode == Mode::Ignored {
            return;
        }
        let was_resyncing = self.parsers[dir].resyncing();
        if let Some(ev) = self.parsers[dir].gap(len, ts) {
            let cursor = self.pos[dir];
            self.event(cx, dir, ev, cursor, ts);
        }
        if self.parsers[dir].resyncing() {
            // The bytes lost were not all inside a body: whole messages may be in them.
            if from_client {
                self.req_loss = true;
                if was_resyncing {
                    // A failed request's bytes run into the gap: it ends here, incomplete.
                    if let Some(p) = self.last_if(ReqState::Failed) {
                        p.gap = true;
                    }
                    self.end_failed(cx);
                }
            } else {
                self.resp_lost();
            }
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
                    let ts = self.parsers[dir].last_ts();
                    self.event(cx, dir, ev, cursor, ts);
                }
            }
        }
        // Whatever is still waiting never got a response (or holds the one it got early); a
        // request sent before response bytes that were lost may have had its response in them.
        while let Some(mut req) = self.pending.pop_front() {
            // Unanswered after loss: its response may be what was lost (it was waiting when
            // response bytes were, or a request before it may have been lost whole).
            if req.answer.is_none()
                && (req.after_loss
                    || req.resp_gaps != self.resp_gaps
                    || (self.resp_loss && !pairing::seq_le(self.resp_gap_end, req.resp_seen)))
            {
                req.gap = true;
            }
            self.emit(cx, Some(req), None);
        }
    }
}

#[cfg(test)]
pub(crate) fn pending_size() -> usize {
    std::mem::size_of::<Pending>()
}
#[cfg(test)]
pub(crate) fn response_size() -> usize {
    std::mem::size_of::<Response>()
}
