//! What every layer shares about a captured frame: its link type, when it was captured, which way
//! it went. A leaf: the sources produce [`Packet`]s, decode reads them, outputs print them, and
//! none of those has to import another for it.

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
    Received,
    /// Sent by this host.
    Sent,
    /// Files do not say.
    Unknown,
}

/// What a reader tells a live source it need not capture: payload bytes of the TCP stream `src`
/// sends to `dst`, `len` of them from sequence number `seq` (a body it counts without seeing).
/// The kernel filter then keeps only the headers of packets whose payload lies wholly inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkipHint {
    pub src: std::net::SocketAddr,
    pub dst: std::net::SocketAddr,
    pub seq: u32,
    pub len: u32,
}

/// Bytes a source's frames lie in that another thread may go on reading after the source has
/// moved past them (a capture file's read window): the parallel engine hands its workers
/// payloads where they lie instead of copying them. Immutable while shared: the source reuses
/// the buffer only once no one else holds it.
#[derive(Clone)]
pub struct Shared(std::sync::Arc<Vec<u8>>);

impl Shared {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(std::sync::Arc::new(bytes))
    }

    /// The buffer back, when no one else holds it.
    pub fn into_unshared(self) -> Result<Vec<u8>, Self> {
        std::sync::Arc::try_unwrap(self.0).map_err(Self)
    }

    /// Whether no one else holds it.
    pub fn is_unshared(&self) -> bool {
        std::sync::Arc::strong_count(&self.0) == 1
    }

    /// Where `part` starts in these bytes, when it lies wholly inside them.
    pub fn offset_of(&self, part: &[u8]) -> Option<usize> {
        let at = (part.as_ptr() as usize).checked_sub(self.0.as_ptr() as usize)?;
        (at + part.len() <= self.0.len()).then_some(at)
    }

    /// Whether both are the same buffer.
    pub fn same(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for Shared {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A megabyte of frames: only its size.
        write!(f, "Shared({} bytes)", self.0.len())
    }
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
    /// The buffer `data` lies in, when the source lets others hold it ([`Shared`]).
    pub shared: Option<&'a Shared>,
}
