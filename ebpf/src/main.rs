//! The kernel half of http-top: a socket filter on an `AF_PACKET` socket that keeps only the TCP
//! packets of HTTP/1.x connections.
//!
//! A packet is kept when
//! - its TCP payload starts an HTTP/1.x message (a method token or `HTTP/1.`); the connection is then
//!   recorded in [`CONNS`] in both directions, or
//! - it belongs to a recorded connection and carries payload, FIN or RST.
//!
//! Everything else (other TCP, pure ACKs, SYNs, UDP, ICMP, non-IP) is dropped before it is copied to
//! the ring. Userspace deletes a connection's entries when it closes or idles out; the LRU map bounds
//! the table if it does not.
//!
//! Body skipping: once userspace has parsed a head that says how long its body is, it writes the
//! stretch of sequence space the body's bytes still to come occupy into the direction's
//! [`ConnValue`]. A packet whose payload lies wholly inside it is kept cut to its headers
//! (Ethernet, IP, TCP: the IP length and the frame length still say how many payload bytes it
//! carried), so body bytes userspace would only count are never copied into the ring. The filter
//! also starts stretches itself, from response heads it reads (`common::HeadScan` under
//! `bpf_loop`, at most 512 bytes), so the bytes queued while userspace catches up are cut too;
//! it reads no heads on a connection that has carried a HEAD request ([`FLAG_HEAD_ASKED`]), and
//! only one in eight on a connection whose last heads announced nothing worth skipping
//! (`common::head_unread`).
//!
//! The program reads headers, the first bytes of payloads and at most 512 bytes of a response
//! head, with `bpf_skb_load_bytes` (socket filters get no direct packet access), so every read is
//! bounds-checked by the kernel.
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext,
    cty::c_void,
    helpers::{bpf_ktime_get_ns, bpf_loop, bpf_skb_load_bytes},
    macros::{map, socket_filter},
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::SkBuffContext,
};
use http_top_common::{
    CONFIG_MAP_LEN, CONFIG_PORT_FILTER, CONFIG_SKIP_BODIES, CONN_MAP_CAPACITY, ConnKey, ConnValue,
    FAMILY_IPV4, FAMILY_IPV6, FLAG_HEAD_ASKED, H2_FRAME_HEAD, HEAD_CHUNK, HEAD_SCAN,
    HTTP_TOKEN_MAX, HeadBytes, HeadScan, PORT_MAP_CAPACITY, STAT_HEAD_STRETCHES, STAT_HEADS_UNREAD,
    STAT_INSERT_FAILED, STAT_KEPT_CONN, STAT_KEPT_START, STAT_SEEN, STAT_SKIPPED,
    STAT_SKIPPED_BYTES, STATS_LEN, STATUS_PREFIX, after_head_read, asks_head, h2_frame_len,
    head_unread, head_worth_reading, skip_verdict, skippable_status, starts_http_message, stretch,
};

#[map(name = "HTTP_CONNS")]
static CONNS: LruHashMap<ConnKey, ConnValue> = LruHashMap::with_max_entries(CONN_MAP_CAPACITY, 0);

#[map(name = "HTTP_PORTS")]
static PORTS: HashMap<u16, u8> = HashMap::with_max_entries(PORT_MAP_CAPACITY, 0);

#[map(name = "HTTP_CONFIG")]
static CONFIG: Array<u32> = Array::with_max_entries(CONFIG_MAP_LEN, 0);

#[map(name = "HTTP_SCRATCH")]
static SCRATCH: PerCpuArray<ScanLoop> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "HTTP_FILTER_STATS")]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STATS_LEN, 0);

const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88A8;
const IPPROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_RST: u8 = 0x04;

/// The return value is the number of bytes to keep: 0 drops, and anything at least the packet length
/// keeps it whole (net/packet/af_packet.c, `run_filter`).
const KEEP: i64 = u32::MAX as i64;
const DROP: i64 = 0;

#[socket_filter]
pub fn http_filter(ctx: SkBuffContext) -> i64 {
    count(STAT_SEEN);
    match try_filter(&ctx) {
        Ok(Verdict::Keep) => KEEP,
        Ok(Verdict::Headers(len)) => len as i64,
        // A read past the end of a truncated packet is not HTTP we can use.
        Ok(Verdict::Drop) | Err(()) => DROP,
    }
}

/// What becomes of a packet.
enum Verdict {
    Drop,
    Keep,
    /// Keep this many bytes: the headers, without a payload userspace does not need.
    Headers(usize),
}

/// Where the TCP segment sits in the packet, and what the filter needs of it.
struct Segment {
    key: ConnKey,
    flags: u8,
    seq: u32,
    payload_off: usize,
    payload_len: usize,
}

