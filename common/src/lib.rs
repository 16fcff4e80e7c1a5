//! What the kernel filter (`ebpf/`) and userspace (`tui/`) agree on: map names and sizes, the layout of
//! map keys and values, and the rule that decides whether a TCP payload starts an HTTP/1.x message.
//!
//! Every struct here is `#[repr(C)]`, `Copy`, and has its padding written out as named fields, so the
//! bytes the kernel hashes are exactly the bytes userspace builds (an implicit padding hole would make
//! two equal keys hash differently).
#![no_std]

/// LRU hash map: [`ConnKey`] -> [`ConnValue`], one entry per direction of every HTTP connection the
/// filter has seen start a message.
pub const CONN_MAP: &str = "HTTP_CONNS";
/// Capacity of [`CONN_MAP`]. Two entries per connection, so this tracks 32 Ki connections before the
/// LRU starts evicting the least recently used ones.
pub const CONN_MAP_CAPACITY: u32 = 65_536;

/// Hash map: TCP port (host order) -> 1. Only consulted when [`CONFIG_PORT_FILTER`] is set.
pub const PORT_MAP: &str = "HTTP_PORTS";
/// Capacity of [`PORT_MAP`].
pub const PORT_MAP_CAPACITY: u32 = 64;

/// Array of `u32` configuration words, indexed by the `CONFIG_*` constants.
pub const CONFIG_MAP: &str = "HTTP_CONFIG";
/// Number of entries in [`CONFIG_MAP`].
pub const CONFIG_MAP_LEN: u32 = 4;
/// Config index: non-zero when only ports listed in [`PORT_MAP`] may be kept.
pub const CONFIG_PORT_FILTER: u32 = 0;

/// Per-CPU array of `u64` counters, indexed by the `STAT_*` constants.
pub const STATS_MAP: &str = "HTTP_FILTER_STATS";
/// Packets the filter ran on.
pub const STAT_SEEN: u32 = 0;
/// Packets kept because their TCP payload starts an HTTP/1.x message.
pub const STAT_KEPT_START: u32 = 1;
/// Packets kept because they belong to a recorded connection (payload, FIN or RST).
pub const STAT_KEPT_CONN: u32 = 2;
/// Times recording a connection in [`CONN_MAP`] failed (the packet is still kept).
pub const STAT_INSERT_FAILED: u32 = 3;
/// Packets cut to their headers because their payload lay wholly inside a body userspace said it
/// does not need ([`ConnValue::skip_seq`]).
pub const STAT_SKIPPED: u32 = 4;
/// The payload bytes those packets carried, which never reached the ring.
pub const STAT_SKIPPED_BYTES: u32 = 5;
/// Number of entries in [`STATS_MAP`].
pub const STATS_LEN: u32 = 6;

/// Address family tag in [`ConnKey::family`] (not the kernel's `AF_*` numbers: a key only needs to tell
/// the two apart).
pub const FAMILY_IPV4: u8 = 4;
/// See [`FAMILY_IPV4`].
pub const FAMILY_IPV6: u8 = 6;

/// One direction of a TCP connection, as seen in a packet (source = sender).
///
/// IPv4 addresses use the first 4 bytes of the 16-byte fields; the rest stay zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ConnKey {
    /// Sender address, network byte order.
    pub src_addr: [u8; 16],
    /// Receiver address, network byte order.
    pub dst_addr: [u8; 16],
    /// Sender port, host byte order.
    pub src_port: u16,
    /// Receiver port, host byte order.
    pub dst_port: u16,
    /// [`FAMILY_IPV4`] or [`FAMILY_IPV6`].
    pub family: u8,
    /// Explicit padding; always zero.
    pub pad: [u8; 3],
}

impl ConnKey {
    /// The same connection seen from the other side.
    #[must_use]
    pub const fn reversed(&self) -> Self {
        Self {
            src_addr: self.dst_addr,
            dst_addr: self.src_addr,
            src_port: self.dst_port,
            dst_port: self.src_port,
            family: self.family,
            pad: [0; 3],
        }
    }
}

