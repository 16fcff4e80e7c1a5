//! Live capture: one `AF_PACKET` socket per interface with the kernel filter attached and a
//! `PACKET_MMAP` `TPACKET_V3` receive ring, so kept packets reach userspace without a copy or a
//! syscall per packet.
//!
//! The order of set-up matters: the socket is created with protocol 0 (it receives nothing), the
//! filter is attached, the ring is mapped, and only then is it bound to the interface with
//! `ETH_P_ALL` — so no unfiltered packet is ever queued
//! (Documentation/networking/packet_mmap.rst; net/packet/af_packet.c, `packet_do_bind`).
//!
//! This file, `ring.rs` and `privs.rs` are the only places in userspace with `unsafe`: the socket calls and the
//! reads of the shared ring.

use std::{
    io,
    os::fd::AsRawFd,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::{CaptureStats, Next, PacketSource, ring::Ring};
use crate::{bpf::KernelFilter, decode::Segment, packet::SkipHint};

/// How often connections idle in the kernel map are swept, at most (a short `--idle-timeout` sweeps
/// more often, at half the timeout).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Options for opening a live capture.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub interfaces: Vec<String>,
    /// Only these TCP ports (empty: any).
    pub ports: Vec<u16>,
    /// Ring size per interface in MiB.
    pub ring_mb: u32,
    /// Connections with no kept packet for this long are removed from the kernel map.
    pub idle_timeout: Duration,
    /// Let the kernel filter cut body bytes the reader does not need (`--no-skip` turns it off).
    pub skip_bodies: bool,
    /// Rings per interface: above 1, a `PACKET_FANOUT` group spreads the interface's flows over
    /// them, each to be read on a thread of its own ([`PacketSource::split`]).
    pub fanout: u16,
}

/// What a reader tells the kernel filter: connections that closed, bodies it need not copy. Shared
/// by the source and the rings split off it, each read on its own thread.
#[derive(Clone)]
struct Feedback {
    filter: Arc<Mutex<KernelFilter>>,
    skip_bodies: bool,
    /// Stretches written to the filter, by every reader.
    skip_requests: Arc<AtomicU64>,
}

impl Feedback {
    fn filter(&self) -> MutexGuard<'_, KernelFilter> {
        // A reader thread that panicked left the maps as consistent as the kernel keeps them.
        self.filter.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn observe(&self, closing: &Segment<'_>) {
        self.filter().observe(closing);
    }

    fn skip(&self, hint: &SkipHint) {
        if self.skip_bodies && self.filter().skip(hint) {
            self.skip_requests.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Live capture on one or more interfaces.
pub struct LiveSource {
    feedback: Feedback,
    rings: Vec<Ring>,
    /// The interface (index into `names`) of each ring.
    ring_iface: Vec<usize>,
    /// Drop counts of the rings split off to fanout readers, which keep them current.
    split_drops: Vec<Arc<AtomicU64>>,
    fanout: u16,
    names: Vec<String>,
    /// Ring to try first, so one busy interface cannot starve the others.
    turn: usize,
    idle_timeout: Duration,
    last_sweep: Instant,
}

impl LiveSource {
    /// Loads the filter, opens a ring on every interface and binds them. Needs root.
    pub fn open(opts: &LiveOptions) -> anyhow::Result<Self> {
        if opts.interfaces.is_empty() {
            bail!("no interface given");
        }
        let filter = KernelFilter::load(&opts.ports, opts.skip_bodies)?;
        let mut rings = Vec::new();
        let mut ring_iface = Vec::new();
        let fanout = opts.fanout.max(1);
        for (i, iface) in opts.interfaces.iter().enumerate() {
            // One group per interface, its id unique to this process.
            let group = (fanout > 1).then(|| (std::process::id() as u16).wrapping_add(i as u16));
            for _ in 0..fanout {
                rings.push(
                    Ring::open(iface, &filter, opts.ring_mb, group)
                        .with_context(|| format!("capturing on {iface}"))?,
                );
                ring_iface.push(i);
            }
        }
        Ok(Self {
            feedback: Feedback {
                filter: Arc::new(Mutex::new(filter)),
                skip_bodies: opts.skip_bodies,
                skip_requests: Arc::default(),
            },
            rings,
            ring_iface,
            split_drops: Vec::new(),
            fanout,
            names: opts.interfaces.clone(),
            turn: 0,
            idle_timeout: opts.idle_timeout,
            last_sweep: Instant::now(),
        })
    }

    fn take_ready(&mut self) -> Option<(usize, usize)> {
        let n = self.rings.len();
        for i in 0..n {
            let r = (self.turn + i) % n;
            if let Some(off) = self.rings[r].next_offset() {
                self.turn = (r + 1) % n;
                return Some((r, off));
            }
        }
        None
    }

    fn wait(&self, timeout: Duration) -> anyhow::Result<()> {
        let mut fds: Vec<libc::pollfd> = self
            .rings
            .iter()
            .map(|r| libc::pollfd {
                fd: r.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            })
            .collect();
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `fds` is a valid array of the length passed.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if r < 0 {
            let e = io::Error::last_os_error();
            // A signal (Ctrl-C) interrupts the wait; the caller checks its stop flag.
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e).context("waiting for packets");
            }
        }
        Ok(())
    }

    fn maintain(&mut self) {
        if self.last_sweep.elapsed() >= SWEEP_EVERY.min(self.idle_timeout / 2) {
            self.last_sweep = Instant::now();
            self.feedback.filter().expire_idle(self.idle_timeout);
        }
    }
}

impl PacketSource for LiveSource {
    fn next_packet(&mut self, timeout: Duration) -> anyhow::Result<Next<'_>> {
        self.maintain();
        let found = match self.take_ready() {
            Some(x) => Some(x),
            None => {
                self.wait(timeout)?;
                self.take_ready()
            }
        };
        let Some((r, off)) = found else {
            return Ok(Next::Idle);
        };
        Ok(Next::Packet(
            self.rings[r].packet_at(off, self.ring_iface[r]),
        ))
    }

