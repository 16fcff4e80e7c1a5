"""Writes a flood capture: N distinct connections, each a SYN and one HTTP request that is never
answered (and a few with an unfinished request head), from N different client addresses and
ports. For the memory bound of the flow table. Usage: flood-capture.py OUT.pcap N"""

import struct
import sys


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def frame(src, dst, sport, dport, seq, flags, payload):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + tcp


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    server = bytes([10, 250, 0, 1])
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))
        ts = 1_700_000_000 * 10**9
        for i in range(n):
            client = bytes([10, 100 + (i >> 16) % 100, (i >> 8) & 255, i & 255])
            sport = 1024 + i % 60000
            req = b"GET /flood/%d HTTP/1.1\r\nHost: flood.example\r\n" % (i % 1000)
            # One in ten never finishes its head either.
            if i % 10:
                req += b"\r\n"
            for fr in (frame(client, server, sport, 80, 1000, 0x02, b""), frame(client, server, sport, 80, 1001, 0x18, req)):
                ts += 1000
                f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(fr), len(fr)))
                f.write(fr)


if __name__ == "__main__":
    main()
