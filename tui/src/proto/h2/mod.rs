//! HTTP/2 over cleartext (RFC 9113), read passively from both directions of a connection.
//!
//! Each direction is a sequence of frames: a 9-byte header (length, type, flags, stream), then the
//! payload. DATA payloads are counted and skipped, never buffered; other frames are buffered up to
//! [`MAX_BUFFERED`]. Header blocks (HEADERS or PUSH_PROMISE and their CONTINUATIONs) are decoded by
//! the direction's HPACK decoder ([`hpack`]), leniently. Every stream is an exchange: request
//! bytes are the client's HEADERS, CONTINUATION and DATA frames of the stream (frame headers and
//! padding included), response bytes the server's; frames of stream 0 and the control frames of a
//! stream are connection overhead. A stream is emitted when the server ends it (END_STREAM), when
//! either side resets it (then without a final response), or when the connection closes.
//!
//! Loss: a gap inside a DATA payload only shortens it (the frame boundaries stay known); any other
//! gap loses the direction's place among frames, which HTTP/2 gives no way to find again, so the
//! direction is given up (counted) and its open streams end flagged at the close.

pub mod hpack;

use std::collections::HashMap;

use http_top_common::{H2_FRAME_HEAD, h2_frame_len};

use super::{Ctx, Exchange, Grpc, Parser, Protocol, RequestLine};
use crate::flow::CloseReason;

/// The client connection preface (RFC 9113 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const CONTINUATION: u8 = 9;

const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// SETTINGS_MAX_FRAME_SIZE before SETTINGS say otherwise, and its largest legal value.
const DEFAULT_MAX_FRAME: u32 = 16_384;
const LARGEST_FRAME: u32 = (1 << 24) - 1;
/// Most bytes of a non-DATA frame held at once: larger ones are malformed here.
const MAX_BUFFERED: u32 = 256 * 1024;
/// Longest header block assembled from HEADERS and CONTINUATIONs.
const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// Most streams open at once on one connection; more are counted, not followed.
pub const MAX_STREAMS: usize = 1024;

/// A frame being read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    len: u32,
    kind: u8,
    flags: u8,
    stream: u32,
    /// Capture time of its first byte.
    first_ns: u64,
}

/// A header block being assembled.
#[derive(Debug, Clone, Copy)]
struct Block {
    stream: u32,
    end_stream: bool,
    promised: Option<u32>,
    first_ns: u64,
}

/// One direction's reader.
#[derive(Debug)]
struct Reader {
    /// Bytes of the client's preface still to pass.
    preface: usize,
    head: [u8; 9],
    have: usize,
    /// Capture time of the frame header's first byte.
    head_ns: u64,
    frame: Option<Frame>,
    /// Payload bytes of `frame` still to come.
    left: u32,
    payload: Vec<u8>,
    /// The largest frame this direction may carry: the receiver's SETTINGS_MAX_FRAME_SIZE.
    max_frame: u32,
    /// Lost its place among frames: nothing more is read.
    lost: bool,
    hpack: hpack::Decoder,
    block: Option<Block>,
    block_buf: Vec<u8>,
}

impl Reader {
    fn new(preface: usize) -> Self {
        Self {
            preface,
            head: [0; 9],
            have: 0,
            head_ns: 0,
            frame: None,
            left: 0,
            payload: Vec::new(),
            max_frame: DEFAULT_MAX_FRAME,
            lost: false,
            hpack: hpack::Decoder::default(),
            block: None,
            block_buf: Vec::new(),
        }
    }
}

/// One stream's exchange so far.
#[derive(Debug, Default)]
struct Stream {
    request_seen: bool,
    method: Option<Vec<u8>>,
    path: Option<Vec<u8>>,
    authority: Option<Vec<u8>>,
    grpc: bool,
    grpc_status: Option<u16>,
    /// Its request was counted already (the HTTP/1.1 request of an h2c upgrade).
    counted: bool,
    /// Final status, and whether the response ended (END_STREAM from the server).
    status: Option<u16>,
    req_first_ns: u64,
    req_last_ns: u64,
    resp_first_ns: u64,
    resp_last_ns: u64,
    req_bytes: u64,
    resp_bytes: u64,
    gap: bool,
}

/// An HTTP/2 connection.
#[derive(Debug)]
pub struct H2Conn {
    client: usize,
    readers: [Reader; 2],
    streams: HashMap<u32, Stream, foldhash::fast::RandomState>,
    /// Highest stream id opened: a frame for a lower one not open belongs to a closed stream.
    highest: u32,
}

