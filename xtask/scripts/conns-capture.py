"""Writes a capture with N connections open at once and the same traffic spread over them: each
connection does a handshake, then EXCHANGES request/response pairs go round-robin over the
connections (each a request, a response and an ACK), and no connection closes. With the total
fixed, the time per packet as N grows shows what the number of open connections costs.
Usage: conns-capture.py OUT.pcap N EXCHANGES"""

import struct
import sys

REQ = b"GET /item/42 HTTP/1.1\r\nHost: conns.example\r\nUser-Agent: bench\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n"
SYN, ACK, PSH_ACK, SYN_ACK = 0x02, 0x10, 0x18, 0x12


def csum(b):
    s = sum(struct.unpack("!10H", b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF


def frame(src, dst, sport, dport, seq, ack, flags, payload):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00" + ip + tcp


def main():
    out, n, exchanges = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    server = bytes([10, 251, 0, 1])
    ts = 1_700_000_000 * 10**9
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D, 2, 4, 0, 0, 262144, 1))

        def write(fr):
            nonlocal ts
            ts += 2000
            f.write(struct.pack("<IIII", ts // 10**9, ts % 10**9, len(fr), len(fr)))
            f.write(fr)

        # Per connection: client address, port, next client and server sequence numbers.
        conns = []
        for i in range(n):
            client = bytes([10, 200 + (i >> 16) % 50, (i >> 8) & 255, i & 255])
            port = 1024 + i % 60000
            c, s = 1000, 5000
            write(frame(client, server, port, 80, c, 0, SYN, b""))
            write(frame(server, client, 80, port, s, c + 1, SYN_ACK, b""))
            write(frame(client, server, port, 80, c + 1, s + 1, ACK, b""))
            conns.append([client, port, c + 1, s + 1])
        for i in range(exchanges):
            conn = conns[i % n]
            client, port, c, s = conn
            write(frame(client, server, port, 80, c, s, PSH_ACK, REQ))
            c += len(REQ)
            write(frame(server, client, 80, port, s, c, PSH_ACK, RESP))
            s += len(RESP)
            write(frame(client, server, port, 80, c, s, ACK, b""))
            conn[2], conn[3] = c, s


if __name__ == "__main__":
    main()
