//! The one place the kernel filter's object is embedded, loaded and attached, and its maps handled.

use std::{collections::HashMap as StdHashMap, io, os::fd::AsFd, time::Duration};

use anyhow::{Context, anyhow};
use aya::{
    Ebpf, EbpfError,
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{ProgramError, SocketFilter, socket_filter::SocketFilterError},
};
use http_top_common::{
    CONFIG_MAP, CONFIG_PORT_FILTER, CONFIG_SKIP_BODIES, CONN_MAP, ConnKey, ConnValue, PORT_MAP,
    PORT_MAP_CAPACITY, STAT_HEAD_STRETCHES, STAT_HEADS_UNREAD, STAT_INSERT_FAILED, STAT_KEPT_CONN,
    STAT_KEPT_START, STAT_SEEN, STAT_SKIPPED, STAT_SKIPPED_BYTES, STATS_MAP, replaces_stretch,
};

use crate::{
    decode::{Segment, tcp_flags},
    packet::SkipHint,
};

/// The compiled `ebpf/` crate, built by `build.rs`.
static FILTER_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/http-filter"));
const PROGRAM: &str = "http_filter";

/// What to tell a user who lacks the privileges to load or attach the filter.
pub const NEED_ROOT: &str = "live capture needs root (or CAP_BPF + CAP_PERFMON + CAP_NET_RAW + \
     CAP_NET_ADMIN): run it with sudo, e.g. `sudo http-top -i IFACE`";

/// Map update flag: only replace an existing entry (linux/bpf.h).
const BPF_EXIST: u64 = 2;

/// `CAP_PERFMON`'s bit in the capability sets (linux/capability.h).
const CAP_PERFMON: u32 = 38;

/// Whether this process holds `CAP_PERFMON`. Without it (CAP_BPF alone) the verifier loads the
/// program as it would an unprivileged one, with Spectre mitigations that refuse what the filter
/// does with its stack, and says only EACCES.
fn has_perfmon() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_PERFMON) != 0)
}

/// Counters read from the filter's per-CPU stats map, summed over CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FilterCounters {
    pub seen: u64,
    pub kept_start: u64,
    pub kept_conn: u64,
    pub insert_failed: u64,
    pub skipped: u64,
    pub skipped_bytes: u64,
    pub head_stretches: u64,
    pub heads_unread: u64,
}

/// The loaded filter and its maps. Dropping it detaches nothing by itself: the program stays attached
/// to each socket until the socket closes.
pub struct KernelFilter {
    /// Owns the loaded program (attached per socket by [`Self::attach`]).
    ebpf: Ebpf,
    conns: HashMap<MapData, ConnKey, ConnValue>,
    stats: PerCpuArray<MapData, u64>,
    /// FIN bits seen per connection (keyed by the direction that sent the first one), to delete the
    /// map entries once both sides have closed.
    closing: StdHashMap<ConnKey, u8>,
}

fn is_permission(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES))
}

