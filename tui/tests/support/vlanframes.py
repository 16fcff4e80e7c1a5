"""Sends hand-built Ethernet frames with VLAN tags out of an interface (AF_PACKET), for testing the
kernel filter's tag parsing on a kernel without 802.1Q support: frames written to a packet socket
pass the other packet sockets' taps exactly as written, tags inside the frame.

Usage: vlanframes.py IFACE

Sends, once each: TCP to port 80 with an HTTP request behind an 802.1Q tag, an 802.1ad tag, and both
(QinQ), over IPv4 and IPv6 (the filter must keep these); and behind the same tags, UDP carrying the
same request and TCP carrying non-HTTP bytes (it must drop these). Prints the number it expects kept.
"""

import socket
import struct
import sys


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def tcp(sport, dport, payload):
    # seq, ack, data offset 5, flags PSH|ACK, window.
    return struct.pack("!HHIIBBHHH", sport, dport, 1000, 1, 5 << 4, 0x18, 65535, 0, 0) + payload


def udp(sport, dport, payload):
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def ipv4(proto, l4):
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 1, 0, 64, proto, 0,
                      bytes([10, 240, 0, 2]), bytes([10, 240, 0, 1]))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + l4


def ipv6(proto, l4):
    src = bytes([0xfd] + [0] * 14 + [2])
    dst = bytes([0xfd] + [0] * 14 + [1])
    return struct.pack("!IHBB", 6 << 28, len(l4), proto, 64) + src + dst + l4


def frame(tags, ethertype, payload):
    f = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02"
    for tpid, vid in tags:
        f += struct.pack("!HH", tpid, vid)
    return f + struct.pack("!H", ethertype) + payload


def main():
    iface = sys.argv[1]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    request = b"GET /vlan HTTP/1.1\r\nHost: tagged\r\n\r\n"
    kept = 0
    port = 41000
    for tags in ([(0x8100, 100)], [(0x88A8, 200)], [(0x88A8, 200), (0x8100, 100)]):
        port += 1
        s.send(frame(tags, 0x0800, ipv4(6, tcp(port, 80, request))))
        s.send(frame(tags, 0x86DD, ipv6(6, tcp(port, 80, request))))
        kept += 2
        # Noise behind the same tags.
        s.send(frame(tags, 0x0800, ipv4(17, udp(port, 80, request))))
        s.send(frame(tags, 0x0800, ipv4(6, tcp(port + 100, 80, b"not http at all"))))
    print(kept)


if __name__ == "__main__":
    main()
