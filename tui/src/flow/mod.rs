//! TCP reassembly: segments in, each direction's byte stream out, in order, once.
//!
//! - A connection is keyed by its two endpoints in either order; direction 0 is "from the endpoint
//!   seen first as a sender", which says nothing about client or server (the HTTP layer decides that
//!   from who sends a request).
//! - Each direction is reassembled in sequence space (RFC 9293 3.4): out-of-order segments are
//!   buffered, retransmitted and overlapping bytes are dropped (the first copy captured wins, and with
//!   it the capture time of the earliest frame that carried the byte), and sequence numbers wrap.
//! - A stream picked up mid-connection starts at the first segment seen.
//! - Bytes that were never captured become a [`Handler::on_gap`] of known length: when the peer
//!   acknowledges data we did not see, when buffered data outgrows its cap, and when the connection
//!   ends with a hole.
//! - Everything that grows has a cap and a counter: out-of-order bytes and holes per direction,
//!   connections in the table (the least recently active are evicted), bytes buffered in total.
//!
//! Pure: no I/O, no clock; time is the capture timestamp of each segment.

mod stream;
#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr, SocketAddr},
};

use self::stream::{Ctx, Stream, UNSET};
use crate::decode::{Segment, tcp_flags};

/// Limits of the reassembler.
///
/// The per-direction limits must hold a whole receive window: on a fast link with loss, Linux
/// windows reach several MiB, and a cap below that turns every late retransmission into a gap
/// (found by the loss test: at 256 KiB a 5 MiB transfer with 10% loss lost its place). The global
/// cap is what bounds memory under a flood.
#[derive(Debug, Clone, Copy)]
pub struct FlowConfig {
    /// Connections tracked at once; beyond it the least recently active are evicted.
    pub max_conns: usize,
    /// Out-of-order bytes buffered per direction.
    pub max_ooo_bytes: usize,
    /// Buffered out-of-order segments per direction (which bounds the holes between them).
    pub max_holes: usize,
    /// Out-of-order bytes buffered over all connections.
    pub max_total_buffered: usize,
    /// A connection with no segment for this long (capture time) is closed.
    pub idle_timeout_ns: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            max_conns: 100_000,
            max_ooo_bytes: 8 * 1024 * 1024,
            max_holes: 8192,
            max_total_buffered: 64 * 1024 * 1024,
            idle_timeout_ns: 120 * 1_000_000_000,
        }
    }
}

/// Why a connection left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides' FINs were delivered in order.
    Fin,
    /// Either side sent RST.
    Reset,
    /// No segment for the idle timeout.
    Idle,
    /// Evicted to make room for new connections.
    Evicted,
    /// The capture ended.
    EndOfCapture,
}

/// The two endpoints of a connection; `addrs[d]` sends in direction `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    pub addrs: [SocketAddr; 2],
    /// Direction `d`'s stream was seen from its SYN: its first byte is the first the sender sent
    /// (not a stream picked up mid-connection).
    pub from_start: [bool; 2],
    /// With data: what its sender had acknowledged of the other direction (offset from that
    /// stream's first byte) in the segment that carried these bytes, if it said. Bytes held out of
    /// order keep their own segment's, so a request delivered late still says what its client had
    /// received when it sent it.
    pub ack: Option<u64>,
}

