//! Where packets come from: a live `AF_PACKET` ring behind the kernel filter ([`live`]) or a
//! pcap/pcapng file ([`file`]). Both implement [`PacketSource`], so everything after capture runs the
//! same on either, and every test of the pipeline can run from a file without root.

pub mod file;
pub mod live;
pub mod privs;

use std::time::Duration;

/// How a frame's bytes start. The live source only produces [`LinkType::Ethernet`]; files may hold any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// Ethernet II (also what `AF_PACKET` gives for `lo`, veth, bridges, bonds).
    Ethernet,
    /// IPv4 or IPv6 with no link header.
    RawIp,
    /// Linux cooked capture v1 (`tcpdump -i any`).
    LinuxSll,
    /// Linux cooked capture v2.
    LinuxSll2,
    /// BSD loopback, family in host byte order.
    Null,
    /// OpenBSD loopback, family in network byte order.
    Loop,
}

/// Which way a packet crossed the interface, as far as the source knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Received by this host (or another host on a promiscuous segment).
    In,
    /// Sent by this host.
    Out,
    /// Files do not say.
    Unknown,
}

/// One captured frame, borrowed from the source until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    pub link: LinkType,
    /// The captured bytes (at most the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: u32,
    /// Index into [`PacketSource::interfaces`].
    pub iface: usize,
    pub direction: Direction,
}

/// What a call to [`PacketSource::next_packet`] produced.
#[derive(Debug)]
pub enum Next<'a> {
    Packet(Packet<'a>),
    /// Nothing arrived within the timeout (live sources only).
    Idle,
    /// The source is exhausted (end of file).
    End,
}

/// Counters a source keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames handed to the program.
    pub packets: u64,
    /// Frames the kernel could not queue because the ring was full (`PACKET_STATISTICS`).
    pub ring_drops: u64,
    /// Packets the kernel filter ran on (live only).
    pub filter_seen: u64,
    /// Packets the kernel filter kept (live only).
    pub filter_kept: u64,
    /// Times the filter could not record a connection (live only).
    pub filter_insert_failed: u64,
    /// Connection directions the filter's map holds now (live only).
    pub tracked_conns: u64,
    /// Records a file reader had to skip (corrupt or cut short).
    pub bad_records: u64,
    /// Frames a file holds for an interface whose link type http-top does not decode (pcapng).
    pub unsupported_link: u64,
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
}