impl H2Conn {
    /// A connection whose client (direction `client`) starts with the preface.
    pub fn new(client: usize) -> Self {
        let mut readers = [Reader::new(0), Reader::new(0)];
        readers[client].preface = PREFACE.len();
        Self {
            client,
            readers,
            streams: HashMap::default(),
            highest: 0,
        }
    }

    /// A connection picked up in its middle (no preface seen), from a segment that
    /// [`frames_fill`]: the HPACK tables start empty, so fields that refer to what came before are
    /// unknown (counted), and streams whose request was not seen are `_unknown`.
    pub fn joined(client: usize) -> Self {
        let mut c = Self::new(client);
        c.readers[client].preface = 0;
        c
    }

    /// The connection an h2c upgrade switched to: the upgrade request is stream 1 (its response
    /// comes in HTTP/2, the 101 counting toward it), and the client starts with the preface.
    pub fn upgraded(client: usize, u: &crate::proto::http1::Upgrade) -> Self {
        let mut c = Self::new(client);
        let line = u.line.as_ref();
        c.streams.insert(
            1,
            Stream {
                request_seen: true,
                counted: true,
                method: line.map(|l| l.method().to_vec()),
                path: line.map(|l| l.target().to_vec()),
                authority: line.and_then(|l| l.host()).map(<[u8]>::to_vec),
                req_first_ns: u.first_ns,
                req_last_ns: u.last_ns,
                req_bytes: u.bytes,
                resp_bytes: u.switching_bytes,
                gap: u.gap,
                ..Stream::default()
            },
        );
        c.highest = 1;
        c
    }

    fn lose(&mut self, cx: &mut Ctx<'_>, dir: usize) {
        if !self.readers[dir].lost {
            self.readers[dir].lost = true;
            cx.stats.http2_lost += 1;
            for s in self.streams.values_mut() {
                s.gap = true;
            }
        }
    }

    /// The stream `id`, opened if new (and room is left); `None` for a closed or refused one.
    fn stream(&mut self, cx: &mut Ctx<'_>, id: u32) -> Option<&mut Stream> {
        if !self.streams.contains_key(&id) {
            if id <= self.highest && id % 2 == 1 {
                return None;
            }
            if self.streams.len() >= MAX_STREAMS {
                cx.stats.http2_stream_overflows += 1;
                return None;
            }
            if id % 2 == 1 {
                self.highest = id;
            }
            self.streams.insert(id, Stream::default());
        }
        self.streams.get_mut(&id)
    }

    /// A whole frame (DATA frames: their payload was counted, not kept) ended at `ts`.
    fn frame(&mut self, cx: &mut Ctx<'_>, dir: usize, f: Frame, ts: u64) {
        let from_client = dir == self.client;
        let size = 9 + u64::from(f.len);
        let payload = std::mem::take(&mut self.readers[dir].payload);
        let attributed = match f.kind {
            DATA if f.stream != 0 => {
                self.count(cx, f.stream, from_client, size, f.first_ns, ts);
                if f.flags & END_STREAM != 0 && !from_client {
                    self.finish(cx, f.stream, true);
                }
                true
            }
            HEADERS | PUSH_PROMISE if f.stream != 0 => {
                let promised = f.kind == PUSH_PROMISE;
                match fragment(&payload, f.flags, promised) {
                    Some((frag, promise)) => {
                        if self.readers[dir].block.is_some() {
                            // A new block while one is open is a connection error.
                            cx.stats.parse_errors += 1;
                            self.lose(cx, dir);
                            return;
                        }
                        self.readers[dir].block = Some(Block {
                            stream: f.stream,
                            end_stream: !promised && f.flags & END_STREAM != 0,
                            promised: promise,
                            first_ns: f.first_ns,
                        });
                        self.readers[dir].block_buf.clear();
                        self.readers[dir].block_buf.extend_from_slice(frag);
                        let counted = !promised
                            && self.count(cx, f.stream, from_client, size, f.first_ns, ts);
                        if f.flags & END_HEADERS != 0 {
                            self.block(cx, dir, ts);
                        }
                        counted
                    }
                    None => {
                        cx.stats.parse_errors += 1;
                        self.lose(cx, dir);
                        return;
                    }
                }
            }
            CONTINUATION => {
                let ok = self.readers[dir]
                    .block
                    .is_some_and(|b| b.stream == f.stream)
                    && self.readers[dir].block_buf.len() + payload.len() <= MAX_HEADER_BLOCK;
                if !ok {
                    cx.stats.parse_errors += 1;
                    self.lose(cx, dir);
                    return;
                }
                self.readers[dir].block_buf.extend_from_slice(&payload);
                let promised = self.readers[dir]
                    .block
                    .is_some_and(|b| b.promised.is_some());
                let counted =
                    !promised && self.count(cx, f.stream, from_client, size, f.first_ns, ts);
                if f.flags & END_HEADERS != 0 {
                    self.block(cx, dir, ts);
                }
                counted
            }
            RST_STREAM if f.stream != 0 && f.len == 4 => {
                if self.streams.contains_key(&f.stream) {
                    self.finish(cx, f.stream, false);
                }
                false
            }
            SETTINGS if f.stream == 0 => {
                if f.flags & ACK == 0 {
                    if !f.len.is_multiple_of(6) {
                        cx.stats.parse_errors += 1;
                        self.lose(cx, dir);
                        return;
                    }
                    self.settings(dir, &payload);
                }
                false
            }
            DATA | HEADERS | PUSH_PROMISE | RST_STREAM | SETTINGS => {
                // On the wrong stream, or a reset of the wrong size: a connection error.
                cx.stats.parse_errors += 1;
                self.lose(cx, dir);
                return;
            }
            // PRIORITY, PING, GOAWAY, WINDOW_UPDATE, and types this version does not know (which
            // RFC 9113 5.5 says to ignore).
            _ => false,
        };
        if !attributed {
            cx.stats.http2_overhead_bytes += size;
        }
        let mut payload = payload;
        payload.clear();
        self.readers[dir].payload = payload;
    }