/// What the layer above reassembly receives. `C` is its per-connection state, stored in the table so
/// one lookup per packet finds both.
pub trait Handler {
    type Conn: Default;
    /// In-order bytes of direction `dir`, from a frame captured at `ts_ns`. Each call carries the
    /// bytes of one captured segment (or the part of it not seen before).
    fn on_data(&mut self, c: &mut Self::Conn, info: &ConnInfo, dir: usize, ts_ns: u64, data: &[u8]);
    /// `len` bytes of direction `dir` were sent and their segments captured, but not the bytes
    /// themselves (the kernel filter skipped a body, or a snap length cut them). Returns how many
    /// of them, from the first, lie inside a body the layer above counts without seeing; the rest
    /// become a gap.
    fn on_skip(
        &mut self,
        _c: &mut Self::Conn,
        _info: &ConnInfo,
        _dir: usize,
        _len: u64,
        _ts_ns: u64,
    ) -> u64 {
        0
    }
    /// `len` bytes of direction `dir` were never captured.
    fn on_gap(&mut self, c: &mut Self::Conn, info: &ConnInfo, dir: usize, len: u64, ts_ns: u64);
    /// The connection is gone; no more calls for it.
    fn on_close(&mut self, c: &mut Self::Conn, info: &ConnInfo, reason: CloseReason, ts_ns: u64);
    /// The sender of direction `dir` acknowledges the other direction up to `offset` bytes from
    /// its start (gaps included), as of the segment whose bytes come next. Lets the layer above
    /// know what a sender had received when it sent something.
    fn on_ack(&mut self, _c: &mut Self::Conn, _dir: usize, _offset: u64) {}
}

crate::counters! {
    /// Reassembly counters.
    pub struct FlowStats {
        connections: "connections" Counter,
        open: "open" Gauge,
        evicted: "evicted" Counter,
        idle_closed: "idle_closed" Counter,
        /// Segments whose bytes had all been seen already.
        retransmissions: "retransmissions" Counter,
        /// Segments that arrived ahead of a hole and were buffered.
        out_of_order: "out_of_order" Counter,
        /// Gaps reported, and their bytes.
        gaps: "gaps" Counter,
        gap_bytes: "gap_bytes" Counter,
        /// Payload bytes whose segments arrived without them (skipped by the kernel filter, or cut
        /// by a snap length) inside a body of known length: counted, not lost.
        skipped_bytes: "skipped_bytes" Counter,
        /// Such bytes that were not inside a body (a stale skip, a head cut by a snap length):
        /// reported as gaps.
        skip_misses: "skip_misses" Counter,
        /// Times a cap forced buffered data out before its hole filled.
        ooo_overflows: "ooo_overflows" Counter,
        /// Bytes buffered out of order right now.
        buffered_bytes: "buffered_bytes" Gauge,
    }
}

/// A connection's two endpoints, in an order that does not depend on the direction. Compact (38
/// bytes, against 64 for two `SocketAddr`s) because a full table holds 100 000 of them and more in
/// its empty slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    /// IPv4 addresses as IPv4-mapped IPv6, with `v6` telling the families apart.
    ips: [[u8; 16]; 2],
    ports: [u16; 2],
    v6: bool,
}

impl Key {
    /// The same key for both directions, and the side of it `src` is.
    fn of(src: SocketAddr, dst: SocketAddr) -> (Self, u8) {
        // As numbers, which compare in one step and in the order of their bytes.
        let ip = |a: SocketAddr| match a.ip() {
            IpAddr::V4(ip) => ip.to_ipv6_mapped().to_bits(),
            IpAddr::V6(ip) => ip.to_bits(),
        };
        let (a, b) = ((ip(src), src.port()), (ip(dst), dst.port()));
        let side = u8::from(a > b);
        let (a, b) = if side == 0 { (a, b) } else { (b, a) };
        let key = Self {
            ips: [a.0.to_be_bytes(), b.0.to_be_bytes()],
            ports: [a.1, b.1],
            v6: src.is_ipv6(),
        };
        (key, side)
    }

    fn endpoint(&self, side: usize) -> SocketAddr {
        let ip = Ipv6Addr::from(self.ips[side]);
        let ip = match ip.to_ipv4_mapped() {
            Some(v4) if !self.v6 => IpAddr::V4(v4),
            _ => IpAddr::V6(ip),
        };
        SocketAddr::new(ip, self.ports[side])
    }
}

