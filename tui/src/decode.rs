//! Frame -> TCP segment. Pure: bytes in, a borrowed view out.
//!
//! Uses etherparse's lax slicer, so a frame cut short by the snap length still yields the headers and
//! the part of the payload that was captured; checksums are never checked (offload makes them wrong on
//! the capturing host).

use std::net::{IpAddr, SocketAddr};

use etherparse::{
    EtherType, Ipv4HeaderSlice, LaxIpSlice, LaxNetSlice, LaxSlicedPacket, TcpSlice, TransportSlice,
    ip_number,
};

use crate::packet::{LinkType, Packet};

/// TCP flag bits as they appear in byte 13 of the header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// One TCP segment, borrowed from the frame it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    /// Bits from [`tcp_flags`].
    pub flags: u8,
    /// The captured part of the payload (shorter than the segment if the frame was truncated).
    pub payload: &'a [u8],
    /// Payload bytes the segment carried on the wire after `payload` that the frame does not hold:
    /// cut by the kernel filter's body skipping, or by a snap length. Known from the IP header's
    /// length (or, where that says 0, as GSO frames past 64 KiB do, from the frame's length).
    pub uncaptured: u32,
}

/// Why a frame did not yield a TCP segment. Small and `Copy`: these are counted, not logged.
impl Segment<'_> {
    /// The segment without its captured payload, free of the frame's lifetime (`uncaptured` is
    /// kept: a worker thread puts the payload back).
    pub fn without_payload(&self) -> Segment<'static> {
        Segment {
            payload: &[],
            ..*self
        }
    }
    /// The segment without its payload when it closes its connection (FIN or RST): what the live
    /// source needs to forget the connection in the kernel's table.
    pub fn closing(&self) -> Option<Segment<'static>> {
        (self.flags & (tcp_flags::FIN | tcp_flags::RST) != 0).then(|| self.without_payload())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The link-layer header is cut short.
    Link,
    /// The IP header is missing, cut short or malformed.
    Network,
    /// Not TCP over IPv4/IPv6 (ARP, UDP, ICMP, ...): not an error, just not ours.
    NotTcp,
    /// The TCP header is cut short or malformed.
    Transport,
}

/// Decodes one captured frame of the given link type into its TCP segment.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Segment<'_>, DecodeError> {
    decode_cut(link, frame, frame.len())
}

/// Decodes a captured frame that was `orig_len` bytes long on the wire.
pub fn decode_packet<'a>(p: &Packet<'a>) -> Result<Segment<'a>, DecodeError> {
    decode_cut(p.link, p.data, p.orig_len as usize)
}

fn decode_cut(link: LinkType, frame: &[u8], orig_len: usize) -> Result<Segment<'_>, DecodeError> {
    let cut = Cut {
        frame_missing: orig_len.saturating_sub(frame.len()),
    };
    // IP right after the link header, the common case, goes straight to the IP and TCP slices;
    // the whole-packet slicer (VLAN tags and everything else) is a large value to build and copy,
    // which was a twentieth of a run.
    let ip_at = match link {
        LinkType::Ethernet => Some(14).filter(|_| {
            frame.get(12..14).is_some_and(|t| {
                let t = EtherType(u16::from_be_bytes([t[0], t[1]]));
                t == EtherType::IPV4 || t == EtherType::IPV6
            })
        }),
        LinkType::RawIp => Some(0),
        LinkType::Null | LinkType::Loop => Some(4),
        LinkType::LinuxSll | LinkType::LinuxSll2 => None,
    };
    if let Some(at) = ip_at
        && let Some(r) = decode_ip(frame.get(at..).ok_or(DecodeError::Link)?, cut)
    {
        return r;
    }
    decode_sliced(link, frame, cut)
}

/// How much of a frame was not captured.
#[derive(Clone, Copy)]
struct Cut {
    /// Bytes of the frame on the wire past its captured end.
    frame_missing: usize,
}

