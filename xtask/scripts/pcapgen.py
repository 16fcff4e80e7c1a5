"""Synthetic Ethernet/IPv4/TCP frames in a nanosecond pcap, for the captures the bench generates
(flood-capture.py, conns-capture.py). TCP checksums are left at zero, as offload leaves them on
a capturing host; IPv4 header checksums are right."""

import struct


def _csum(header):
    s = sum(struct.unpack("!10H", header))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def frame(src, dst, sport, dport, seq, ack, flags, payload):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + tcp


class Writer:
    """Frames one after another, `step_ns` apart, from 2023-11-14."""

    def __init__(self, f, step_ns):
        self.f = f
        self.step_ns = step_ns
        self.ts = 1_700_000_000 * 10**9
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))

    def write(self, fr):
        self.ts += self.step_ns
        self.f.write(struct.pack("<IIII", self.ts // 10**9, self.ts % 10**9, len(fr), len(fr)))
        self.f.write(fr)
