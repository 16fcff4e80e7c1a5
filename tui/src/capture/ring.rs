//! One `PACKET_MMAP` `TPACKET_V3` receive ring on one interface: the socket set-up (in the order
//! that keeps unfiltered packets out, see `live.rs`), and the reads of the shared blocks.
//!
//! With `live.rs` and `privs.rs`, the only places in userspace with `unsafe`.

use std::{
    ffi::CString,
    io,
    os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};

use anyhow::{Context, bail};

use crate::{
    bpf::{KernelFilter, NEED_ROOT},
    packet::{Direction, LinkType, Packet},
};

/// Ring geometry. Blocks must hold the largest frame (GSO super-frames on veth and bridges reach
/// 64 KiB; a BIG TCP frame past the block is cut to it, its missing bytes counted as uncaptured),
/// so they are 128 KiB; frames are variable-sized inside a block in V3. Small blocks hand a
/// response's head to userspace soon after it arrives, so fewer of its body's bytes are copied
/// before the filter skips them (measured at wrk's full rate of 5 MiB bodies: 9.8% of the bytes
/// copied with 256 KiB blocks, 7.2-7.5% with 128 KiB; in the curl test 1 MiB blocks copied 5.0%
/// against 2.3-3.7% with 256 KiB).
pub const BLOCK_SIZE: u32 = 1 << 17;
/// Nominal frame size, only used to tell the kernel how many frames a block "has" (V3 ignores it
/// otherwise); must be a multiple of `TPACKET_ALIGNMENT`.
const FRAME_SIZE: u32 = 2048;
/// How long the kernel waits before handing over a block that is not full, in ms: bounds the
/// latency a quiet interface adds to the display.
const BLOCK_TIMEOUT_MS: u32 = 10;
/// The kernel's interface types http-top can read (`/sys/class/net/IF/type`, include/uapi/linux/if_arp.h).
const ARPHRD_ETHER: u32 = 1;
/// `enum tpacket_versions` in include/uapi/linux/if_packet.h.
const TPACKET_V3: libc::c_int = 2;
const ARPHRD_LOOPBACK: u32 = 772;

/// One mapped `TPACKET_V3` ring on one interface.
pub(super) struct Ring {
    pub(super) fd: OwnedFd,
    pub(super) map: NonNull<u8>,
    pub(super) map_len: usize,
    pub(super) block_nr: u32,
    /// Block being walked, and where in it.
    pub(super) block: u32,
    pub(super) in_block: bool,
    pub(super) pkts_left: u32,
    pub(super) next_off: usize,
    /// PACKET_STATISTICS resets on every read; these accumulate.
    pub(super) drops: u64,
}

// SAFETY: the ring is only touched through `&mut self`; the raw pointer is a private mapping owned by
// this value.
unsafe impl Send for Ring {}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `map` and `map_len` are exactly what mmap returned.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

fn os_err(what: &str) -> anyhow::Error {
    let e = io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
        anyhow::anyhow!("{what}: {e}: {NEED_ROOT}")
    } else {
        anyhow::Error::new(e).context(what.to_owned())
    }
}

fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
    what: &str,
) -> anyhow::Result<()> {
    // SAFETY: `val` points to a live `T` of the size passed.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::from_ref(val).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 { Err(os_err(what)) } else { Ok(()) }
}

impl Ring {
    /// `fanout`: the `PACKET_FANOUT` group this socket joins, which spreads the interface's
    /// packets over its members by a hash of their flow, the same for both directions.
    pub(super) fn open(
        iface: &str,
        filter: &KernelFilter,
        ring_mb: u32,
        fanout: Option<u16>,
    ) -> anyhow::Result<Self> {
        let cname = CString::new(iface).context("interface name contains a NUL byte")?;
        // SAFETY: valid C string.
        let ifindex = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if ifindex == 0 {
            bail!("no such interface: {iface}");
        }
        let hw_type: u32 = std::fs::read_to_string(format!("/sys/class/net/{iface}/type"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(ARPHRD_ETHER);
        if hw_type != ARPHRD_ETHER && hw_type != ARPHRD_LOOPBACK {
            bail!(
                "interface {iface} has link type {hw_type}; http-top reads Ethernet-framed \
                 interfaces (physical NICs, veth, bridges, bonds, VLANs, lo)"
            );
        }

        // Protocol 0: the socket receives nothing until `bind` names a protocol, after the filter
        // is in place.
        // SAFETY: plain syscall.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(os_err("creating the AF_PACKET socket"));
        }
        // SAFETY: `raw` is a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        filter.attach(fd.as_fd())?;

        if hw_type == ARPHRD_LOOPBACK {
            // On lo every packet passes the tap twice, once leaving and once arriving; keep the
            // arriving copy only (PACKET_IGNORE_OUTGOING, Linux 4.20).
            setsockopt(
                &fd,
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                &1i32,
                "PACKET_IGNORE_OUTGOING",
            )?;
        }
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &TPACKET_V3,
            "PACKET_VERSION",
        )?;

        let block_nr = (ring_mb.max(1) * (1 << 20)) / BLOCK_SIZE;
        let req = libc::tpacket_req3 {
            tp_block_size: BLOCK_SIZE,
            tp_block_nr: block_nr,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: BLOCK_SIZE / FRAME_SIZE * block_nr,
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &req,
            "PACKET_RX_RING",
        )?;
        let map_len = BLOCK_SIZE as usize * block_nr as usize;
        // SAFETY: maps the ring the kernel just allocated for this fd; checked for MAP_FAILED.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(os_err("mapping the capture ring"));
        }
        let map = NonNull::new(map.cast::<u8>()).context("mmap returned null")?;
        let ring = Self {
            fd,
            map,
            map_len,
            block_nr,
            block: 0,
            in_block: false,
            pkts_left: 0,
            next_off: 0,
            drops: 0,
        };

