"""Traffic the kernel filter must drop, aimed at one test host.

Usage: noise.py ADDR HTTP_PORT TCP_ECHO_PORT

- UDP datagrams whose payload is an HTTP request line, to the HTTP port;
- a TCP conversation with non-HTTP payload on another port (the test server's echo listener);
- ICMP / ICMPv6 echo requests whose payload is "GET / HTTP/1.1" (raw socket; needs root).

Each kind is sent a few times; the whole script is bounded and ends by itself.
"""

import socket
import struct
import sys


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def main():
    addr, http_port, echo_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    v6 = ":" in addr
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    payload = b"GET / HTTP/1.1\r\nHost: noise\r\n\r\n"

    with socket.socket(fam, socket.SOCK_DGRAM) as u:
        for _ in range(3):
            u.sendto(payload, (addr, http_port))

    with socket.create_connection((addr, echo_port), timeout=5) as t:
        for msg in (b"hello, not http\n", b"\x16\x03\x01\x00\x05hello", b"get lower-case is not a method\n"):
            t.sendall(msg)
            t.recv(64)

    if v6:
        icmp = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        typ = 128  # the kernel fills in the ICMPv6 checksum for raw ICMPv6 sockets
    else:
        icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        typ = 8
    with icmp:
        for seq in range(3):
            hdr = struct.pack("!BBHHH", typ, 0, 0, 0x4854, seq)
            csum = 0 if v6 else checksum(hdr + payload)
            hdr = struct.pack("!BBHHH", typ, 0, csum, 0x4854, seq)
            icmp.sendto(hdr + payload, (addr, 0))


if __name__ == "__main__":
    main()