impl KernelFilter {
    /// Loads the program into the kernel and fills the port set (empty = every port);
    /// `skip_bodies`: the filter may cut body bytes (from the heads it reads, and the stretches
    /// userspace writes).
    pub fn load(ports: &[u16], skip_bodies: bool) -> anyhow::Result<Self> {
        let mut ebpf = Ebpf::load(FILTER_OBJECT).map_err(|e| match &e {
            EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. })
                if is_permission(io_error) =>
            {
                anyhow!("loading the eBPF filter: {io_error}: {NEED_ROOT}")
            }
            _ => anyhow::Error::new(e).context("loading the eBPF filter"),
        })?;
        let prog: &mut SocketFilter = ebpf
            .program_mut(PROGRAM)
            .context("eBPF object has no http_filter program")?
            .try_into()?;
        prog.load().map_err(|e| match &e {
            // EACCES from BPF_PROG_LOAD is the verifier saying no, not a missing privilege.
            ProgramError::LoadError { io_error, .. }
                if io_error.raw_os_error() == Some(libc::EPERM) =>
            {
                anyhow!("loading the eBPF filter: {io_error}: {NEED_ROOT}")
            }
            ProgramError::LoadError { io_error, .. } if !has_perfmon() => {
                anyhow!("loading the eBPF filter: {io_error} (CAP_PERFMON is missing): {NEED_ROOT}")
            }
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } => {
                anyhow!("the kernel rejected the eBPF filter: {io_error}\n{verifier_log}")
            }
            _ => anyhow::Error::new(e).context("the kernel rejected the eBPF filter"),
        })?;

        let mut ports_map: HashMap<_, u16, u8> =
            HashMap::try_from(ebpf.take_map(PORT_MAP).context("no port map")?)?;
        if ports.len() > PORT_MAP_CAPACITY as usize {
            anyhow::bail!("at most {PORT_MAP_CAPACITY} ports may be given with --port");
        }
        for &p in ports {
            ports_map.insert(p, 1, 0)?;
        }
        let mut config: Array<_, u32> =
            Array::try_from(ebpf.take_map(CONFIG_MAP).context("no config map")?)?;
        config.set(CONFIG_PORT_FILTER, u32::from(!ports.is_empty()), 0)?;
        config.set(CONFIG_SKIP_BODIES, u32::from(skip_bodies), 0)?;

        let conns = HashMap::try_from(ebpf.take_map(CONN_MAP).context("no connection map")?)?;
        let stats = PerCpuArray::try_from(ebpf.take_map(STATS_MAP).context("no stats map")?)?;
        Ok(Self {
            ebpf,
            conns,
            stats,
            closing: StdHashMap::new(),
        })
    }

    /// Attaches the filter to a socket (before it is bound, so no unfiltered packet is queued).
    pub fn attach<S: AsFd>(&self, socket: S) -> anyhow::Result<()> {
        let prog: &SocketFilter = self
            .ebpf
            .program(PROGRAM)
            .context("eBPF object has no http_filter program")?
            .try_into()?;
        prog.attach(socket).map_err(|e| match &e {
            ProgramError::SocketFilterError(SocketFilterError::SetsockoptError {
                io_error,
                ..
            }) if is_permission(io_error) => {
                anyhow!("attaching the eBPF filter: {io_error}: {NEED_ROOT}")
            }
            _ => anyhow::Error::new(e).context("attaching the eBPF filter to the capture socket"),
        })
    }

    /// The filter's own counters.
    pub fn counters(&self) -> FilterCounters {
        let sum = |i: u32| -> u64 { self.stats.get(&i, 0).map(|v| v.iter().sum()).unwrap_or(0) };
        FilterCounters {
            seen: sum(STAT_SEEN),
            kept_start: sum(STAT_KEPT_START),
            kept_conn: sum(STAT_KEPT_CONN),
            insert_failed: sum(STAT_INSERT_FAILED),
            skipped: sum(STAT_SKIPPED),
            skipped_bytes: sum(STAT_SKIPPED_BYTES),
            head_stretches: sum(STAT_HEAD_STRETCHES),
            heads_unread: sum(STAT_HEADS_UNREAD),
        }
    }

    /// Connection directions the filter currently holds.
    pub fn tracked(&self) -> u64 {
        self.conns.keys().filter(Result::is_ok).count() as u64
    }

    /// Watches a kept segment for the end of its connection and forgets the connection in the kernel
    /// once both sides sent FIN, or either sent RST, so the table only holds live connections.
    pub fn observe(&mut self, seg: &Segment<'_>) {
        if seg.flags & (tcp_flags::FIN | tcp_flags::RST) == 0 {
            return;
        }
        let key = conn_key(seg);
        if seg.flags & tcp_flags::RST != 0 {
            self.forget(&key);
            return;
        }
        // Bit 0: FIN from the side that sent the first FIN; bit 1: FIN from the other side.
        let rev = key.reversed();
        if let Some(bits) = self.closing.get_mut(&rev) {
            *bits |= 2;
            if *bits == 3 {
                self.forget(&key);
            }
        } else {
            // Bounded: a FIN whose peer never answers is cleaned up by `expire_idle`.
            self.closing.entry(key).or_insert(1);
        }
    }

    /// Writes a stretch of body to skip into its direction's entry, unless the entry holds one
    /// it must not replace (`common::replaces_stretch`: the filter started it from the head
    /// itself, or it is a later body's); `false` when the filter no longer holds the connection
    /// (closed, or evicted from the LRU map), which then needs none.
    ///
    /// Read, then written whole: a field the filter changes in between is lost. The filter's HEAD
    /// flag lives in the client's direction, which gets a stretch only for a request body (an
    /// upload of at least 32 KiB on a connection that also asks HEAD, in the same
    /// microseconds); its answer would then cost a counted gap at worst. The response
    /// direction's flags count the heads the filter read and lets pass (`common::head_unread`):
    /// a step lost there only changes which heads the filter reads.
    pub fn skip(&mut self, hint: &SkipHint) -> bool {
        let key = key_of(hint.src, hint.dst);
        let Ok(mut v) = self.conns.get(&key, 0) else {
            return false;
        };
        if !replaces_stretch(v.skip_seq, v.skip_len, hint.seq, hint.len) {
            return true;
        }
        v.skip_seq = hint.seq;
        v.skip_len = hint.len;
        // BPF_EXIST: never recreate an entry the filter or a close removed meanwhile.
        self.conns.insert(key, v, BPF_EXIST).is_ok()
    }

    fn forget(&mut self, key: &ConnKey) {
        let rev = key.reversed();
        // Either entry may already be gone (LRU eviction, or the other side's RST).
        let _ = self.conns.remove(key);
        let _ = self.conns.remove(&rev);
        self.closing.remove(key);
        self.closing.remove(&rev);
    }

    /// Deletes connections the filter has kept no packet of for `idle`. Returns how many directions
    /// were removed.
    pub fn expire_idle(&mut self, idle: Duration) -> usize {
        let now = monotonic_ns();
        let idle_ns = u64::try_from(idle.as_nanos()).unwrap_or(u64::MAX);
        let stale: Vec<ConnKey> = self
            .conns
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, v)| now.saturating_sub(v.last_seen_ns) > idle_ns)
            .map(|(k, _)| k)
            .collect();
        for k in &stale {
            let _ = self.conns.remove(k);
            self.closing.remove(k);
        }
        // A half-closed connection whose map entries are gone needs no more watching.
        let conns = &self.conns;
        self.closing.retain(|k, _| conns.get(k, 0).is_ok());
        stale.len()
    }
}