impl Cut {
    /// Payload bytes past the captured ones: up to where the IP header says the packet ends
    /// (`ip_end`, an address in the frame's address space), or, where it says nothing (a length
    /// of 0), the frame's missing bytes.
    fn uncaptured(self, payload: &[u8], ip_end: Option<usize>) -> u32 {
        let captured_end = payload.as_ptr() as usize + payload.len();
        let n = match ip_end {
            Some(end) => end.saturating_sub(captured_end),
            None => self.frame_missing,
        };
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// Where an IPv4 packet ends by its header's total length; `None` when that is 0 (a GSO frame
/// past 64 KiB).
fn v4_end(h: &etherparse::Ipv4HeaderSlice<'_>) -> Option<usize> {
    let total = usize::from(h.total_len());
    (total != 0).then(|| h.slice().as_ptr() as usize + total)
}

/// Where an IPv6 packet ends by its payload length; `None` when that is 0 (a jumbogram or a GSO
/// frame past 64 KiB).
fn v6_end(h: &etherparse::Ipv6HeaderSlice<'_>) -> Option<usize> {
    let len = usize::from(h.payload_length());
    (len != 0).then(|| h.slice().as_ptr() as usize + 40 + len)
}

/// Any frame, through etherparse's whole-packet slicer.
fn decode_sliced(link: LinkType, frame: &[u8], cut: Cut) -> Result<Segment<'_>, DecodeError> {
    let sliced = match link {
        LinkType::Ethernet => {
            LaxSlicedPacket::from_ethernet(frame).map_err(|_| DecodeError::Link)?
        }
        LinkType::RawIp => LaxSlicedPacket::from_ip(frame).map_err(|_| DecodeError::Network)?,
        // Linux cooked capture v1: 16-byte header, protocol in the last two bytes.
        // https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html
        LinkType::LinuxSll => {
            let proto = frame.get(14..16).ok_or(DecodeError::Link)?;
            LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([proto[0], proto[1]])),
                &frame[16..],
            )
        }
        // Linux cooked capture v2: 20-byte header, protocol in the first two bytes.
        // https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html
        LinkType::LinuxSll2 => {
            let proto = frame.get(0..2).ok_or(DecodeError::Link)?;
            let rest = frame.get(20..).ok_or(DecodeError::Link)?;
            LaxSlicedPacket::from_ether_type(
                EtherType(u16::from_be_bytes([proto[0], proto[1]])),
                rest,
            )
        }
        // BSD loopback: a 4-byte address family in host order, then the IP packet.
        LinkType::Null | LinkType::Loop => {
            let rest = frame.get(4..).ok_or(DecodeError::Link)?;
            LaxSlicedPacket::from_ip(rest).map_err(|_| DecodeError::Network)?
        }
    };

    let (src_ip, dst_ip, ip_end): (IpAddr, IpAddr, _) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
            v4_end(&ip.header()),
        ),
        Some(LaxNetSlice::Ipv6(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
            v6_end(&ip.header()),
        ),
        Some(LaxNetSlice::Arp(_)) => return Err(DecodeError::NotTcp),
        None => return Err(DecodeError::Network),
    };
    match sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => Ok(segment(src_ip, dst_ip, &tcp, cut, ip_end)),
        Some(_) => Err(DecodeError::NotTcp),
        None => match sliced.stop_err {
            Some(_) => Err(DecodeError::Transport),
            None => Err(DecodeError::NotTcp),
        },
    }
}

/// An IP packet, as the whole-packet slicer would take it: a bad IP header is a network error, a
/// bad extension header a transport error. `None` for a packet that is not TCP, for the slicer to
/// classify.
fn decode_ip(bytes: &[u8], cut: Cut) -> Option<Result<Segment<'_>, DecodeError>> {
    plain_ipv4_tcp(bytes, cut).or_else(|| decode_ip_sliced(bytes, cut))
}

/// [`decode_ip`] through etherparse's IP slicer.
fn decode_ip_sliced(bytes: &[u8], cut: Cut) -> Option<Result<Segment<'_>, DecodeError>> {
    let (ip, ext_err) = match LaxIpSlice::from_slice(bytes) {
        Ok(x) => x,
        Err(_) => return Some(Err(DecodeError::Network)),
    };
    let (src, dst, ip_end): (IpAddr, IpAddr, _) = match &ip {
        LaxIpSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
            v4_end(&v4.header()),
        ),
        LaxIpSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
            v6_end(&v6.header()),
        ),
    };
    if ext_err.is_some() {
        return Some(Err(DecodeError::Transport));
    }
    let payload = ip.payload();
    if payload.fragmented || payload.ip_number != ip_number::TCP {
        // Not TCP: rare enough to take the slicer's word for what else it is (a frame the slicer
        // fails on above TCP is an error, not "not TCP").
        return None;
    }
    Some(
        TcpSlice::from_slice(payload.payload)
            .map(|tcp| segment(src, dst, &tcp, cut, ip_end))
            .map_err(|_| DecodeError::Transport),
    )
}