fn try_filter(ctx: &SkBuffContext) -> Result<Verdict, ()> {
    let Some(seg) = parse(ctx)? else {
        return Ok(Verdict::Drop);
    };
    if !port_allowed(&seg.key) {
        return Ok(Verdict::Drop);
    }

    if let Some(value) = CONNS.get_ptr_mut(seg.key) {
        if seg.payload_len == 0 && seg.flags & (TCP_FIN | TCP_RST) == 0 {
            return Ok(Verdict::Drop); // pure ACK or window update: nothing for userspace
        }
        // SAFETY: the pointer comes from a successful map lookup and stays valid for this program
        // run; concurrent updates on other CPUs only make the counters approximate, and a skip
        // stretch written by userspace meanwhile is read whole or not at all per field.
        let (skip_seq, skip_len) = unsafe {
            (*value).last_seen_ns = bpf_ktime_get_ns();
            (*value).packets += 1;
            ((*value).skip_seq, (*value).skip_len)
        };
        count(STAT_KEPT_CONN);
        match skip_verdict(skip_seq, skip_len, seg.seq, seg.payload_len as u32) {
            Some(true) => {
                count(STAT_SKIPPED);
                add(STAT_SKIPPED_BYTES, seg.payload_len as u64);
                return Ok(Verdict::Headers(seg.payload_off));
            }
            // The stretch is used up: forget it, so it cannot match again once the sequence
            // numbers wrap.
            // SAFETY: as above.
            Some(false) => unsafe { (*value).skip_len = 0 },
            None => {}
        }
        if seg.payload_len >= STATUS_PREFIX
            && skipping()
            && (skip_len == 0 || skip_verdict(skip_seq, skip_len, seg.seq, 1) != Some(true))
        {
            // No stretch in force: a response head with a long body starts the next one here,
            // without waiting for userspace to read it.
            let first: [u8; STATUS_PREFIX] = ctx.load(seg.payload_off).map_err(|_| ())?;
            if asks_head(&first) {
                // SAFETY: as above.
                unsafe { (*value).flags |= FLAG_HEAD_ASKED };
            } else if skippable_status(&first) {
                // SAFETY: as above.
                let flags = unsafe { (*value).flags };
                if let Some(flags) = head_unread(flags) {
                    // A connection of small responses: this head passes unread, before any
                    // further load or lookup.
                    // SAFETY: as above.
                    unsafe { (*value).flags = flags };
                    count(STAT_HEADS_UNREAD);
                } else if head_worth_reading(seg.payload_len, last4(ctx, &seg)?)
                    && !head_asked(&seg.key.reversed())
                {
                    let found = head_stretch(ctx, &seg);
                    // SAFETY: as above.
                    unsafe {
                        (*value).flags = after_head_read(flags, found.is_some());
                        if let Some((seq, len)) = found {
                            (*value).skip_seq = seq;
                            (*value).skip_len = len;
                        }
                    }
                    if found.is_some() {
                        count(STAT_HEAD_STRETCHES);
                    }
                }
            }
        }
        return Ok(Verdict::Keep);
    }

    if seg.payload_len == 0 {
        return Ok(Verdict::Drop);
    }
    let avail = if seg.payload_len < HTTP_TOKEN_MAX {
        seg.payload_len
    } else {
        HTTP_TOKEN_MAX
    };
    let head = load_head(ctx, seg.payload_off, avail)?;
    if !starts_http_message(&head, avail) && !h2_frames(ctx, &seg)? {
        return Ok(Verdict::Drop);
    }

    // SAFETY: reading the monotonic clock has no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let value = ConnValue {
        last_seen_ns: now,
        packets: 1,
        flags: if asks_head(&head) { FLAG_HEAD_ASKED } else { 0 },
        ..ConnValue::default()
    };
    let back = ConnValue {
        last_seen_ns: now,
        ..ConnValue::default()
    };
    if CONNS.insert(seg.key, value, 0).is_err()
        || CONNS.insert(seg.key.reversed(), back, 0).is_err()
    {
        count(STAT_INSERT_FAILED);
    }
    count(STAT_KEPT_START);
    Ok(Verdict::Keep)
}

/// Whether body skipping is on (`--no-skip` leaves it off).
fn skipping() -> bool {
    matches!(CONFIG.get(CONFIG_SKIP_BODIES), Some(&on) if on != 0)
}

/// The last four payload bytes of a segment of at least [`STATUS_PREFIX`].
fn last4(ctx: &SkBuffContext, seg: &Segment) -> Result<[u8; 4], ()> {
    ctx.load(seg.payload_off + seg.payload_len - 4)
        .map_err(|_| ())
}

/// Whether the client direction `key` has carried a HEAD request.
fn head_asked(key: &ConnKey) -> bool {
    // SAFETY: a hash map lookup; the value is read once, a plain integer.
    unsafe { CONNS.get(key) }.is_some_and(|v| v.flags & FLAG_HEAD_ASKED != 0)
}

