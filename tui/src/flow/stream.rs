//! One direction's reassembly: out-of-order buffering, retransmission trimming, gaps, FIN, in
//! unwrapped sequence space.

use std::collections::BTreeMap;

use super::{ConnInfo, FlowConfig, FlowStats, Handler};
use crate::decode::{Segment, tcp_flags};

/// A buffered out-of-order range.
#[derive(Debug)]
pub(super) struct Chunk {
    pub(super) ts_ns: u64,
    /// The acknowledgement its segment carried ([`ConnInfo::ack`]).
    pub(super) ack: Option<u64>,
    pub(super) data: Vec<u8>,
    /// Bytes after `data` whose segment was captured without them (see
    /// [`Segment::uncaptured`]): known, not held.
    pub(super) uncaptured: u32,
}

impl Chunk {
    /// Sequence space the range covers.
    pub(super) fn len(&self) -> u64 {
        self.data.len() as u64 + u64::from(self.uncaptured)
    }
}

/// Out-of-order ranges of one direction. Boxed and absent while empty, which is nearly always: an
/// empty `BTreeMap` is 24 bytes in every stream of every connection, the box 8.
#[derive(Debug, Default)]
#[expect(
    clippy::box_collection,
    reason = "8 bytes per stream instead of 24, see above"
)]
pub(super) struct Ooo(Option<Box<BTreeMap<u64, Chunk>>>);

impl Ooo {
    pub(super) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|m| m.is_empty())
    }

    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |m| m.len())
    }

    pub(super) fn range(&self, end: u64) -> impl Iterator<Item = (&u64, &Chunk)> {
        self.0.iter().flat_map(move |m| m.range(..end))
    }

    pub(super) fn first_key(&self) -> Option<u64> {
        self.0.as_ref()?.first_key_value().map(|(k, _)| *k)
    }

    pub(super) fn insert(&mut self, start: u64, chunk: Chunk) {
        self.0.get_or_insert_default().insert(start, chunk);
    }

    /// Removes the first range if it starts at or before `upto`.
    pub(super) fn pop_first_upto(&mut self, upto: u64) -> Option<(u64, Chunk)> {
        let m = self.0.as_mut()?;
        let first = m.first_entry().filter(|e| *e.key() <= upto)?;
        let start = *first.key();
        let chunk = first.remove();
        if m.is_empty() {
            self.0 = None;
        }
        Some((start, chunk))
    }
}

/// A position not set yet. Unwrapped sequence numbers start at 2^32 (see [`Stream::start_at`]) and
/// only move forward, so 0 is never a real one; plain integers rather than `Option`s keep a stream 16
/// bytes smaller, which a table of 100 000 connections feels.
pub(super) const UNSET: u64 = 0;

/// One direction's reassembly state, in 64-bit unwrapped sequence space.
#[derive(Debug, Default)]
pub(super) struct Stream {
    /// Next expected sequence number, unwrapped; [`UNSET`] until the first segment.
    pub(super) next: u64,
    /// `next` truncated to the wire's 32 bits, to unwrap incoming numbers relative to it.
    pub(super) next_wire: u32,
    /// Buffered ranges by unwrapped start; they never overlap each other.
    pub(super) ooo: Ooo,
    /// Bytes in `ooo`; below 4 GiB since [`FlowConfig::max_ooo_bytes`] is capped there.
    pub(super) ooo_bytes: u32,
    /// Unwrapped sequence number of this side's FIN, once seen ([`UNSET`] before).
    pub(super) fin: u64,
    /// The FIN has been delivered in order.
    pub(super) closed: bool,
    /// The stream started at a SYN (its first byte is the sender's first).
    pub(super) syn: bool,
    /// In the first stream of a connection: which side of the key sends it.
    pub(super) side: u8,
}

impl Stream {
    /// Starts the stream at wire sequence number `seq`. Unwrapped numbers start at 2^32 so that
    /// bytes before the start still unwrap to positive numbers.
    pub(super) fn start_at(&mut self, seq: u32) {
        self.next = 1 << 32;
        self.next_wire = seq;
    }

    /// Unwraps a 32-bit sequence number to the 64-bit space around `next`.
    pub(super) fn unwrap(&self, seq: u32) -> u64 {
        let next = self.next;
        // Signed distance from the expected number: within +-2 GiB, which TCP's window guarantees.
        let delta = i64::from(seq.wrapping_sub(self.next_wire) as i32);
        next.saturating_add_signed(delta)
    }

    /// Moves `next` forward and its wire form with it. Never back: a target behind `next` (a FIN
    /// number below data already delivered, which only a broken or hostile peer sends) is ignored.
    pub(super) fn advance_to(&mut self, next: u64) {
        let old = self.next;
        if old != UNSET && next > old {
            self.next = next;
            self.next_wire = self.next_wire.wrapping_add((next - old) as u32);
        }
    }
}

