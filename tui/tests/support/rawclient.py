"""HTTP clients curl cannot be: raw sockets for the end-to-end scenarios.

Usage: rawclient.py MODE HOST PORT

- pipeline: three requests (GET, GET, HEAD) written at once on one connection, the last with
  Connection: close; reads until the server closes.
- onebyte:  one GET written one byte per segment (TCP_NODELAY, a short pause between bytes).
- reset:    GET /big/5m.bin, read about 100 KiB, then close with SO_LINGER 0, which sends RST.
- keepwriting: POST /early announcing 300 000 bytes, send 100 000, wait for nginx's answer (it
  answers at once), send the other 200 000 anyway, close; prints the bytes sent.
- junk:     THIS IS NOT HTTP, then reads nginx's 400 until it closes; prints the bytes sent.

Every socket has a timeout; the script ends by itself.
"""

import socket
import struct
import sys
import time


def connect(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    return s


def read_all(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = connect(host, port)
    h = "Host: scenarios.test\r\n"
    if mode == "pipeline":
        s.sendall(
            (
                "GET /pipe/a.txt HTTP/1.1\r\n" + h + "\r\n"
                "GET /pipe/b.txt HTTP/1.1\r\n" + h + "\r\n"
                "HEAD /pipe/c.txt HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n"
            ).encode()
        )
        data = read_all(s)
        assert data.count(b"HTTP/1.1 200") == 3, data[:200]
    elif mode == "onebyte":
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req = ("GET /onebyte/a.txt HTTP/1.1\r\n" + h + "Connection: close\r\n\r\n").encode()
        for i in range(len(req)):
            s.send(req[i : i + 1])
            time.sleep(0.002)
        data = read_all(s)
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
    elif mode == "reset":
        s.sendall(("GET /big/5m.bin HTTP/1.1\r\n" + h + "\r\n").encode())
        got = 0
        while got < 100 * 1024:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += len(chunk)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    elif mode == "keepwriting":
        head = ("POST /early HTTP/1.1\r\n" + h + "Content-Length: 300000\r\n\r\n").encode()
        s.sendall(head + b"k" * 100000)
        answer = s.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
        s.sendall(b"k" * 200000)
        s.shutdown(socket.SHUT_WR)
        read_all(s)
        s.close()
        print(len(head) + 300000)
        return
    elif mode == "junk":
        junk = b"THIS IS NOT HTTP\r\n\r\n"
        s.sendall(junk)
        data = read_all(s)
        assert data.startswith(b"HTTP/1.1 400"), data[:100]
        s.close()
        print(len(junk))
        return
    s.close()
    print("ok")


if __name__ == "__main__":
    main()