    /// Counts a frame of `size` bytes toward its stream's request or response; `false` when the
    /// stream is not followed (closed, refused).
    fn count(
        &mut self,
        cx: &mut Ctx<'_>,
        id: u32,
        from_client: bool,
        size: u64,
        first_ns: u64,
        last_ns: u64,
    ) -> bool {
        let Some(s) = self.stream(cx, id) else {
            return false;
        };
        if from_client {
            if s.req_bytes == 0 {
                s.req_first_ns = first_ns;
            }
            s.req_bytes += size;
            s.req_last_ns = last_ns;
        } else {
            s.resp_bytes += size;
            s.resp_last_ns = last_ns;
        }
        true
    }

    /// A header block of direction `dir` is complete.
    fn block(&mut self, cx: &mut Ctx<'_>, dir: usize, ts: u64) {
        let Some(b) = self.readers[dir].block.take() else {
            return;
        };
        let from_client = dir == self.client;
        let buf = std::mem::take(&mut self.readers[dir].block_buf);
        let mut h = Fields::default();
        let unknown_before = self.readers[dir].hpack.unknown;
        let decoded = self.readers[dir]
            .hpack
            .decode(&buf, Fields::reads, |(n, v)| h.add(n, v));
        self.readers[dir].block_buf = buf;
        cx.stats.http2_unknown_fields += self.readers[dir].hpack.unknown - unknown_before;
        if decoded.is_err() {
            cx.stats.parse_errors += 1;
        }
        if let Some(p) = b.promised {
            // A pushed stream: its request is the promise.
            if let Some(s) = self.stream(cx, p) {
                h.request(s);
                s.req_first_ns = b.first_ns;
                s.req_last_ns = ts;
            }
            return;
        }
        let Some(s) = self.stream(cx, b.stream) else {
            return;
        };
        if from_client {
            if !s.request_seen {
                h.request(s);
            }
        } else {
            match h.status {
                // Interim responses count toward the response's bytes, nothing else.
                Some(100..=199) => {}
                Some(code) => {
                    s.status = Some(code);
                    s.resp_first_ns = b.first_ns;
                    s.grpc |= h.grpc;
                }
                None => {}
            }
            if h.grpc_status.is_some() {
                s.grpc_status = h.grpc_status;
            }
            if b.end_stream {
                self.finish(cx, b.stream, true);
            }
        }
    }