    fn observe(&mut self, closing: &Segment<'_>) {
        self.feedback.observe(closing);
    }

    fn skips_bodies(&self) -> bool {
        self.feedback.skip_bodies
    }

    fn skip_body(&mut self, hint: &SkipHint) {
        self.feedback.skip(hint);
    }

    fn split(&mut self) -> Vec<Box<dyn PacketSource + Send>> {
        if self.fanout <= 1 {
            return Vec::new();
        }
        let rings = std::mem::take(&mut self.rings);
        let ifaces = std::mem::take(&mut self.ring_iface);
        rings
            .into_iter()
            .zip(ifaces)
            .map(|(ring, iface)| {
                let drops = Arc::new(AtomicU64::new(0));
                self.split_drops.push(drops.clone());
                Box::new(FanoutRing {
                    ring,
                    iface,
                    names: self.names.clone(),
                    drops,
                    feedback: self.feedback.clone(),
                }) as Box<dyn PacketSource + Send>
            })
            .collect()
    }

    fn interfaces(&self) -> &[String] {
        &self.names
    }

    fn stats(&mut self) -> CaptureStats {
        let ring_drops = self.rings.iter_mut().map(Ring::read_drops).sum::<u64>()
            + self
                .split_drops
                .iter()
                .map(|d| d.load(Ordering::Relaxed))
                .sum::<u64>();
        let filter = self.feedback.filter();
        let c = filter.counters();
        CaptureStats {
            ring_drops,
            filter_seen: c.seen,
            filter_kept: c.kept_start + c.kept_conn,
            filter_insert_failed: c.insert_failed,
            skip_requests: self.feedback.skip_requests.load(Ordering::Relaxed),
            filter_skipped: c.skipped,
            filter_skipped_bytes: c.skipped_bytes,
            filter_head_stretches: c.head_stretches,
            filter_heads_unread: c.heads_unread,
            tracked_conns: filter.tracked(),
            ..CaptureStats::default()
        }
    }
}

/// One ring of a fanout group, split off a [`LiveSource`] to be read on a thread of its own: its
/// reader tells the shared filter about closing connections and bodies to skip, and keeps the
/// ring's drop count where the source reports it.
struct FanoutRing {
    ring: Ring,
    iface: usize,
    names: Vec<String>,
    drops: Arc<AtomicU64>,
    feedback: Feedback,
}

impl PacketSource for FanoutRing {
    fn next_packet(&mut self, timeout: Duration) -> anyhow::Result<Next<'_>> {
        let off = match self.ring.next_offset() {
            Some(off) => Some(off),
            None => {
                let mut fd = libc::pollfd {
                    fd: self.ring.fd.as_raw_fd(),
                    events: libc::POLLIN | libc::POLLERR,
                    revents: 0,
                };
                let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
                // SAFETY: one valid pollfd. An interrupted wait is just an early return.
                unsafe { libc::poll(&raw mut fd, 1, ms) };
                self.ring.next_offset()
            }
        };
        Ok(match off {
            Some(off) => Next::Packet(self.ring.packet_at(off, self.iface)),
            None => Next::Idle,
        })
    }

    fn interfaces(&self) -> &[String] {
        &self.names
    }

    fn stats(&mut self) -> CaptureStats {
        let ring_drops = self.ring.read_drops();
        self.drops.store(ring_drops, Ordering::Relaxed);
        CaptureStats {
            ring_drops,
            ..CaptureStats::default()
        }
    }

    fn observe(&mut self, closing: &Segment<'_>) {
        self.feedback.observe(closing);
    }

    fn skips_bodies(&self) -> bool {
        self.feedback.skip_bodies
    }

    fn skip_body(&mut self, hint: &SkipHint) {
        self.feedback.skip(hint);
    }
}