/// Four writes, where the derived hash made nine (a length before every array): the key is
/// hashed for every segment. `v6` is left out: equal keys still hash alike.
impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u128(u128::from_ne_bytes(self.ips[0]));
        h.write_u128(u128::from_ne_bytes(self.ips[1]));
        h.write_u32(u32::from(self.ports[0]) << 16 | u32::from(self.ports[1]));
    }
}

struct Conn<C> {
    /// Direction 0 is from the side of the key that sent first: `streams[0].side`.
    streams: [Stream; 2],
    last_seen_ns: u64,
    state: C,
}

impl<C> Conn<C> {
    /// Which side of the key sent first (kept in the first stream, whose padding had room: a
    /// byte here made every connection's allocation a size class larger).
    fn first_sender(&self) -> u8 {
        self.streams[0].side
    }
}

/// The connection table.
pub struct FlowTable<C> {
    cfg: FlowConfig,
    /// Boxed: a connection is a few hundred bytes, and a table of inline values wastes its empty
    /// slots' worth of them and doubles them while it grows (measured: 281 MiB peak for 100 000
    /// open connections inline).
    ///
    /// foldhash rather than SipHash: hashing was a tenth of the run time. Its seed is random per
    /// table, so a sender cannot aim for collisions without knowing it, and the connection cap
    /// bounds what a flood can cost anyway. Nothing depends on its order ([`Self::oldest`]).
    conns: HashMap<Key, Box<Conn<C>>, foldhash::fast::RandomState>,
    stats: FlowStats,
    last_sweep_ns: u64,
    /// At the end of the capture: the connections still to close, the next last (least recently
    /// active first, ties in key order), sorted once rather than searched again for each batch.
    closing: Vec<(u64, Key)>,
}

/// How often (capture time) idle connections are looked for.
const SWEEP_NS: u64 = 1_000_000_000;

impl<C: Default> FlowTable<C> {
    pub fn new(mut cfg: FlowConfig) -> Self {
        cfg.max_ooo_bytes = cfg.max_ooo_bytes.min(u32::MAX as usize);
        Self {
            cfg,
            conns: HashMap::default(),
            stats: FlowStats::default(),
            last_sweep_ns: 0,
            closing: Vec::new(),
        }
    }

    pub fn stats(&self) -> FlowStats {
        FlowStats {
            open: self.conns.len() as u64,
            ..self.stats
        }
    }