    /// SETTINGS sent in direction `dir`: limits on what the other direction carries.
    fn settings(&mut self, dir: usize, payload: &[u8]) {
        for p in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([p[0], p[1]]);
            let v = u32::from_be_bytes([p[2], p[3], p[4], p[5]]);
            let other = &mut self.readers[1 - dir];
            match id {
                1 => other.hpack.set_allowed(v as usize),
                5 => other.max_frame = v.clamp(DEFAULT_MAX_FRAME, LARGEST_FRAME),
                _ => {}
            }
        }
    }

    /// Emits stream `id`: `complete` when the server ended it, else it was reset or cut short.
    fn finish(&mut self, cx: &mut Ctx<'_>, id: u32, complete: bool) {
        let Some(s) = self.streams.remove(&id) else {
            return;
        };
        let status = s.status.filter(|_| complete);
        let request = match (&s.method, &s.path) {
            (Some(m), Some(p)) if s.request_seen => {
                Some(RequestLine::new_in(cx.spare, m, p, s.authority.as_deref()))
            }
            _ => None,
        };
        cx.stats.requests += u64::from(s.request_seen && !s.counted);
        cx.stats.responses += u64::from(status.is_some());
        let info = cx.info;
        cx.exchanges.push(Exchange {
            client: info.addrs[self.client],
            server: info.addrs[1 - self.client],
            protocol: Protocol::Http2,
            request_seen: s.request_seen,
            unparsable: false,
            request,
            status,
            req_first_ns: s.req_first_ns,
            req_last_ns: s.req_last_ns,
            resp_first_ns: if status.is_some() { s.resp_first_ns } else { 0 },
            resp_last_ns: if status.is_some() { s.resp_last_ns } else { 0 },
            req_bytes: s.req_bytes,
            resp_bytes: s.resp_bytes,
            truncated: !complete,
            gap: s.gap,
            route: None,
            server_owner: None,
            client_owner: None,
            grpc: match (s.grpc, s.grpc_status) {
                (false, _) => Grpc::No,
                (true, Some(code)) => Grpc::Status(code),
                (true, None) => Grpc::NoStatus,
            },
        });
    }
}

/// The fields of one header block that matter.
#[derive(Default)]
struct Fields {
    method: Option<Vec<u8>>,
    path: Option<Vec<u8>>,
    authority: Option<Vec<u8>>,
    host: Option<Vec<u8>>,
    status: Option<u16>,
    grpc: bool,
    grpc_status: Option<u16>,
}

impl Fields {
    /// The names whose values [`Self::add`] reads.
    fn reads(name: &[u8]) -> bool {
        matches!(
            name,
            b":method"
                | b":path"
                | b":authority"
                | b"host"
                | b":status"
                | b"content-type"
                | b"grpc-status"
        )
    }

    fn add(&mut self, name: Option<&[u8]>, value: Option<&[u8]>) {
        let (Some(n), Some(v)) = (name, value) else {
            return;
        };
        match n {
            b":method" => self.method = Some(v.to_vec()),
            b":path" => self.path = Some(v.to_vec()),
            b":authority" => self.authority = Some(v.to_vec()),
            b"host" => self.host = Some(v.to_vec()),
            b":status" => {
                self.status = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
            }
            b"content-type" => self.grpc = v.starts_with(b"application/grpc"),
            b"grpc-status" => {
                self.grpc_status = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
            }
            _ => {}
        }
    }

    /// A request's fields into its stream.
    fn request(&mut self, s: &mut Stream) {
        s.request_seen = true;
        s.method = self.method.take();
        s.path = self.path.take();
        s.authority = self.authority.take().or_else(|| self.host.take());
        s.grpc = self.grpc;
    }
}

/// Whether `data` is a whole number of plausible HTTP/2 frames ([`h2_frame_len`], the rule the
/// kernel filter shares): how a segment of a connection picked up in its middle shows it is
/// HTTP/2 (and starts at a frame). The frames must end exactly where the segment does; random
/// bytes almost never do, over a whole segment.
pub fn frames_fill(data: &[u8]) -> bool {
    let mut at = 0;
    let mut frames = 0;
    while let Some(h) = data.get(at..at + H2_FRAME_HEAD) {
        let Some(len) = h.try_into().ok().and_then(h2_frame_len) else {
            return false;
        };
        at += H2_FRAME_HEAD + len as usize;
        frames += 1;
    }
    frames > 0 && at == data.len()
}

