//! The protocol seam: reassembled streams in, [`Exchange`]s out.
//!
//! The flow layer hands each connection's two byte streams to [`Protocols`]. Until a message
//! starts, a connection is [`Conn::Detecting`]: the first segment that starts one decides its
//! protocol and which side is the client. Each protocol is a parser behind [`Parser`] that owns
//! its pairing rules (first in, first out for HTTP/1.x) and emits the same [`Exchange`], which
//! records its [`Protocol`]. HTTP/1.x is [`http1`]; HTTP/2 over cleartext with prior knowledge
//! (the connection preface) is [`h2`], one exchange per stream.

pub mod h2;
pub mod http1;

use std::net::SocketAddr;

use self::{
    h2::H2Conn,
    http1::{Http1Conn, parser::starts_message},
};
use crate::flow::{CloseReason, ConnInfo, Handler};

/// The client connection preface of HTTP/2 with prior knowledge (RFC 9113 3.4), first line: a
/// connection that starts with it is [`h2`]'s.
const H2_PREFACE: &[u8] = h2::PREFACE.split_at(16).0;

/// Which protocol carried an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Http10,
    Http11,
    /// HTTP/2 over cleartext TCP (h2c).
    Http2,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
            Self::Http2 => "HTTP/2",
        }
    }

    /// The version alone, as OpenTelemetry's `network.protocol.version` writes it.
    pub fn version(self) -> &'static str {
        match self {
            Self::Http10 => "1.0",
            Self::Http11 => "1.1",
            Self::Http2 => "2",
        }
    }
}

/// A request's method, target and Host (HTTP/1.x) or `:authority` value, raw, in one allocation:
/// a connection holds one for each request waiting for its response, and under a flood of
/// unanswered requests three small allocations each were a fifth of the memory. The buffer may be
/// longer than what it holds: buffers are reused ([`SpareLines`]).
pub struct RequestLine {
    buf: Box<[u8]>,
    /// 16-bit offsets keep a waiting request at 64 bytes (a table of 100 000 connections, each
    /// with a request waiting, is the flood the memory bound is measured on).
    method_end: u16,
    target_end: u16,
    /// End of the Host value: what `buf` holds ends here.
    end: u16,
    has_host: bool,
}

impl RequestLine {
    /// Longest method, target and Host together: a head of at most 64 KiB holds them with the
    /// version and line ends, so they fit 16-bit offsets; longer ones (an HTTP/2 header block)
    /// are cut, the target last (the Host names a group; a target cut short loses little).
    const MAX: usize = u16::MAX as usize;

    /// A line in a fresh buffer.
    #[cfg(test)]
    pub fn new(method: &[u8], target: &[u8], host: Option<&[u8]>) -> Self {
        Self::new_in(&mut SpareLines::default(), method, target, host)
    }

