//! Frame -> TCP segment. Pure: bytes in, a borrowed view out.
//!
//! Uses etherparse's lax slicer, so a frame cut short by the snap length still yields the headers and
//! the part of the payload that was captured; checksums are never checked (offload makes them wrong on
//! the capturing host).

use std::net::{IpAddr, SocketAddr};

use etherparse::{EtherType, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use crate::capture::LinkType;

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
}

/// Why a frame did not yield a TCP segment. Small and `Copy`: these are counted, not logged.
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

    let (src_ip, dst_ip): (IpAddr, IpAddr) = match &sliced.net {
        Some(LaxNetSlice::Ipv4(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        Some(LaxNetSlice::Ipv6(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        Some(LaxNetSlice::Arp(_)) => return Err(DecodeError::NotTcp),
        None => return Err(DecodeError::Network),
    };
    match sliced.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let flags = u8::from(tcp.fin())
                | u8::from(tcp.syn()) << 1
                | u8::from(tcp.rst()) << 2
                | u8::from(tcp.psh()) << 3
                | u8::from(tcp.ack()) << 4;
            Ok(Segment {
                src: SocketAddr::new(src_ip, tcp.source_port()),
                dst: SocketAddr::new(dst_ip, tcp.destination_port()),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                flags,
                payload: tcp.payload(),
            })
        }
        Some(_) => Err(DecodeError::NotTcp),
        None => match sliced.stop_err {
            Some(_) => Err(DecodeError::Transport),
            None => Err(DecodeError::NotTcp),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_ethernet_header_is_a_link_error() {
        assert_eq!(
            decode(LinkType::Ethernet, &[0u8; 10]),
            Err(DecodeError::Link)
        );
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