/// A response head being read: the per-CPU scratch value. The scan lives in the map, not on the
/// stack: the verifier knows nothing of a map value's contents, so each call of [`scan_bytes`]
/// starts from unknown values and is checked once; from the stack it would follow every value of
/// every field through 500 calls, past its instruction limit.
#[repr(C)]
struct ScanLoop {
    /// The payload's first `avail` bytes.
    bytes: HeadBytes,
    scan: HeadScan,
    avail: u32,
    _pad: u32,
}

/// `bpf_loop`'s callback: the next few bytes of the response head in the scratch value
/// ([`HeadScan::advance`]). 0 goes on, 1 stops.
unsafe extern "C" fn scan_bytes(_i: u64, _ctx: *mut c_void) -> i64 {
    let Some(l) = SCRATCH.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: the per-CPU scratch value; only this program run on this CPU uses it.
    let l = unsafe { &mut *l };
    i64::from(!l.scan.advance(&l.bytes, l.avail))
}

/// The skip stretch a response head at the start of this segment announces
/// (`common::HeadScan`): the body from the byte after the head. The head may be the whole segment
/// (nginx sends its head before the body) or its start; at most [`HEAD_SCAN`] bytes are read.
fn head_stretch(ctx: &SkBuffContext, seg: &Segment) -> Option<(u32, u32)> {
    let l = SCRATCH.get_ptr_mut(0)?;
    let avail = if seg.payload_len < HEAD_SCAN {
        seg.payload_len
    } else {
        HEAD_SCAN
    };
    // A length the verifier can bound: STATUS_PREFIX..=HEAD_SCAN.
    let len = (avail as u32) & (2 * HEAD_SCAN as u32 - 1);
    if len < STATUS_PREFIX as u32 || len > HEAD_SCAN as u32 {
        return None;
    }
    // SAFETY: the per-CPU scratch value; only this program run on this CPU uses it. Its bytes
    // are HEAD_SCAN long and `len` is at most that; the segment holds `len` bytes from
    // `payload_off`.
    unsafe {
        let r = bpf_skb_load_bytes(
            ctx.as_ptr(),
            seg.payload_off as u32,
            (&raw mut (*l).bytes.0).cast(),
            len,
        );
        if r != 0 {
            return None;
        }
        (*l).scan = HeadScan::new();
        (*l).avail = len;
        bpf_loop(
            len.div_ceil(HEAD_CHUNK),
            scan_bytes as *mut c_void,
            core::ptr::null_mut(),
            0,
        );
    }
    // SAFETY: as above.
    let (head_len, body) = unsafe { (*l).scan.found() }?;
    Some((seg.seq.wrapping_add(head_len), stretch(body) as u32))
}

/// An HTTP/2 connection opened before the capture began (gRPC channels live for hours): a
/// segment that is exactly one plausible frame (a PING, a WINDOW_UPDATE, a DATA frame), or that
/// begins with two.
fn h2_frames(ctx: &SkBuffContext, seg: &Segment) -> Result<bool, ()> {
    if seg.payload_len < H2_FRAME_HEAD {
        return Ok(false);
    }
    let first: [u8; H2_FRAME_HEAD] = ctx.load(seg.payload_off).map_err(|_| ())?;
    let Some(len) = h2_frame_len(&first) else {
        return Ok(false);
    };
    let end = H2_FRAME_HEAD + len as usize;
    if end == seg.payload_len {
        return Ok(true);
    }
    if end + H2_FRAME_HEAD > seg.payload_len {
        return Ok(false);
    }
    let second: [u8; H2_FRAME_HEAD] = ctx.load(seg.payload_off + end).map_err(|_| ())?;
    Ok(h2_frame_len(&second).is_some())
}

fn port_allowed(key: &ConnKey) -> bool {
    match CONFIG.get(CONFIG_PORT_FILTER) {
        Some(&on) if on != 0 => {
            // SAFETY: a hash map lookup; the value is not dereferenced.
            unsafe { PORTS.get(key.src_port).is_some() || PORTS.get(key.dst_port).is_some() }
        }
        _ => true,
    }
}