    /// A line in a buffer from `spare` when one there is long enough. Inlined: returned through
    /// memory, its 16-bit fields were read back before their stores had landed.
    #[inline]
    pub fn new_in(
        spare: &mut SpareLines,
        method: &[u8],
        target: &[u8],
        host: Option<&[u8]>,
    ) -> Self {
        let method = &method[..method.len().min(Self::MAX)];
        let host_bytes = host.unwrap_or_default();
        let host_bytes = &host_bytes[..host_bytes.len().min(Self::MAX - method.len())];
        let target = &target[..target
            .len()
            .min(Self::MAX - method.len() - host_bytes.len())];
        let target_end = method.len() + target.len();
        let end = target_end + host_bytes.len();
        let mut buf = spare.take(end);
        buf[..method.len()].copy_from_slice(method);
        buf[method.len()..target_end].copy_from_slice(target);
        buf[target_end..end].copy_from_slice(host_bytes);
        Self {
            buf,
            method_end: method.len() as u16,
            target_end: target_end as u16,
            end: end as u16,
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
        self.has_host
            .then(|| &self.buf[self.target_end as usize..self.end as usize])
    }
}

impl Clone for RequestLine {
    fn clone(&self) -> Self {
        // What it holds, not the room of a reused buffer.
        Self {
            buf: self.buf[..usize::from(self.end)].into(),
            ..*self
        }
    }
}

impl PartialEq for RequestLine {
    fn eq(&self, other: &Self) -> bool {
        // What the lines hold, not the room their buffers have.
        self.method() == other.method()
            && self.target() == other.target()
            && self.host() == other.host()
    }
}

impl Eq for RequestLine {}

/// Request-line buffers given back once their exchanges were delivered, for the next requests to
/// reuse. With worker threads an exchange is made on a worker and dropped on the session's thread,
/// where glibc frees each buffer under the worker's arena lock while the worker allocates the next
/// under the same lock: that malloc and free were a tenth of a run of small requests. Bounded:
/// buffers past [`SpareLines::MAX`], and buffers longer than [`SpareLines::LONGEST`] (a rare long
/// line must not leave a big buffer for every short one after it), are freed.
#[derive(Default)]
pub struct SpareLines(Vec<Box<[u8]>>);

impl std::fmt::Debug for SpareLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Spare room: only how much.
        write!(f, "SpareLines({} buffers)", self.0.len())
    }
}

impl SpareLines {
    /// More than a worker has in flight between two batches of a small-request run.
    pub(crate) const MAX: usize = 4096;
    /// Longest buffer kept: most request lines are far shorter.
    pub(crate) const LONGEST: usize = 256;

    /// Keeps `line`'s buffer for a later line.
    pub fn give(&mut self, line: RequestLine) {
        if self.0.len() < Self::MAX && line.buf.len() <= Self::LONGEST {
            self.0.push(line.buf);
        }
    }

    /// Moves `other`'s buffers here, up to the bound (the rest are freed).
    pub fn take_all(&mut self, other: &mut SpareLines) {
        let room = Self::MAX.saturating_sub(self.0.len());
        self.0.extend(other.0.drain(..).take(room));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A buffer of at least `len` bytes: the latest one given back when it is long enough
    /// (lines of one service are much alike), else a fresh one.
    fn take(&mut self, len: usize) -> Box<[u8]> {
        match self.0.pop() {
            Some(b) if b.len() >= len => b,
            _ => {
                // glibc's blocks are 8 bytes of header and a multiple of 16 (32 at least): asking
                // for all of the block costs no memory and lets a longer line reuse it.
                let room = ((len + 8).next_multiple_of(16) - 8).max(24);
                vec![0; room].into_boxed_slice()
            }
        }
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

/// One request and its response, or one of them alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub protocol: Protocol,
    /// `false` for a response whose request was never seen (grouped as `_unknown`).
    pub request_seen: bool,
    /// The request's bytes were not HTTP (its head could not be parsed): grouped as
    /// `_unparsable`.
    pub unparsable: bool,
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
    /// Capture loss touched it: bytes of its request or response were never captured, or it
    /// stands unpaired because loss left no proof of which request a response answers. Its
    /// numbers are incomplete; every exchange without it is exact.
    pub gap: bool,
    /// The request path's route (`/users/{id}`), decided by the session's router (`stats::route`)
    /// before any output sees the exchange; `None` until then, and for requests never seen or not
    /// parsed.
    pub route: Option<std::sync::Arc<str>>,
    /// Whether it was a gRPC call, and its status.
    pub grpc: Grpc,
    /// Who stands behind the server and the client (process, container), found by the session's
    /// name resolver (`names`); `None` when names are not looked up.
    pub server_owner: Option<std::sync::Arc<crate::owner::Owner>>,
    pub client_owner: Option<std::sync::Arc<crate::owner::Owner>>,
}

/// A gRPC call's outcome (content-type `application/grpc...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Grpc {
    /// Not a gRPC call.
    #[default]
    No,
    /// A gRPC call that ended with no `grpc-status` on the wire (reset, cut short).
    NoStatus,
    /// The `grpc-status` of its trailers (or of a trailers-only response).
    Status(u16),
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
    /// Counters of the protocol layer.
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
        /// HTTP/2 bytes of no exchange: the preface, SETTINGS, PING, WINDOW_UPDATE, GOAWAY,
        /// PRIORITY, RST_STREAM, PUSH_PROMISE, frames of streams not followed.
        http2_overhead_bytes: "http2_overhead_bytes" Counter,
        /// HTTP/2 directions given up: a gap across frame boundaries or a malformed frame.
        http2_lost: "http2_lost" Counter,
        /// HTTP/2 streams not followed because a connection had too many open.
        http2_stream_overflows: "http2_stream_overflows" Counter,
        /// HTTP/2 connections picked up in their middle (no preface or upgrade seen).
        http2_joined: "http2_joined" Counter,
        /// HPACK fields that referred to a table entry never seen (a connection picked up in its
        /// middle, or a lost header block): their names or values are unknown.
        http2_unknown_fields: "http2_unknown_fields" Counter,
        tunnels: "tunnels" Counter,
        /// Requests dropped because a connection had too many waiting for a response.
        pending_overflows: "pending_overflows" Counter,
        /// Requests whose response was lost in a gap (found from the client's acknowledgements).
        lost_responses: "lost_responses" Counter,
        /// Requests emitted unanswered because capture loss left no proof of which response was
        /// theirs.
        unpaired: "unpaired" Counter,
    }
}