/// TCP in an IPv4 packet without options or fragments, nearly every packet: read through
/// etherparse's IPv4 header view, a borrowed slice. Its IP slicer returns a large value whose copy
/// out stalled on its stores, a third of the decoding; `None` for anything else, which goes to the
/// slicer. Equal to the slicer
/// on every input (a property test below): the same payload bounds where the total length is
/// smaller than the header (taken from the captured bytes) or larger than them (cut short).
fn plain_ipv4_tcp(bytes: &[u8], cut: Cut) -> Option<Result<Segment<'_>, DecodeError>> {
    // Version 4 (or `None`), a 20-byte header, TCP, neither More Fragments nor an offset.
    let h = Ipv4HeaderSlice::from_slice(bytes).ok()?;
    if h.ihl() != 5 || h.protocol() != ip_number::TCP || h.is_fragmenting_payload() {
        return None;
    }
    let header = h.slice().len();
    let total = usize::from(h.total_len());
    let end = if (header..=bytes.len()).contains(&total) {
        total
    } else {
        bytes.len()
    };
    Some(
        TcpSlice::from_slice(&bytes[header..end])
            .map(|tcp| {
                segment(
                    h.source_addr().into(),
                    h.destination_addr().into(),
                    &tcp,
                    cut,
                    v4_end(&h),
                )
            })
            .map_err(|_| DecodeError::Transport),
    )
}

