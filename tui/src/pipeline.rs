//! Packets in, HTTP exchanges out: decode -> flow -> http. Pure; one instance per capture.

use crate::{
    decode::{self, DecodeError, Segment},
    flow::{FlowConfig, FlowStats, FlowTable},
    packet::{Packet, SkipHint},
    proto::{Conn, Exchange, HttpStats, Protocols, SpareLines},
};

crate::counters! {
    /// Counters of the packet layers.
    pub struct PacketCounters {
        packets: "packets" Counter,
        /// Captured bytes.
        bytes: "bytes" Counter,
        tcp_segments: "tcp_segments" Counter,
        payload_bytes: "payload_bytes" Counter,
        /// Payload bytes segments carried on the wire but their frames did not (kernel body
        /// skipping, snap lengths).
        uncaptured_bytes: "uncaptured_bytes" Counter,
        /// Frames that are not TCP over IP (ARP, UDP, ...): not errors.
        not_tcp: "not_tcp" Counter,
        /// Frames cut short or malformed below TCP payload.
        decode_errors: "decode_errors" Counter,
    }
}

/// What a whole read counted: of one pipeline, or summed over several ([`crate::session::parallel`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub counters: PacketCounters,
    pub flows: FlowStats,
    pub http: HttpStats,
}

impl Totals {
    /// Every counter of the packet, flow and HTTP layers, in that order.
    pub fn list(&self) -> impl Iterator<Item = crate::counters::Counter> {
        self.counters
            .list()
            .chain(self.flows.list())
            .chain(self.http.list())
    }
}

impl std::ops::AddAssign for Totals {
    fn add_assign(&mut self, o: Self) {
        self.counters += o.counters;
        self.flows += o.flows;
        self.http += o.http;
    }
}

pub struct Pipeline {
    flows: FlowTable<Conn>,
    http: Protocols,
    counters: PacketCounters,
    /// Latest capture time seen, the clock of everything downstream.
    now_ns: u64,
    /// Bodies the live source may skip, in sequence numbers; drained by [`Self::skips`].
    skips: Vec<SkipHint>,
}

impl Pipeline {
    pub fn new(cfg: FlowConfig) -> Self {
        Self {
            flows: FlowTable::new(cfg),
            http: Protocols::default(),
            counters: PacketCounters::default(),
            now_ns: 0,
            skips: Vec::new(),
        }
    }

    /// From now on, say which bodies need not be captured ([`Self::skips`]).
    pub fn ask_skips(&mut self) {
        self.http.ask_skips();
    }

    /// Bodies found since the last call that need not be captured.
    pub fn skips(&mut self) -> std::vec::Drain<'_, SkipHint> {
        self.skips.drain(..)
    }

    /// The parsers' bodies ahead, in the sequence numbers of their streams.
    fn take_bodies_ahead(&mut self) {
        let Some(ahead) = self.http.bodies_ahead.as_mut() else {
            return;
        };
        for b in ahead.drain(..) {
            if let Some(seq) = self.flows.wire_seq(b.src, b.dst, b.offset) {
                self.skips.push(SkipHint {
                    src: b.src,
                    dst: b.dst,
                    seq,
                    len: b.len,
                });
            }
        }
    }

    /// One frame through every layer. Returns the segment's head when it closes a connection
    /// (FIN or RST), for the live source to forget it in the kernel (see
    /// [`crate::capture::PacketSource::observe`]); the frame is decoded once, here.
    pub fn packet(&mut self, p: &Packet<'_>) -> Option<Segment<'static>> {
        let seg = self.decode(p)?;
        self.flows.feed(p.ts_ns, &seg, &mut self.http);
        self.take_bodies_ahead();
        seg.closing()
    }

    /// Counts a frame and decodes it; `None` (counted) when it carries no TCP segment. With
    /// [`Self::feed_decoded`], for feeding the segment to another pipeline ([`crate::session::parallel`]).
    pub fn decode<'a>(&mut self, p: &Packet<'a>) -> Option<Segment<'a>> {
        self.counters.packets += 1;
        self.counters.bytes += p.data.len() as u64;
        // Capture clocks can step back a few microseconds; time downstream never does.
        self.now_ns = self.now_ns.max(p.ts_ns);
        match decode::decode_packet(p) {
            Ok(seg) => {
                self.counters.tcp_segments += 1;
                self.counters.payload_bytes += seg.payload.len() as u64;
                self.counters.uncaptured_bytes += u64::from(seg.uncaptured);
                Some(seg)
            }
            Err(DecodeError::NotTcp) => {
                self.counters.not_tcp += 1;
                None
            }
            Err(_) => {
                self.counters.decode_errors += 1;
                None
            }
        }
    }

    /// Feeds a segment another pipeline decoded (its frame is counted there).
    pub fn feed_decoded(&mut self, ts_ns: u64, seg: &Segment<'_>) {
        self.now_ns = self.now_ns.max(ts_ns);
        self.flows.feed(ts_ns, seg, &mut self.http);
    }

    /// Ends the capture: every connection closes and what it had pending goes to `each`, with
    /// what was not drained yet. A batch of connections at a time: closing 100 000 at once would
    /// hold all their exchanges at once (15 MB, a quarter of the memory bound).
    pub fn finish(&mut self, mut each: impl FnMut(Exchange)) {
        loop {
            let more = self.flows.finish_some(self.now_ns, &mut self.http, 1024);
            self.http.exchanges.drain(..).for_each(&mut each);
            if !more {
                break;
            }
        }
    }

    /// Takes the request-line buffers in `spare` (those of exchanges it made, delivered) for
    /// the next requests' lines.
    pub fn reuse_lines(&mut self, spare: &mut SpareLines) {
        self.http.spare.take_all(spare);
    }

    /// Whether exchanges completed since the last [`Self::drain`].
    pub fn has_exchanges(&self) -> bool {
        !self.http.exchanges.is_empty()
    }

    /// Exchanges completed since the last call, swapped into `into` (empty), whose room the
    /// pipeline keeps for the next ones.
    pub fn take_exchanges(&mut self, into: &mut Vec<Exchange>) {
        debug_assert!(into.is_empty());
        std::mem::swap(&mut self.http.exchanges, into);
    }

    /// Exchanges completed since the last call.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Exchange> {
        self.http.exchanges.drain(..)
    }

    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    pub fn counters(&self) -> PacketCounters {
        self.counters
    }

    pub fn flow_stats(&self) -> FlowStats {
        self.flows.stats()
    }

    pub fn http_stats(&self) -> HttpStats {
        self.http.stats
    }

    pub fn totals(&self) -> Totals {
        Totals {
            counters: self.counters,
            flows: self.flow_stats(),
            http: self.http.stats,
        }
    }
}

/// Runs a whole capture file through a fresh pipeline; returns every exchange and the pipeline
/// (for its counters). For tests.
#[cfg(test)]
pub(crate) fn read_file(path: &std::path::Path) -> (Vec<Exchange>, Pipeline) {
    use crate::capture::{Next, PacketSource, file::FileSource};
    let mut src = FileSource::open(path).unwrap();
    let mut p = Pipeline::new(FlowConfig::default());
    let mut out = Vec::new();
    while let Next::Packet(pkt) = src.next_packet(std::time::Duration::ZERO).unwrap() {
        p.packet(&pkt);
        out.extend(p.drain());
    }
    p.finish(|e| out.push(e));
    (out, p)
}