/// Finds the TCP segment in an Ethernet frame (the layout `AF_PACKET` hands a `SOCK_RAW` socket, `lo`
/// included), behind at most two VLAN tags. `Ok(None)` for anything that is not TCP over IP.
fn parse(ctx: &SkBuffContext) -> Result<Option<Segment>, ()> {
    let skb_len = ctx.len() as usize;
    let mut off = ETH_HLEN;
    let mut proto = be16(ctx, 12)?;
    // Tags the driver did not strip into skb metadata are still in the frame (802.1Q, 802.1ad QinQ).
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        proto = be16(ctx, off + 2)?;
        off += 4;
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            proto = be16(ctx, off + 2)?;
            off += 4;
        }
    }

    let mut key = ConnKey::default();
    let l4;
    let ip_end;
    match proto {
        ETH_P_IP => {
            let vihl: u8 = ctx.load(off).map_err(|_| ())?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return Ok(None);
            }
            let total = usize::from(be16(ctx, off + 2)?);
            // A non-first fragment carries no TCP header.
            if be16(ctx, off + 6)? & 0x1fff != 0 {
                return Ok(None);
            }
            let ip_proto: u8 = ctx.load(off + 9).map_err(|_| ())?;
            if ip_proto != IPPROTO_TCP {
                return Ok(None);
            }
            let src: [u8; 4] = ctx.load(off + 12).map_err(|_| ())?;
            let dst: [u8; 4] = ctx.load(off + 16).map_err(|_| ())?;
            key.src_addr[..4].copy_from_slice(&src);
            key.dst_addr[..4].copy_from_slice(&dst);
            key.family = FAMILY_IPV4;
            l4 = off + ihl;
            // GSO super-frames carry the full length here; 0 means "larger than 64 KiB" (BIG TCP).
            ip_end = if total == 0 { skb_len } else { off + total };
        }
        ETH_P_IPV6 => {
            let payload = usize::from(be16(ctx, off + 4)?);
            let mut next: u8 = ctx.load(off + 6).map_err(|_| ())?;
            key.src_addr = ctx.load(off + 8).map_err(|_| ())?;
            key.dst_addr = ctx.load(off + 24).map_err(|_| ())?;
            key.family = FAMILY_IPV6;
            let mut hdr = off + 40;
            // Hop-by-hop, routing, fragment and destination options may precede TCP (RFC 8200 4.1);
            // a fixed bound keeps the loop verifiable.
            let mut i = 0;
            while i < 4 && next != IPPROTO_TCP {
                match next {
                    0 | 43 | 60 => {
                        let len: u8 = ctx.load(hdr + 1).map_err(|_| ())?;
                        next = ctx.load(hdr).map_err(|_| ())?;
                        hdr += (usize::from(len) + 1) * 8;
                    }
                    44 => {
                        if be16(ctx, hdr + 2)? & 0xfff8 != 0 {
                            return Ok(None); // non-first fragment
                        }
                        next = ctx.load(hdr).map_err(|_| ())?;
                        hdr += 8;
                    }
                    _ => return Ok(None),
                }
                i += 1;
            }
            if next != IPPROTO_TCP {
                return Ok(None);
            }
            l4 = hdr;
            ip_end = if payload == 0 {
                skb_len
            } else {
                off + 40 + payload
            };
        }
        _ => return Ok(None),
    }

    key.src_port = be16(ctx, l4)?;
    key.dst_port = be16(ctx, l4 + 2)?;
    let seq = ctx.load::<u32>(l4 + 4).map(u32::from_be).map_err(|_| ())?;
    let doff: u8 = ctx.load(l4 + 12).map_err(|_| ())?;
    let flags: u8 = ctx.load(l4 + 13).map_err(|_| ())?;
    let payload_off = l4 + usize::from(doff >> 4) * 4;
    // Short frames are padded to the Ethernet minimum; the IP length, not the frame, says where the
    // segment ends.
    let end = if ip_end < skb_len { ip_end } else { skb_len };
    let payload_len = end.saturating_sub(payload_off);
    Ok(Some(Segment {
        key,
        flags,
        seq,
        payload_off,
        payload_len,
    }))
}

/// The first `avail` (at most [`HTTP_TOKEN_MAX`]) payload bytes, zero-filled after. One 8-byte load
/// when possible; byte loads for a shorter payload, because `bpf_skb_load_bytes` must not be asked for a
/// length the verifier cannot prove non-zero.
#[inline(always)]
fn load_head(ctx: &SkBuffContext, off: usize, avail: usize) -> Result<[u8; HTTP_TOKEN_MAX], ()> {
    if avail == HTTP_TOKEN_MAX {
        return ctx.load(off).map_err(|_| ());
    }
    let mut head = [0u8; HTTP_TOKEN_MAX];
    let mut i = 0;
    while i < HTTP_TOKEN_MAX - 1 {
        if i < avail {
            head[i] = ctx.load(off + i).map_err(|_| ())?;
        }
        i += 1;
    }
    Ok(head)
}

#[inline(always)]
fn be16(ctx: &SkBuffContext, off: usize) -> Result<u16, ()> {
    ctx.load::<u16>(off).map(u16::from_be).map_err(|_| ())
}

#[inline(always)]
fn count(stat: u32) {
    add(stat, 1);
}

#[inline(always)]
fn add(stat: u32, n: u64) {
    if let Some(c) = STATS.get_ptr_mut(stat) {
        // SAFETY: per-CPU slot from a successful lookup; no other CPU writes it.
        unsafe { *c += n };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