/// Who sent `data` (a segment that [`frames_fill`]), from its first HEADERS frame: a header block
/// starts with pseudo-header fields (RFC 9113 8.3), a request's with `:method`, `:scheme`, `:path`
/// or `:authority`, a response's with `:status`, and these are static-table entries 1 to 7 and 8 to
/// 14, whatever the dynamic table holds. `Some(true)` for the client, `None` when the segment
/// has no HEADERS or its first field names a dynamic entry.
pub fn sent_by_client(data: &[u8]) -> Option<bool> {
    let mut at = 0;
    while let Some(h) = data.get(at..at + H2_FRAME_HEAD) {
        let len = h2_frame_len(h.try_into().ok()?)? as usize;
        let payload = data.get(at + H2_FRAME_HEAD..at + H2_FRAME_HEAD + len)?;
        if h[3] == HEADERS
            && let Some((block, _)) = fragment(payload, h[4], false)
        {
            // Dynamic table size updates (001xxxxx) may come first.
            let first = block.iter().copied().find(|&b| b & 0xe0 != 0x20)?;
            let index = match first {
                b if b & 0x80 != 0 => b & 0x7f,
                b if b & 0xc0 == 0x40 => b & 0x3f,
                b => b & 0x0f,
            };
            return match index {
                1..=7 => Some(true),
                8..=14 => Some(false),
                _ => None,
            };
        }
        at += H2_FRAME_HEAD + len;
    }
    None
}

/// The header block fragment of a HEADERS (or PUSH_PROMISE) payload, without padding and
/// priority, and the promised stream; `None` when the padding does not fit.
fn fragment(payload: &[u8], flags: u8, promise: bool) -> Option<(&[u8], Option<u32>)> {
    let mut p = payload;
    let mut pad = 0;
    if flags & PADDED != 0 {
        pad = usize::from(*p.first()?);
        p = &p[1..];
    }
    let mut promised = None;
    if promise {
        let id = p.get(..4)?;
        promised = Some(u32::from_be_bytes([id[0], id[1], id[2], id[3]]) & 0x7fff_ffff);
        p = &p[4..];
    } else if flags & PRIORITY != 0 {
        p = p.get(5..)?;
    }
    let end = p.len().checked_sub(pad)?;
    Some((&p[..end], promised))
}

impl Parser for H2Conn {
    fn on_data(&mut self, cx: &mut Ctx<'_>, dir: usize, ts: u64, mut data: &[u8]) {
        while !data.is_empty() {
            let r = &mut self.readers[dir];
            if r.lost {
                return;
            }
            if r.preface > 0 {
                let n = r.preface.min(data.len());
                r.preface -= n;
                cx.stats.http2_overhead_bytes += n as u64;
                data = &data[n..];
                continue;
            }
            let Some(f) = r.frame else {
                if r.have == 0 {
                    r.head_ns = ts;
                }
                let n = (9 - r.have).min(data.len());
                r.head[r.have..r.have + n].copy_from_slice(&data[..n]);
                r.have += n;
                data = &data[n..];
                if r.have < 9 {
                    continue;
                }
                let h = r.head;
                let first_ns = r.head_ns;
                r.payload.clear();
                r.have = 0;
                let f = Frame {
                    len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
                    first_ns,
                };
                if f.len > r.max_frame || (f.kind != DATA && f.len > MAX_BUFFERED) {
                    cx.stats.parse_errors += 1;
                    self.lose(cx, dir);
                    return;
                }
                // A header block must be followed by its CONTINUATIONs, nothing else.
                if r.block.is_some() && f.kind != CONTINUATION {
                    cx.stats.parse_errors += 1;
                    self.lose(cx, dir);
                    return;
                }
                r.left = f.len;
                if f.len == 0 {
                    self.frame(cx, dir, f, ts);
                } else {
                    r.frame = Some(f);
                }
                continue;
            };
            let n = (r.left as usize).min(data.len());
            if f.kind != DATA {
                r.payload.extend_from_slice(&data[..n]);
            }
            r.left -= n as u32;
            data = &data[n..];
            if r.left == 0 {
                r.frame = None;
                self.frame(cx, dir, f, ts);
            }
        }
    }

    fn on_gap(&mut self, cx: &mut Ctx<'_>, dir: usize, len: u64, ts: u64) {
        let r = &mut self.readers[dir];
        if r.lost {
            return;
        }
        match r.frame {
            Some(f) if f.kind == DATA && len <= u64::from(r.left) => {
                r.left -= len as u32;
                if let Some(s) = self.streams.get_mut(&f.stream) {
                    s.gap = true;
                }
                if self.readers[dir].left == 0 {
                    self.readers[dir].frame = None;
                    self.frame(cx, dir, f, ts);
                }
            }
            _ => self.lose(cx, dir),
        }
    }

    fn on_close(&mut self, cx: &mut Ctx<'_>, _reason: CloseReason) {
        let mut open: Vec<u32> = self.streams.keys().copied().collect();
        open.sort_unstable();
        for id in open {
            self.finish(cx, id, false);
        }
    }

    fn on_ack(&mut self, _dir: usize, _offset: u64) {}
}

#[cfg(test)]
mod tests;
