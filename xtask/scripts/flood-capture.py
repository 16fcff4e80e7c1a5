"""Writes a flood capture: N distinct connections, each a SYN and one HTTP request that is never
answered (and a few with an unfinished request head), from N different client addresses and
ports. For the memory bound of the flow table. Usage: flood-capture.py OUT.pcap N"""

import sys

from pcapgen import Writer, frame


def main():
    out, n = sys.argv[1], int(sys.argv[2])
    server = bytes([10, 250, 0, 1])
    with open(out, "wb") as f:
        w = Writer(f, 1000)
        for i in range(n):
            client = bytes([10, 100 + (i >> 16) % 100, (i >> 8) & 255, i & 255])
            sport = 1024 + i % 60000
            req = b"GET /flood/%d HTTP/1.1\r\nHost: flood.example\r\n" % (i % 1000)
            # One in ten never finishes its head either.
            if i % 10:
                req += b"\r\n"
            w.write(frame(client, server, sport, 80, 1000, 0, 0x02, b""))
            w.write(frame(client, server, sport, 80, 1001, 0, 0x18, req))


if __name__ == "__main__":
    main()