    /// Feeds one segment captured at `ts_ns`.
    pub fn feed<H: Handler<Conn = C>>(&mut self, ts_ns: u64, seg: &Segment<'_>, h: &mut H) {
        if ts_ns >= self.last_sweep_ns.saturating_add(SWEEP_NS) {
            self.last_sweep_ns = ts_ns;
            self.expire_idle(ts_ns, h);
        }
        let (key, side) = Key::of(seg.src, seg.dst);
        if !self.conns.contains_key(&key) {
            // A lone RST or a bare ACK of a connection we never saw has nothing to reassemble.
            if seg.payload.is_empty() && seg.flags & (tcp_flags::SYN | tcp_flags::FIN) == 0 {
                return;
            }
            if self.conns.len() >= self.cfg.max_conns {
                self.evict(ts_ns, h);
            }
            self.stats.connections += 1;
            self.conns.insert(
                key,
                Box::new(Conn {
                    streams: [
                        Stream {
                            side,
                            ..Stream::default()
                        },
                        Stream::default(),
                    ],
                    last_seen_ns: ts_ns,
                    state: C::default(),
                }),
            );
        }
        let conn = self.conns.get_mut(&key).expect("inserted above");
        // Capture clocks may step back a little; never let a connection's time run backwards.
        conn.last_seen_ns = conn.last_seen_ns.max(ts_ns);
        let dir = usize::from(side != conn.first_sender());
        let mut info = ConnInfo {
            addrs: if dir == 0 {
                [seg.src, seg.dst]
            } else {
                [seg.dst, seg.src]
            },
            from_start: [conn.streams[0].syn, conn.streams[1].syn],
            ack: None,
        };

        let budget = self
            .cfg
            .max_total_buffered
            .saturating_sub(self.stats.buffered_bytes as usize);
        let mut buffered_delta: i64 = 0;
        let done = {
            let Conn { streams, state, .. } = &mut **conn;
            let [s0, s1] = streams;
            let (this, other) = if dir == 0 { (s0, s1) } else { (s1, s0) };
            if seg.flags & tcp_flags::ACK != 0 && other.next != UNSET {
                // Offsets count from the stream's first byte, which unwraps to 2^32.
                let ack = other.unwrap(seg.ack).saturating_sub(1 << 32);
                info.ack = Some(ack);
                h.on_ack(state, dir, ack);
            }
            let mut ctx = Ctx {
                cfg: &self.cfg,
                stats: &mut self.stats,
                info: &info,
                dir,
                budget,
                buffered_delta: &mut buffered_delta,
            };
            if seg.flags & tcp_flags::RST != 0 {
                true
            } else {
                // The other side acknowledging bytes we never captured means they are lost to us.
                // First: the sender had them before it sent this segment, so what they unblock
                // (a request buffered behind the hole) comes before this segment's bytes (the
                // response to it) — found by the ring overflow test, where a response was paired
                // before the request that a lost stretch had held back.
                if seg.flags & tcp_flags::ACK != 0 {
                    ctx.dir = 1 - dir;
                    ctx.acked(other, ts_ns, seg.ack, state, h);
                    ctx.dir = dir;
                }
                ctx.receive(this, ts_ns, seg, state, h);
                this.closed && other.closed
            }
        };
        self.stats.buffered_bytes = self
            .stats
            .buffered_bytes
            .saturating_add_signed(buffered_delta);
        if done {
            let reason = if seg.flags & tcp_flags::RST != 0 {
                CloseReason::Reset
            } else {
                CloseReason::Fin
            };
            self.close(&key, reason, ts_ns, h);
        }
    }

    /// The wire sequence number of offset `offset` (mod 2^32, from the stream's first byte) of
    /// the stream `src` sends to `dst`, if that connection is in the table.
    pub fn wire_seq(&self, src: SocketAddr, dst: SocketAddr, offset: u32) -> Option<u32> {
        let (key, side) = Key::of(src, dst);
        let conn = self.conns.get(&key)?;
        let s = &conn.streams[usize::from(side != conn.first_sender())];
        if s.next == UNSET {
            return None;
        }
        // `next` is offset `next - 2^32`, on the wire `next_wire`.
        let at_next = (s.next - (1 << 32)) as u32;
        Some(s.next_wire.wrapping_sub(at_next.wrapping_sub(offset)))
    }

    /// Closes up to `max` connections (end of capture), flushing what is buffered; `false` once
    /// none is left. In batches, so the caller can take what each batch emits before the next.
    pub fn finish_some<H: Handler<Conn = C>>(&mut self, ts_ns: u64, h: &mut H, max: usize) -> bool {
        let mut order = std::mem::take(&mut self.closing);
        if order.is_empty() {
            order = self.aged(u64::MAX);
            order.sort_unstable_by(|a, b| b.cmp(a));
        }
        for _ in 0..max {
            let Some((_, k)) = order.pop() else { break };
            self.close(&k, CloseReason::EndOfCapture, ts_ns, h);
        }
        self.closing = order;
        !self.conns.is_empty()
    }

    /// The connections last active at `cut` or before, with when, in no order.
    fn aged(&self, cut: u64) -> Vec<(u64, Key)> {
        self.conns
            .iter()
            .filter(|(_, c)| c.last_seen_ns <= cut)
            .map(|(k, c)| (c.last_seen_ns, *k))
            .collect()
    }

