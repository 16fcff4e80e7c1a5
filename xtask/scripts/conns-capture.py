"""Writes a capture with N connections open at once and the same traffic spread over them: each
connection does a handshake, then EXCHANGES request/response pairs go round-robin over the
connections (each a request, a response and an ACK), and no connection closes. With the total
fixed, the time per packet as N grows shows what the number of open connections costs.
Usage: conns-capture.py OUT.pcap N EXCHANGES"""

import sys

from pcapgen import Writer, frame

REQ = b"GET /item/42 HTTP/1.1\r\nHost: conns.example\r\nUser-Agent: bench\r\n\r\n"
RESP = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello world\n"
SYN, ACK, PSH_ACK, SYN_ACK = 0x02, 0x10, 0x18, 0x12


def main():
    out, n, exchanges = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    server = bytes([10, 251, 0, 1])
    with open(out, "wb") as f:
        write = Writer(f, 2000).write

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