/// What a parser reports to: the layer's counters and its finished exchanges.
pub struct Ctx<'a> {
    pub stats: &'a mut HttpStats,
    pub exchanges: &'a mut Vec<Exchange>,
    /// Buffers for the request lines of the exchanges parsers make.
    pub spare: &'a mut SpareLines,
    pub info: &'a ConnInfo,
    /// Set by the HTTP/1.x parser when a 101 switched its connection to HTTP/2 (h2c): the layer
    /// hands the connection over once the segment is read.
    pub upgrade: &'a mut Option<Box<http1::Upgrade>>,
    /// Where a parser says which body bytes it will not need to see, when someone (the live
    /// source) can act on it; `None` otherwise.
    pub bodies_ahead: Option<&'a mut Vec<BodyAhead>>,
}

/// Body bytes a parser knows are coming and can count without seeing: `len` bytes of the stream
/// `src` sends to `dst`, from stream offset `offset` (mod 2^32, counted like the flow layer's
/// acknowledgement offsets). The pipeline turns it into sequence numbers for the kernel filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyAhead {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub offset: u32,
    pub len: u32,
}

impl BodyAhead {
    /// `len` bytes from `offset` of direction `dir` of the connection between `addrs`; a length
    /// of 0 asks the filter to drop the stretch it holds from there.
    pub fn of(addrs: &[SocketAddr; 2], dir: usize, offset: u32, len: u32) -> Self {
        Self {
            src: addrs[dir],
            dst: addrs[1 - dir],
            offset,
            len,
        }
    }
}