/// What the filter remembers about a recorded connection direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ConnValue {
    /// `bpf_ktime_get_ns()` (CLOCK_MONOTONIC) of the last packet kept for this direction; userspace
    /// compares it with its own monotonic clock to expire idle connections.
    pub last_seen_ns: u64,
    /// Packets kept for this direction.
    pub packets: u64,
    /// Body skipping: the TCP sequence number where a stretch of body bytes userspace does not
    /// need begins. Written by userspace once it has parsed a head that says how long the body is.
    pub skip_seq: u32,
    /// Length of that stretch; 0 when there is none. A packet whose payload lies wholly inside
    /// `[skip_seq, skip_seq + skip_len)` (in TCP's wrapping sequence space) reaches userspace cut
    /// to its headers, which still say how many payload bytes it carried. The filter sets it to 0
    /// when a packet reaches or crosses the end, so a stale stretch cannot match again when the
    /// sequence numbers wrap.
    pub skip_len: u32,
}

/// Whether a payload of `len` bytes at sequence number `seq` lies wholly inside the skip stretch
/// of `v` (`Some(true)`), reaches or crosses its end (`Some(false)`: the stretch is used up), or
/// does neither (`None`: before it, or no stretch). Shared by the kernel filter and the tests.
#[inline(always)]
#[must_use]
pub fn skip_verdict(skip_seq: u32, skip_len: u32, seq: u32, len: u32) -> Option<bool> {
    if skip_len == 0 || len == 0 {
        return None;
    }
    let off = seq.wrapping_sub(skip_seq);
    if off >= skip_len {
        // Before the stretch (a retransmission, wrapping to a large offset) or past its end.
        return if off < 1 << 31 { Some(false) } else { None };
    }
    Some(len <= skip_len - off)
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: both are repr(C), Copy, and have no implicit padding (checked by the layout tests), so
    // every byte pattern is a valid value and no uninitialised byte is ever read.
    unsafe impl aya::Pod for super::ConnKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ConnValue {}
}

/// Longest token [`starts_http_message`] compares.
pub const HTTP_TOKEN_MAX: usize = 8;

/// Tokens that open an HTTP message: request methods with their trailing space, the status line's
/// version prefix (RFC 9112 section 3 and 4), and the start of the HTTP/2 client connection preface
/// (`PRI * HTTP/2.0`, RFC 9113 3.4: h2c with prior knowledge; an h2c upgrade starts as HTTP/1.1).
const HTTP_TOKENS: [&[u8]; 11] = [
    b"GET ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"HEAD ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
    b"HTTP/1.",
    b"PRI * HT",
];

/// Does a TCP payload whose first bytes are `head[..avail]` start an HTTP message (HTTP/1.x, or
/// the HTTP/2 preface)?
///
/// `avail` may be smaller than a token: a client that writes its request one byte per segment sends a
/// lone `G` first, and that segment must start the connection too, so a payload that is a strict
/// prefix of a token counts. `avail == 0` never matches.
///
/// Written with fixed-size arrays and constant loop bounds so the same code runs in the kernel filter
/// (where the verifier must see every loop end) and in host unit tests.
#[inline(always)]
#[must_use]
pub fn starts_http_message(head: &[u8; HTTP_TOKEN_MAX], avail: usize) -> bool {
    if avail == 0 {
        return false;
    }
    let mut t = 0;
    while t < HTTP_TOKENS.len() {
        if token_matches(HTTP_TOKENS[t], head, avail) {
            return true;
        }
        t += 1;
    }
    false
}

/// Length of an HTTP/2 frame header (RFC 9113 4.1).
pub const H2_FRAME_HEAD: usize = 9;

