//! Where packets come from: a live `AF_PACKET` ring behind the kernel filter ([`live`]) or a
//! pcap/pcapng file ([`file`]). Both implement [`PacketSource`], so everything after capture runs the
//! same on either, and every test of the pipeline can run from a file without root.

pub mod file;
pub mod live;
pub mod privs;
mod ring;

use std::time::Duration;

use crate::packet::Packet;

/// What a call to [`PacketSource::next_packet`] produced.
#[derive(Debug)]
pub enum Next<'a> {
    Packet(Packet<'a>),
    /// Nothing arrived within the timeout (live sources only).
    Idle,
    /// The source is exhausted (end of file).
    End,
}

crate::counters! {
    /// Counters a source keeps about itself.
    pub struct CaptureStats {
        /// Frames the kernel could not queue because the ring was full (`PACKET_STATISTICS`).
        ring_drops: "ring_drops" Counter,
        /// Packets the kernel filter ran on (live only).
        filter_seen: "filter_seen" Counter,
        /// Packets the kernel filter kept (live only).
        filter_kept: "filter_kept" Counter,
        /// Times the filter could not record a connection (live only).
        filter_insert_failed: "filter_insert_failed" Counter,
        /// Stretches of body the reader asked the filter to skip (live only).
        skip_requests: "skip_requests" Counter,
        /// Packets the filter kept cut to their headers, their payload a skipped body (live only).
        filter_skipped: "filter_skipped" Counter,
        /// The payload bytes of those packets, never copied to userspace (live only).
        filter_skipped_bytes: "filter_skipped_bytes" Counter,
        /// Stretches the filter set itself from a response head it read (live only).
        filter_head_stretches: "filter_head_stretches" Counter,
        /// Response heads the filter let pass unread on connections of small answers (live only).
        filter_heads_unread: "filter_heads_unread" Counter,
        /// Connection directions the filter's map holds now (live only).
        tracked_conns: "tracked_conns" Gauge,
        /// Records a file reader had to skip (corrupt or cut short).
        bad_records: "bad_records" Counter,
        /// Frames a file holds for an interface whose link type http-top does not decode (pcapng).
        unsupported_link: "unsupported_link" Counter,
    }
}

/// Counters only a file reader keeps; the others only a live source.
const FILE_ONLY: [&str; 2] = ["bad_records", "unsupported_link"];

impl CaptureStats {
    /// The counters that mean something for a live source (`live`) or a file.
    pub fn shown(&self, live: bool) -> impl Iterator<Item = crate::counters::Counter> {
        self.list()
            .filter(move |c| FILE_ONLY.contains(&c.name) != live)
    }
}

/// A producer of captured frames.
pub trait PacketSource {
    /// The next frame, waiting at most `timeout` for one (files never wait).
    fn next_packet(&mut self, timeout: Duration) -> anyhow::Result<Next<'_>>;
    /// Names of the interfaces or the file, indexed by [`Packet::iface`].
    fn interfaces(&self) -> &[String];
    /// Counters so far. Takes `&mut self` because reading kernel counters resets them.
    fn stats(&mut self) -> CaptureStats;
    /// Why the source ended early, if it did (a file's unreadable record).
    fn problem(&self) -> Option<&str> {
        None
    }
    /// How much of a finite source has been read, 0.0 to 1.0 (None for live sources).
    fn progress(&self) -> Option<f64> {
        None
    }
    /// A segment that closes a connection (FIN or RST), as decoded by the consumer: the live
    /// source forgets closed connections in the kernel's table. Every consumer of a live source
    /// passes on what [`crate::pipeline::Pipeline::packet`] returns.
    fn observe(&mut self, _closing: &crate::decode::Segment<'_>) {}
    /// Whether the source can leave out bodies the reader does not need ([`Self::skip_body`]).
    fn skips_bodies(&self) -> bool {
        false
    }
    /// A body the reader counts without seeing: the live source tells the kernel filter to cut
    /// its packets to their headers. Every consumer of a live source passes on what
    /// [`crate::pipeline::Pipeline::skips`] yields.
    fn skip_body(&mut self, _hint: &crate::packet::SkipHint) {}
    /// Sources to be read on threads of their own, taken from this one, which goes on counting
    /// for them (a live capture's fanout rings, `--fanout`); empty for most sources.
    fn split(&mut self) -> Vec<Box<dyn PacketSource + Send>> {
        Vec::new()
    }
}