    /// Up to `n` connections last active at `cut` or before, least recently active first, ties
    /// in key order. Never in the table's own order: that follows the hash's random seed, and
    /// which connections a flood evicts (so when their exchanges complete) and the order they
    /// come out in must be the same in every run over the same capture (found: a flood's
    /// requests per second differed run to run).
    fn oldest(&self, n: usize, cut: u64) -> Vec<Key> {
        if n == 0 {
            return Vec::new();
        }
        // The n-th age from ages alone (8 bytes a connection): keys are collected only up to it.
        let mut cut = cut;
        if n < self.conns.len() {
            let mut ages: Vec<u64> = self
                .conns
                .values()
                .map(|c| c.last_seen_ns)
                .filter(|&t| t <= cut)
                .collect();
            if n < ages.len() {
                cut = *ages.select_nth_unstable(n - 1).1;
            }
        }
        let mut found = self.aged(cut);
        // Many may be tied at the cut: only the first n are sorted.
        if found.len() > n {
            found.select_nth_unstable(n);
            found.truncate(n);
        }
        found.sort_unstable();
        found.into_iter().map(|(_, k)| k).collect()
    }

    fn expire_idle<H: Handler<Conn = C>>(&mut self, now_ns: u64, h: &mut H) {
        let idle = self.cfg.idle_timeout_ns;
        let Some(cut) = now_ns.checked_sub(idle).and_then(|t| t.checked_sub(1)) else {
            return;
        };
        for k in self.oldest(usize::MAX, cut) {
            self.stats.idle_closed += 1;
            self.close(&k, CloseReason::Idle, now_ns, h);
        }
    }

    /// Makes room: closes the least recently active tenth of the table at once, so a flood of new
    /// connections costs amortised O(1) per connection rather than a scan each.
    fn evict<H: Handler<Conn = C>>(&mut self, now_ns: u64, h: &mut H) {
        let n = (self.conns.len() / 10).max(1);
        for k in self.oldest(n, u64::MAX) {
            self.stats.evicted += 1;
            self.close(&k, CloseReason::Evicted, now_ns, h);
        }
        // Removals leave tombstones in a full hash table, and the insert that meets them grows the
        // table to twice its size (it rehashes in place only below half full): measured, a flood
        // doubled the table to 262 144 slots for 100 000 connections. A rebuild at the table's
        // own size costs about nine moves per new connection, and only while connections are
        // being evicted.
        let old = std::mem::take(&mut self.conns);
        self.conns = HashMap::with_capacity_and_hasher(self.cfg.max_conns, Default::default());
        self.conns.extend(old);
    }

    fn close<H: Handler<Conn = C>>(
        &mut self,
        key: &Key,
        reason: CloseReason,
        ts_ns: u64,
        h: &mut H,
    ) {
        let Some(mut conn) = self.conns.remove(key) else {
            return;
        };
        // Deliver what is buffered behind holes, as gaps and data, so a close-delimited body or a
        // body of known length can still complete.
        let mut buffered_delta = 0;
        let first = usize::from(conn.first_sender());
        let info = ConnInfo {
            addrs: [key.endpoint(first), key.endpoint(1 - first)],
            from_start: [conn.streams[0].syn, conn.streams[1].syn],
            ack: None,
        };
        let Conn { streams, state, .. } = &mut *conn;
        for (dir, stream) in streams.iter_mut().enumerate() {
            let mut ctx = Ctx {
                cfg: &self.cfg,
                stats: &mut self.stats,
                info: &info,
                dir,
                budget: 0,
                buffered_delta: &mut buffered_delta,
            };
            while !stream.ooo.is_empty() {
                ctx.skip_first_hole(stream, ts_ns, state, h);
            }
        }
        self.stats.buffered_bytes = self
            .stats
            .buffered_bytes
            .saturating_add_signed(buffered_delta);
        h.on_close(&mut conn.state, &info, reason, ts_ns);
    }
}