/// The filter's map key for the direction a segment travelled.
pub fn conn_key(seg: &Segment<'_>) -> ConnKey {
    key_of(seg.src, seg.dst)
}

/// The filter's map key for the direction from `src` to `dst`.
fn key_of(src: std::net::SocketAddr, dst: std::net::SocketAddr) -> ConnKey {
    let mut key = ConnKey {
        src_port: src.port(),
        dst_port: dst.port(),
        ..ConnKey::default()
    };
    match (src.ip(), dst.ip()) {
        (std::net::IpAddr::V4(s), std::net::IpAddr::V4(d)) => {
            key.src_addr[..4].copy_from_slice(&s.octets());
            key.dst_addr[..4].copy_from_slice(&d.octets());
            key.family = http_top_common::FAMILY_IPV4;
        }
        (s, d) => {
            key.src_addr = to_v6(s);
            key.dst_addr = to_v6(d);
            key.family = http_top_common::FAMILY_IPV6;
        }
    }
    key
}

fn to_v6(ip: std::net::IpAddr) -> [u8; 16] {
    match ip {
        std::net::IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        std::net::IpAddr::V6(v6) => v6.octets(),
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the clock `bpf_ktime_get_ns` reads.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[test]
    fn conn_key_matches_the_kernel_layout_for_ipv4() {
        let seg = Segment {
            src: "10.1.2.3:40000".parse::<SocketAddr>().unwrap(),
            dst: "10.9.8.7:80".parse().unwrap(),
            seq: 0,
            ack: 0,
            flags: 0,
            payload: b"",
            uncaptured: 0,
        };
        let k = conn_key(&seg);
        // The filter copies the four address bytes into the start of the 16-byte field, network
        // order, and leaves the rest zero.
        assert_eq!(&k.src_addr[..4], &[10, 1, 2, 3]);
        assert_eq!(&k.src_addr[4..], &[0; 12]);
        assert_eq!(&k.dst_addr[..4], &[10, 9, 8, 7]);
        assert_eq!((k.src_port, k.dst_port), (40000, 80));
        assert_eq!(k.family, http_top_common::FAMILY_IPV4);
        assert_eq!(k.pad, [0; 3]);
    }

    #[test]
    fn conn_key_for_ipv6_uses_all_sixteen_bytes() {
        let seg = Segment {
            src: "[fd00::1]:80".parse::<SocketAddr>().unwrap(),
            dst: "[fd00::2]:5555".parse().unwrap(),
            seq: 0,
            ack: 0,
            flags: 0,
            payload: b"",
            uncaptured: 0,
        };
        let k = conn_key(&seg);
        assert_eq!(k.src_addr[0], 0xfd);
        assert_eq!(k.src_addr[15], 1);
        assert_eq!(k.dst_addr[15], 2);
        assert_eq!(k.family, http_top_common::FAMILY_IPV6);
    }
}