/// A segment's payload as far as reassembly cares: the bytes captured, then the bytes known to
/// follow them uncaptured.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bytes<'a> {
    pub(super) data: &'a [u8],
    pub(super) uncaptured: u32,
}

impl Bytes<'_> {
    fn len(&self) -> u64 {
        self.data.len() as u64 + u64::from(self.uncaptured)
    }
}

/// What one segment's processing needs besides the stream.
pub(super) struct Ctx<'a> {
    pub(super) cfg: &'a FlowConfig,
    pub(super) stats: &'a mut FlowStats,
    pub(super) info: &'a ConnInfo,
    pub(super) dir: usize,
    /// Bytes the global cap still allows to be buffered.
    pub(super) budget: usize,
    pub(super) buffered_delta: &'a mut i64,
}

impl Ctx<'_> {
    pub(super) fn receive<H: Handler>(
        &mut self,
        s: &mut Stream,
        ts: u64,
        seg: &Segment<'_>,
        c: &mut H::Conn,
        h: &mut H,
    ) {
        let syn = seg.flags & tcp_flags::SYN != 0;
        if s.next == UNSET {
            // First segment of this direction: a SYN's sequence number is the ISN and the data
            // starts one after it; otherwise the stream starts here (mid-connection pickup).
            s.start_at(seg.seq.wrapping_add(u32::from(syn)));
            s.syn = syn;
        }
        let mut seq = s.unwrap(seg.seq);
        if syn {
            seq += 1;
        }
        let end = seq + seg.payload.len() as u64 + u64::from(seg.uncaptured);
        if seg.flags & tcp_flags::FIN != 0 && s.fin == UNSET {
            s.fin = end;
        }
        if end > seq {
            let bytes = Bytes {
                data: seg.payload,
                uncaptured: seg.uncaptured,
            };
            self.insert(s, ts, seq, bytes, c, h);
        }
        self.check_fin(s);
    }

    /// The peer acknowledged up to `ack` in this stream's sequence space.
    pub(super) fn acked<H: Handler>(
        &mut self,
        s: &mut Stream,
        ts: u64,
        ack: u32,
        c: &mut H::Conn,
        h: &mut H,
    ) {
        let next = s.next;
        if next == UNSET {
            // The peer's acknowledgement says where this stream stands before any of its segments
            // arrive: without it (no SYN captured, as behind the kernel filter), a stream whose
            // first segment is lost and retransmitted would start at the segment after it and
            // drop the retransmission, and with it a response's head.
            s.start_at(ack);
            return;
        }
        let acked = s.unwrap(ack);
        // Acknowledged bytes past the FIN number are the FIN itself.
        let acked = if s.fin == UNSET {
            acked
        } else {
            acked.min(s.fin)
        };
        // The receiver got bytes this capture never saw: they will not come. Give up on every
        // hole up to the acknowledged number, delivering the buffered data between them, so the
        // stream is as far as the receiver says before the sender's next bytes are read (one hole
        // at a time, a response behind a second hole came after the request it preceded: found by
        // the capture-loss property test).
        while acked > s.next {
            let next = s.next;
            let upto = s.ooo.first_key().map_or(acked, |k| acked.min(k));
            if upto > next {
                self.gap(ts, upto - next, c, h);
                s.advance_to(upto);
            }
            self.drain(s, c, h);
        }
        self.check_fin(s);
    }

    pub(super) fn check_fin(&mut self, s: &mut Stream) {
        if s.fin != UNSET && s.next >= s.fin && !s.closed {
            s.closed = true;
            s.advance_to(s.fin + 1);
        }
    }

    pub(super) fn gap<H: Handler>(&mut self, ts: u64, len: u64, c: &mut H::Conn, h: &mut H) {
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        h.on_gap(c, self.info, self.dir, len, ts);
    }

    /// `len` uncaptured bytes of this direction, known to be there: the layer above takes those
    /// that fall inside a body it can count without seeing; the rest are a gap.
    fn skip<H: Handler>(&mut self, info: &ConnInfo, ts: u64, len: u64, c: &mut H::Conn, h: &mut H) {
        let taken = h.on_skip(c, info, self.dir, len, ts).min(len);
        self.stats.skipped_bytes += taken;
        if taken < len {
            self.stats.skip_misses += len - taken;
            self.gap(ts, len - taken, c, h);
        }
    }

    /// Hands over `bytes[lo..hi]` (offsets into the range they cover): captured bytes as data,
    /// uncaptured ones as a skip.
    #[expect(
        clippy::too_many_arguments,
        reason = "one range of one stream, spelled out"
    )]
    fn hand<H: Handler>(
        &mut self,
        info: &ConnInfo,
        ts: u64,
        bytes: Bytes<'_>,
        lo: u64,
        hi: u64,
        c: &mut H::Conn,
        h: &mut H,
    ) {
        let held = bytes.data.len() as u64;
        if lo < held {
            h.on_data(
                c,
                info,
                self.dir,
                ts,
                &bytes.data[lo as usize..hi.min(held) as usize],
            );
        }
        if hi > held {
            self.skip(info, ts, hi - lo.max(held), c, h);
        }
    }

    pub(super) fn insert<H: Handler>(
        &mut self,
        s: &mut Stream,
        ts: u64,
        seq: u64,
        bytes: Bytes<'_>,
        c: &mut H::Conn,
        h: &mut H,
    ) {
        let next = s.next;
        let end = seq + bytes.len();
        if end <= next {
            self.stats.retransmissions += 1;
            return;
        }
        if seq <= next {
            return self.deliver(s, ts, seq, bytes, c, h);
        }
        // Out of order: buffer the parts not already buffered (the first copy wins).
        let mut pieces: Vec<(u64, u64)> = Vec::new();
        let mut cur = seq;
        for (&k, v) in s.ooo.range(end) {
            let kend = k + v.len();
            if kend <= cur {
                continue;
            }
            if k > cur {
                pieces.push((cur, k));
            }
            cur = cur.max(kend);
        }
        if cur < end {
            pieces.push((cur, end));
        }
        if pieces.is_empty() {
            self.stats.retransmissions += 1;
            return;
        }
        // Only captured bytes take memory.
        let held = seq + bytes.data.len() as u64;
        let adding: usize = pieces
            .iter()
            .map(|&(a, b)| b.min(held).saturating_sub(a) as usize)
            .sum();
        if s.ooo_bytes as usize + adding > self.cfg.max_ooo_bytes
            || s.ooo.len() + pieces.len() > self.cfg.max_holes
            || adding > self.budget
        {
            // Over a cap: stop waiting for holes. Everything buffered, then this segment, goes out
            // now, with gaps where bytes are missing.
            self.stats.ooo_overflows += 1;
            while !s.ooo.is_empty() {
                self.skip_first_hole(s, ts, c, h);
            }
            let next = s.next;
            if end <= next {
                return;
            }
            if seq > next {
                self.gap(ts, seq - next, c, h);
                s.advance_to(seq);
            }
            return self.deliver(s, ts, seq, bytes, c, h);
        }
        self.stats.out_of_order += 1;
        let held = bytes.data.len() as u64;
        for (a, b) in pieces {
            let (lo, hi) = (a - seq, b - seq);
            let data = &bytes.data[lo.min(held) as usize..hi.min(held) as usize];
            s.ooo.insert(
                a,
                Chunk {
                    ts_ns: ts,
                    ack: self.info.ack,
                    data: data.to_vec(),
                    uncaptured: (hi - lo - data.len() as u64) as u32,
                },
            );
        }
        s.ooo_bytes += adding as u32;
        self.budget -= adding;
        *self.buffered_delta += adding as i64;
    }

    /// Hands over the part of `bytes` (starting at `seq <= next`) not delivered yet, without a
    /// copy, then whatever buffered data it made contiguous. Where a buffered range covers the
    /// same bytes, that earlier copy is delivered instead, with its own capture time.
    pub(super) fn deliver<H: Handler>(
        &mut self,
        s: &mut Stream,
        ts: u64,
        seq: u64,
        bytes: Bytes<'_>,
        c: &mut H::Conn,
        h: &mut H,
    ) {
        let end = seq + bytes.len();
        loop {
            let next = s.next;
            if end <= next {
                break;
            }
            let stop = s.ooo.first_key().map_or(end, |k| k.min(end)).max(next);
            if stop > next {
                let info = *self.info;
                self.hand(&info, ts, bytes, next - seq, stop - seq, c, h);
                s.advance_to(stop);
            }
            self.drain(s, c, h);
        }
        self.drain(s, c, h);
    }

    /// Declares the hole before the first buffered range a gap and delivers what follows it.
    pub(super) fn skip_first_hole<H: Handler>(
        &mut self,
        s: &mut Stream,
        ts: u64,
        c: &mut H::Conn,
        h: &mut H,
    ) {
        let next = s.next;
        if let Some(k) = s.ooo.first_key()
            && k > next
        {
            self.gap(ts, k - next, c, h);
            s.advance_to(k);
        }
        self.drain(s, c, h);
    }

    /// Delivers buffered ranges that have become contiguous with `next`.
    pub(super) fn drain<H: Handler>(&mut self, s: &mut Stream, c: &mut H::Conn, h: &mut H) {
        while let Some((start, chunk)) = s.ooo.pop_first_upto(s.next) {
            let next = s.next;
            s.ooo_bytes -= chunk.data.len() as u32;
            *self.buffered_delta -= chunk.data.len() as i64;
            let end = start + chunk.len();
            if end > next {
                s.advance_to(end);
                let info = ConnInfo {
                    ack: chunk.ack,
                    ..*self.info
                };
                let bytes = Bytes {
                    data: &chunk.data,
                    uncaptured: chunk.uncaptured,
                };
                self.hand(&info, chunk.ts_ns, bytes, next - start, end - start, c, h);
            }
        }
    }
}