        // SAFETY: all-zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = i32::try_from(ifindex).context("ifindex")?;
        // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
        let r = unsafe {
            libc::bind(
                ring.fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(os_err("binding the capture socket to the interface"));
        }
        // Promiscuous, as tcpdump is by default: a bridge hands its device only the frames
        // addressed to the host itself, not those it forwards between its ports (container to
        // container on a docker bridge), unless the device is promiscuous. The membership is the
        // socket's: it ends when the socket closes, and counts alongside other sockets' (packet(7)).
        let mreq = libc::packet_mreq {
            mr_ifindex: sll.sll_ifindex,
            mr_type: libc::PACKET_MR_PROMISC as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setsockopt(
            &ring.fd,
            libc::SOL_PACKET,
            libc::PACKET_ADD_MEMBERSHIP,
            &mreq,
            "PACKET_ADD_MEMBERSHIP (promiscuous)",
        )?;
        if let Some(group) = fanout {
            // The group id in the low 16 bits, the mode in the high ones (packet(7)); the kernel
            // hashes flows symmetrically (`__skb_get_hash_symmetric`), so a connection's two
            // directions meet in one ring.
            let arg = u32::from(group) | (libc::PACKET_FANOUT_HASH << 16);
            setsockopt(
                &ring.fd,
                libc::SOL_PACKET,
                libc::PACKET_FANOUT,
                &arg,
                "PACKET_FANOUT",
            )?;
        }
        Ok(ring)
    }

    pub(super) fn block_ptr(&self, block: u32) -> *mut u8 {
        // SAFETY: block < block_nr, so the offset is inside the mapping.
        unsafe { self.map.as_ptr().add(block as usize * BLOCK_SIZE as usize) }
    }

    pub(super) fn block_status(&self, block: u32) -> &AtomicU32 {
        // `block_status` is at offset 8 of `tpacket_block_desc` (version, offset_to_priv, then
        // `tpacket_hdr_v1`), shared with the kernel, which sets TP_STATUS_USER when the block is
        // ours; acquire/release orders our reads of the block against that flag.
        // SAFETY: in-bounds, 4-byte aligned (blocks are page-aligned), and only accessed atomically.
        unsafe { AtomicU32::from_ptr(self.block_ptr(block).add(8).cast()) }
    }

    pub(super) fn read_u32(&self, off: usize) -> u32 {
        debug_assert!(off + 4 <= self.map_len);
        // SAFETY: `off` is inside the mapping; the kernel finished writing it before publishing the
        // block (acquire in `next_offset`).
        unsafe { self.map.as_ptr().add(off).cast::<u32>().read_unaligned() }
    }

    /// Offset of the next packet header in the mapping, releasing finished blocks to the kernel.
    pub(super) fn next_offset(&mut self) -> Option<usize> {
        loop {
            if self.in_block {
                if self.pkts_left > 0 {
                    let off = self.next_off;
                    self.pkts_left -= 1;
                    let next = self.read_u32(off) as usize; // tp_next_offset
                    self.next_off = off + next;
                    return Some(off);
                }
                // The caller is done with every packet of this block (their borrows ended).
                self.block_status(self.block)
                    .store(libc::TP_STATUS_KERNEL, Ordering::Release);
                self.in_block = false;
                self.block = (self.block + 1) % self.block_nr;
            }
            let status = self.block_status(self.block).load(Ordering::Acquire);
            if status & libc::TP_STATUS_USER == 0 {
                return None;
            }
            let base = self.block as usize * BLOCK_SIZE as usize;
            self.pkts_left = self.read_u32(base + 12); // num_pkts
            self.next_off = base + self.read_u32(base + 16) as usize; // offset_to_first_pkt
            self.in_block = true;
        }
    }

    /// The frame whose `tpacket3_hdr` is at `off`.
    pub(super) fn packet_at(&self, off: usize, iface: usize) -> Packet<'_> {
        let sec = self.read_u32(off + 4);
        let nsec = self.read_u32(off + 8);
        let snaplen = self.read_u32(off + 12) as usize;
        let len = self.read_u32(off + 16);
        // tp_mac is a u16 at offset 24.
        // SAFETY: in-bounds read of the header the kernel wrote.
        let mac = usize::from(unsafe {
            self.map
                .as_ptr()
                .add(off + 24)
                .cast::<u16>()
                .read_unaligned()
        });
        // struct sockaddr_ll follows the header at TPACKET_ALIGN(sizeof(tpacket3_hdr)) = 48;
        // sll_pkttype is its byte 10.
        // SAFETY: in-bounds read.
        let pkttype = unsafe { *self.map.as_ptr().add(off + 48 + 10) };
        let start = (off + mac).min(self.map_len);
        let end = (start + snaplen).min(self.map_len);
        // SAFETY: [start, end) is inside the mapping and stays untouched by the kernel until this
        // block is released, which happens only on a later `&mut self` call.
        let data = unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(start), end - start) };
        Packet {
            ts_ns: u64::from(sec) * 1_000_000_000 + u64::from(nsec),
            link: LinkType::Ethernet,
            data,
            orig_len: len,
            iface,
            direction: if pkttype == libc::PACKET_OUTGOING {
                Direction::Sent
            } else {
                Direction::Received
            },
            // The ring's frames are handed back to the kernel once read.
            shared: None,
        }
    }

    pub(super) fn read_drops(&mut self) -> u64 {
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: `st` and `len` are valid out-pointers of the sizes given.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut st).cast(),
                &raw mut len,
            )
        };
        if r == 0 {
            self.drops += u64::from(st.tp_drops);
        }
        self.drops
    }
}