/// The payload length of the HTTP/2 frame whose 9-byte header is `h`, if the header is
/// plausible: a known type (DATA to CONTINUATION), the reserved bit clear, a length within the
/// default SETTINGS_MAX_FRAME_SIZE, and the stream and length the type requires (SETTINGS, PING,
/// GOAWAY on stream 0; PRIORITY 5 bytes, RST_STREAM and WINDOW_UPDATE 4, PING 8...).
///
/// How a connection picked up in its middle shows it is HTTP/2 (no preface to see): the kernel
/// filter keeps a connection whose segment is one plausible frame exactly, or begins with two;
/// userspace takes a segment of plausible frames that end where it ends.
#[inline(always)]
#[must_use]
pub fn h2_frame_len(h: &[u8; H2_FRAME_HEAD]) -> Option<u32> {
    let len = (h[0] as u32) << 16 | (h[1] as u32) << 8 | h[2] as u32;
    let stream = (h[5] as u32) << 24 | (h[6] as u32) << 16 | (h[7] as u32) << 8 | h[8] as u32;
    if stream & 0x8000_0000 != 0 || len > 16_384 {
        return None;
    }
    let ok = match h[3] {
        // DATA, HEADERS, PUSH_PROMISE, CONTINUATION
        0 | 1 | 5 | 9 => stream != 0,
        // PRIORITY
        2 => stream != 0 && len == 5,
        // RST_STREAM
        3 => stream != 0 && len == 4,
        // SETTINGS
        4 => stream == 0 && len.is_multiple_of(6),
        // PING
        6 => stream == 0 && len == 8,
        // GOAWAY
        7 => stream == 0 && len >= 8,
        // WINDOW_UPDATE
        8 => len == 4,
        _ => false,
    };
    if ok { Some(len) } else { None }
}