/// One protocol's state for one connection, fed its reassembled streams in order.
pub trait Parser {
    /// In-order bytes of direction `dir`, one captured segment's worth (or the part of it not
    /// seen before), captured at `ts`.
    fn on_data(&mut self, cx: &mut Ctx<'_>, dir: usize, ts: u64, data: &[u8]);
    /// `len` bytes of direction `dir` were sent but not captured (see [`Handler::on_skip`]):
    /// returns how many of them, from the first, it counts as body; the rest become a gap.
    fn on_skip(&mut self, _cx: &mut Ctx<'_>, _dir: usize, _len: u64, _ts: u64) -> u64 {
        0
    }
    /// `len` bytes of direction `dir` were never captured.
    fn on_gap(&mut self, cx: &mut Ctx<'_>, dir: usize, len: u64, ts: u64);
    /// The connection is gone: emit what is still waiting.
    fn on_close(&mut self, cx: &mut Ctx<'_>, reason: CloseReason);
    /// The sender of `dir` acknowledges the other direction up to `offset` (see
    /// [`Handler::on_ack`]).
    fn on_ack(&mut self, dir: usize, offset: u64);
}

/// What a connection is, as far as the protocols know.
#[derive(Debug)]
pub enum Conn {
    /// No message start seen yet.
    Detecting(Detecting),
    Http1(Http1Conn),
    /// HTTP/2 over cleartext: with prior knowledge, or after an h2c upgrade.
    Http2(Box<H2Conn>),
    /// Not a protocol http-top parses.
    Ignored,
}

impl Default for Conn {
    fn default() -> Self {
        Self::Detecting(Detecting::default())
    }
}

/// A connection before its protocol is known: what the parser that takes it over needs to know
/// of the bytes already gone by (picked up mid-stream, or never a message start).
#[derive(Debug, Default)]
pub struct Detecting {
    /// Bytes delivered per direction, gaps included (mod 2^32).
    pub pos: [u32; 2],
    /// What the sender of each direction last acknowledged of the other (offset, mod 2^32), and
    /// whether it has.
    pub acked: [u32; 2],
    pub acked_known: [bool; 2],
    /// Directions that carried bytes (or lost some) that started no message: the parser must
    /// wait there for a message start.
    pub dirty: [bool; 2],
    /// Each direction's stream was seen from its SYN (as of its first bytes).
    pub from_start: [bool; 2],
    /// Capture times of the first and last of those bytes.
    pub first_ns: [u64; 2],
    pub last_ns: [u64; 2],
}

/// The protocol layer: every connection's parser, and what they emit.
#[derive(Debug, Default)]
pub struct Protocols {
    pub stats: HttpStats,
    /// Finished exchanges, in completion order; drained by the caller.
    pub exchanges: Vec<Exchange>,
    /// Request-line buffers given back by whoever took the exchanges ([`SpareLines`]).
    pub spare: SpareLines,
    /// An h2c upgrade seen in the segment being read.
    upgrade: Option<Box<http1::Upgrade>>,
    /// Bodies the parsers need not see, when [`Self::ask_skips`] turned it on; drained by the
    /// pipeline.
    pub bodies_ahead: Option<Vec<BodyAhead>>,
}

impl Protocols {
    fn cx<'a>(&'a mut self, info: &'a ConnInfo) -> Ctx<'a> {
        Ctx {
            stats: &mut self.stats,
            exchanges: &mut self.exchanges,
            spare: &mut self.spare,
            info,
            upgrade: &mut self.upgrade,
            bodies_ahead: self.bodies_ahead.as_mut(),
        }
    }

    /// From now on, parsers say which bodies they need not see ([`Self::bodies_ahead`]).
    pub fn ask_skips(&mut self) {
        self.bodies_ahead.get_or_insert_default();
    }

    /// Decides a connection's protocol from a segment of direction `dir` that comes first in its
    /// direction's stream and starts a message; `None` when it starts none.
    fn detect(&mut self, d: &Detecting, info: &ConnInfo, dir: usize, data: &[u8]) -> Option<Conn> {
        // The preface, or a segment with its beginning only (long enough not to be a POST).
        let h2 = data.starts_with(H2_PREFACE)
            || (data.len() >= 3 && H2_PREFACE.starts_with(data.get(..16).unwrap_or(data)));
        let client = if h2 {
            self.stats.http2_connections += 1;
            return Some(Conn::Http2(Box::new(H2Conn::new(dir))));
        } else if !info.from_start[dir] && h2::frames_fill(data) {
            // HTTP/2 picked up in its middle, from a segment whose header block says who sent it
            // (ports do not: gRPC's 50051 is in Linux's ephemeral range); until then, wait.
            let from_client = h2::sent_by_client(data)?;
            self.stats.http2_connections += 1;
            self.stats.http2_joined += 1;
            let client = if from_client { dir } else { 1 - dir };
            return Some(Conn::Http2(Box::new(H2Conn::joined(client))));
        } else if data.starts_with(b"HTTP/") {
            1 - dir
        } else if starts_message(data) {
            dir
        } else {
            return None;
        };
        Some(Conn::Http1(Http1Conn::new(client, d, &mut self.cx(info))))
    }
}

impl Handler for Protocols {
    type Conn = Conn;

    fn on_ack(&mut self, c: &mut Conn, dir: usize, offset: u64) {
        match c {
            Conn::Detecting(d) => {
                d.acked[dir] = offset as u32;
                d.acked_known[dir] = true;
            }
            Conn::Http1(h) => h.on_ack(dir, offset),
            Conn::Http2(h) => h.on_ack(dir, offset),
            Conn::Ignored => {}
        }
    }

    fn on_data(&mut self, c: &mut Conn, info: &ConnInfo, dir: usize, ts: u64, data: &[u8]) {
        let d = match c {
            // The common case first, with one match.
            Conn::Http1(h) => {
                h.on_data(&mut self.cx(info), dir, ts, data);
                // An h2c upgrade: HTTP/2 from here, the segment's rest its first frames.
                if let Some(u) = self.upgrade.take() {
                    self.stats.http2_connections += 1;
                    let client = h.client();
                    let mut h2 = Box::new(H2Conn::upgraded(client, &u));
                    if !u.rest.is_empty() {
                        h2.on_data(&mut self.cx(info), 1 - client, ts, &u.rest);
                    }
                    *c = Conn::Http2(h2);
                }
                return;
            }
            Conn::Http2(h) => return h.on_data(&mut self.cx(info), dir, ts, data),
            Conn::Ignored => return,
            Conn::Detecting(d) => d,
        };
        match self.detect(d, info, dir, data) {
            Some(next) => *c = next,
            None => {
                // Not a message start: the middle of a connection picked up late, or bytes that
                // are not HTTP. Wait for a message start.
                if d.pos[dir] == 0 && !d.dirty[dir] {
                    d.first_ns[dir] = ts;
                    d.from_start[dir] = info.from_start[dir];
                }
                d.pos[dir] = d.pos[dir].wrapping_add(data.len() as u32);
                d.last_ns[dir] = ts;
                d.dirty[dir] = true;
                return;
            }
        }
        match c {
            Conn::Http1(h) => h.on_data(&mut self.cx(info), dir, ts, data),
            Conn::Http2(h) => h.on_data(&mut self.cx(info), dir, ts, data),
            _ => {}
        }
    }

    fn on_skip(&mut self, c: &mut Conn, info: &ConnInfo, dir: usize, len: u64, ts: u64) -> u64 {
        match c {
            Conn::Http1(h) => h.on_skip(&mut self.cx(info), dir, len, ts),
            Conn::Http2(h) => h.on_skip(&mut self.cx(info), dir, len, ts),
            // Bytes of a connection that is not HTTP matter to nobody.
            Conn::Ignored => len,
            Conn::Detecting(_) => 0,
        }
    }

    fn on_gap(&mut self, c: &mut Conn, info: &ConnInfo, dir: usize, len: u64, ts: u64) {
        match c {
            Conn::Detecting(d) => {
                d.pos[dir] = d.pos[dir].wrapping_add(len as u32);
                d.dirty[dir] = true;
                // What was sent before the message start is no longer known whole.
                d.from_start[dir] = false;
            }
            Conn::Http1(h) => h.on_gap(&mut self.cx(info), dir, len, ts),
            Conn::Http2(h) => h.on_gap(&mut self.cx(info), dir, len, ts),
            Conn::Ignored => {}
        }
    }

    fn on_close(&mut self, c: &mut Conn, info: &ConnInfo, reason: CloseReason, _ts: u64) {
        match c {
            Conn::Http1(h) => h.on_close(&mut self.cx(info), reason),
            Conn::Http2(h) => h.on_close(&mut self.cx(info), reason),
            _ => {}
        }
    }
}

#[cfg(test)]
mod conv;
#[cfg(test)]
mod tests;