fn segment<'a>(
    src: IpAddr,
    dst: IpAddr,
    tcp: &TcpSlice<'a>,
    cut: Cut,
    ip_end: Option<usize>,
) -> Segment<'a> {
    let flags = u8::from(tcp.fin())
        | u8::from(tcp.syn()) << 1
        | u8::from(tcp.rst()) << 2
        | u8::from(tcp.psh()) << 3
        | u8::from(tcp.ack()) << 4;
    Segment {
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        flags,
        payload: tcp.payload(),
        uncaptured: cut.uncaptured(tcp.payload(), ip_end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The direct IP path decodes every frame exactly as the whole-packet slicer does:
        /// well-formed TCP over IPv4 and IPv6, cut at any length, and arbitrary bytes.
        #[test]
        fn direct_ip_path_equals_the_slicer(
            v6 in proptest::bool::ANY,
            payload in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
            cut in 0usize..200,
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
            link in 0u8..4,
        ) {
            let ip = if v6 { ipv6_tcp(&payload) } else { ipv4_tcp(&payload) };
            let mut noisy = if v6 { vec![0x60] } else { vec![0x45] };
            noisy.extend_from_slice(&noise);
            for ip in [&ip[..ip.len().min(cut)], &ip[..], &noisy[..]] {
                let et = if v6 { 0x86dd } else { 0x0800 };
                let (link, frame) = match link {
                    0 => (LinkType::Ethernet, eth(&[], ip, et)),
                    1 => (LinkType::RawIp, ip.to_vec()),
                    2 => (LinkType::Null, [&[2, 0, 0, 0][..], ip].concat()),
                    _ => (LinkType::Ethernet, eth(&[], ip, 0x0806)),
                };
                proptest::prop_assert_eq!(decode(link, &frame), decode_sliced(link, &frame, Cut { frame_missing: 0 }));
            }
        }
    }

    use proptest::strategy::Just;

    proptest::proptest! {
        /// Plain IPv4 read in place equals etherparse's slicer: any header bytes after a 0x45 and
        /// TCP's protocol number (total lengths below, at and past the captured bytes, fragment
        /// fields, TCP data offsets), any length.
        #[test]
        fn plain_ipv4_equals_the_slicer(
            mut header in proptest::collection::vec(proptest::num::u8::ANY, 20..21),
            rest in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
            total in proptest::prop_oneof![0u16..140, proptest::num::u16::ANY],
            flags in proptest::prop_oneof![Just(0u16), Just(0x4000), proptest::num::u16::ANY],
            data_offset in proptest::prop_oneof![5u8..8, 0u8..16],
            missing in 0usize..3,
        ) {
            header[0] = 0x45;
            header[9] = 6;
            header[2..4].copy_from_slice(&total.to_be_bytes());
            header[6..8].copy_from_slice(&flags.to_be_bytes());
            let mut packet = [header, rest].concat();
            if let Some(b) = packet.get_mut(20 + 12) {
                *b = data_offset << 4 | (*b & 0x0f);
            }
            let cut = Cut { frame_missing: missing };
            let plain = plain_ipv4_tcp(&packet, cut);
            proptest::prop_assert_eq!(plain.is_some(), flags & 0x3fff == 0);
            if plain.is_some() {
                proptest::prop_assert_eq!(plain, decode_ip_sliced(&packet, cut));
            }
        }
    }

    #[test]
    fn truncated_ethernet_header_is_a_link_error() {
        assert_eq!(
            decode(LinkType::Ethernet, &[0u8; 10]),
            Err(DecodeError::Link)
        );
    }

    /// Ethernet header (with `tags`: (TPID, VLAN id)) around an IPv4/TCP packet built by etherparse.
    fn eth(tags: &[(u16, u16)], ip_packet: &[u8], ether_type: u16) -> Vec<u8> {
        let mut f = vec![2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1];
        for (tpid, id) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
        }
        f.extend_from_slice(&ether_type.to_be_bytes());
        f.extend_from_slice(ip_packet);
        f
    }

    fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 80, 7, 1000)
            .ack(9)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn ipv6_tcp(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        etherparse::PacketBuilder::ipv6([0xfd; 16], [0xfe; 16], 64)
            .tcp(80, 40000, 7, 1000)
            .fin()
            .write(&mut out, payload)
            .unwrap();
        out
    }

    fn check_v4(s: &Segment<'_>) {
        assert_eq!(s.src, "10.0.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "10.0.0.2:80".parse().unwrap());
        assert_eq!((s.seq, s.ack), (7, 9));
        assert_eq!(s.flags & tcp_flags::ACK, tcp_flags::ACK);
        assert_eq!(s.payload, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn ethernet_with_zero_one_and_two_vlan_tags() {
        let ip = ipv4_tcp(b"GET / HTTP/1.1\r\n\r\n");
        for tags in [&[][..], &[(0x8100, 100)], &[(0x88a8, 200), (0x8100, 100)]] {
            let f = eth(tags, &ip, 0x0800);
            check_v4(&decode(LinkType::Ethernet, &f).unwrap());
        }
    }

    #[test]
    fn ipv6_raw_ip_and_linux_cooked_captures() {
        let v6 = ipv6_tcp(b"HTTP/1.1 200 OK\r\n");
        let s = decode(LinkType::RawIp, &v6).unwrap();
        assert_eq!(s.src.port(), 80);
        assert!(s.src.is_ipv6());
        assert_eq!(s.flags & tcp_flags::FIN, tcp_flags::FIN);

        let ip = ipv4_tcp(b"GET / HTTP/1.1\r\n\r\n");
        // SLL: packet type, ARPHRD, address length, 8 address bytes, protocol.
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 1, 1, 1, 1, 1, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(&ip);
        check_v4(&decode(LinkType::LinuxSll, &sll).unwrap());
        // SLL2: protocol, reserved, ifindex, ARPHRD, packet type, address length, 8 address bytes.
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 1, 1, 1, 1, 1, 1, 0, 0,
        ];
        sll2.extend_from_slice(&ip);
        check_v4(&decode(LinkType::LinuxSll2, &sll2).unwrap());
        // BSD loopback: a 4-byte family, then IP.
        let mut null = vec![2, 0, 0, 0];
        null.extend_from_slice(&ip);
        check_v4(&decode(LinkType::Null, &null).unwrap());
    }

    #[test]
    fn truncated_frames_decode_as_far_as_they_go() {
        let f = eth(&[], &ipv4_tcp(b"GET / HTTP/1.1\r\n\r\n"), 0x0800);
        // Cut inside the payload: the segment is there, with the captured part of the payload.
        let s = decode(LinkType::Ethernet, &f[..f.len() - 4]).unwrap();
        assert_eq!(s.payload, b"GET / HTTP/1.1");
        // The IP header says how long the segment was: the rest is known, uncaptured.
        assert_eq!(s.uncaptured, 4);
        // Cut to its headers, as the kernel filter cuts a body it skips.
        let s = decode(LinkType::Ethernet, &f[..14 + 20 + 20]).unwrap();
        assert_eq!((s.payload.len(), s.uncaptured), (0, 18));
        // An IPv6 one, and a whole one.
        let v6 = ipv6_tcp(b"HTTP/1.1 200 OK\r\n");
        let s = decode(LinkType::RawIp, &v6[..40 + 20 + 5]).unwrap();
        assert_eq!((s.payload, s.uncaptured), (&b"HTTP/"[..], 12));
        assert_eq!(decode(LinkType::Ethernet, &f).unwrap().uncaptured, 0);
        // A GSO frame past 64 KiB says 0 in its IP length: the frame's length says it.
        let mut big = f.clone();
        big[14 + 2..14 + 4].copy_from_slice(&[0, 0]);
        let p = Packet {
            ts_ns: 0,
            link: LinkType::Ethernet,
            data: &big[..14 + 20 + 20],
            orig_len: 70_000,
            iface: 0,
            direction: crate::packet::Direction::Unknown,
            shared: None,
        };
        assert_eq!(decode_packet(&p).unwrap().uncaptured, 70_000 - 54);
        // Cut inside the TCP header: counted as a transport error, not a panic.
        assert_eq!(
            decode(LinkType::Ethernet, &f[..14 + 20 + 10]),
            Err(DecodeError::Transport)
        );
        // Cut inside the IP header.
        assert!(decode(LinkType::Ethernet, &f[..14 + 8]).is_err());
    }

    #[test]
    fn arp_is_not_tcp() {
        let mut f = vec![0u8; 14 + 28];
        f[12] = 0x08;
        f[13] = 0x06;
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        assert_eq!(decode(LinkType::Ethernet, &f), Err(DecodeError::NotTcp));
    }
}