#[inline(always)]
fn token_matches(token: &[u8], head: &[u8; HTTP_TOKEN_MAX], avail: usize) -> bool {
    let mut i = 0;
    while i < HTTP_TOKEN_MAX && i < token.len() {
        if i >= avail {
            // The payload ended inside the token: a prefix counts (see above).
            return true;
        }
        if head[i] != token[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use core::mem::{align_of, offset_of, size_of};

    use super::*;

    fn head(s: &[u8]) -> ([u8; HTTP_TOKEN_MAX], usize) {
        let mut h = [0u8; HTTP_TOKEN_MAX];
        let n = s.len().min(HTTP_TOKEN_MAX);
        h[..n].copy_from_slice(&s[..n]);
        (h, s.len())
    }

    fn starts(s: &[u8]) -> bool {
        let (h, n) = head(s);
        starts_http_message(&h, n)
    }

    #[test]
    fn conn_key_layout_has_no_holes() {
        // The fields' sizes add up to the struct size: no implicit padding the kernel would hash.
        assert_eq!(size_of::<ConnKey>(), 16 + 16 + 2 + 2 + 1 + 3);
        assert_eq!(size_of::<ConnKey>(), 40);
        assert_eq!(align_of::<ConnKey>(), 2);
        assert_eq!(offset_of!(ConnKey, src_addr), 0);
        assert_eq!(offset_of!(ConnKey, dst_addr), 16);
        assert_eq!(offset_of!(ConnKey, src_port), 32);
        assert_eq!(offset_of!(ConnKey, dst_port), 34);
        assert_eq!(offset_of!(ConnKey, family), 36);
        assert_eq!(offset_of!(ConnKey, pad), 37);
    }

    #[test]
    fn conn_value_layout_has_no_holes() {
        assert_eq!(size_of::<ConnValue>(), 24);
        assert_eq!(align_of::<ConnValue>(), 8);
        assert_eq!(offset_of!(ConnValue, last_seen_ns), 0);
        assert_eq!(offset_of!(ConnValue, packets), 8);
        assert_eq!(offset_of!(ConnValue, skip_seq), 16);
        assert_eq!(offset_of!(ConnValue, skip_len), 20);
    }

    #[test]
    fn skip_stretch_takes_only_payloads_wholly_inside() {
        // A 1000-byte stretch at 5000.
        let v = |seq, len| skip_verdict(5000, 1000, seq, len);
        assert_eq!(v(5000, 1000), Some(true));
        assert_eq!(v(5100, 100), Some(true));
        assert_eq!(v(5900, 100), Some(true)); // ends exactly at the end: still inside
        assert_eq!(v(5900, 101), Some(false)); // crosses the end: kept whole, stretch done
        assert_eq!(v(6000, 10), Some(false)); // past the end
        assert_eq!(v(4990, 20), None); // straddles the start: kept whole, stretch stays
        assert_eq!(v(1000, 10), None); // an old retransmission
        assert_eq!(v(5100, 0), None); // no payload
        assert_eq!(skip_verdict(5000, 0, 5100, 10), None); // no stretch
        // Across the wrap of the sequence space.
        assert_eq!(skip_verdict(u32::MAX - 99, 1000, 50, 100), Some(true));
        assert_eq!(skip_verdict(u32::MAX - 99, 1000, 850, 100), Some(false));
    }

    #[test]
    fn reversed_swaps_ends_and_round_trips() {
        let k = ConnKey {
            src_addr: [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            dst_addr: [10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            src_port: 40_000,
            dst_port: 80,
            family: FAMILY_IPV4,
            pad: [0; 3],
        };
        let r = k.reversed();
        assert_eq!(r.src_addr, k.dst_addr);
        assert_eq!(r.dst_port, 40_000);
        assert_eq!(r.reversed(), k);
    }

    #[test]
    fn every_method_and_status_line_starts_a_message() {
        for s in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"POST /x HTTP/1.1\r\n",
            b"PUT /x HTTP/1.1",
            b"DELETE /x HTTP/1.1",
            b"HEAD / HTTP/1.0",
            b"OPTIONS * HTTP/1.1",
            b"PATCH /a HTTP/1.1",
            b"CONNECT h:443 HTTP/1.1",
            b"TRACE / HTTP/1.1",
            b"HTTP/1.1 200 OK\r\n",
            b"HTTP/1.0 404 Not Found",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(starts(s), "{:?}", core::str::from_utf8(s));
        }
    }

    #[test]
    fn other_payloads_do_not() {
        for s in [
            &b"get / HTTP/1.1"[..],
            b"GETX / HTTP/1.1",
            b"HTTP/2.0 200",
            b"PRI * FTP",
            b"SSH-2.0-OpenSSH",
            b"\x16\x03\x01\x02\x00",
            b"hello world",
            b"\0\0\0\0\0\0\0\0\0",
            b"POSTAL",
        ] {
            assert!(!starts(s), "{:?}", s);
        }
        assert!(!starts(b""));
    }

    #[test]
    fn plausible_http2_frame_headers() {
        let h = |len: u32, kind: u8, stream: u32| {
            let l = len.to_be_bytes();
            let s = stream.to_be_bytes();
            [l[1], l[2], l[3], kind, 0, s[0], s[1], s[2], s[3]]
        };
        assert_eq!(h2_frame_len(&h(8, 6, 0)), Some(8)); // PING
        assert_eq!(h2_frame_len(&h(4, 8, 3)), Some(4)); // WINDOW_UPDATE on a stream
        assert_eq!(h2_frame_len(&h(100, 0, 1)), Some(100)); // DATA
        assert_eq!(h2_frame_len(&h(12, 4, 0)), Some(12)); // SETTINGS
        assert_eq!(h2_frame_len(&h(8, 6, 1)), None); // PING on a stream
        assert_eq!(h2_frame_len(&h(100, 0, 0)), None); // DATA on stream 0
        assert_eq!(h2_frame_len(&h(7, 4, 0)), None); // SETTINGS of 7 bytes
        assert_eq!(h2_frame_len(&h(20_000, 0, 1)), None); // past the default size
        assert_eq!(h2_frame_len(&h(5, 10, 1)), None); // unknown type
        assert_eq!(h2_frame_len(&h(5, 0, 0x8000_0001)), None); // reserved bit
        assert_eq!(h2_frame_len(b"GET / HTT"), None);
        assert_eq!(h2_frame_len(b"HTTP/1.1 "), None);
    }

    #[test]
    fn a_short_segment_that_is_a_token_prefix_counts() {
        assert!(starts(b"G"));
        assert!(starts(b"GE"));
        assert!(starts(b"HTTP/"));
        assert!(starts(b"OPTION"));
        assert!(!starts(b"X"));
        assert!(!starts(b"GX"));
    }
}
