"""Hostile HTTP for the end-to-end abuse test: a raw server and a raw client that send what real
servers and clients refuse to (control bytes, oversized heads, a chunk size of 2^64-1).

Usage: hostile.py server HOST PORT READY_FILE
       hostile.py client HOST PORT

The client makes one connection per case, in order, and prints the case names it sent; the last
case is a plain request that must still be counted. The server answers by the target's first
path segment and closes. Both stop by themselves (socket timeouts, a 60 s server lifetime).
"""

import socket
import sys
import threading
import time

CASES = [
    # Valid HTTP with bytes a terminal would act on: a C1 CSI (0x9b, allowed as obs-text) in
    # Host, and ESC [ 2 J BEL percent-encoded in the query (decoded by the query grouping key).
    ("labels", b"GET /labels?s=%1b%5b2J%07 HTTP/1.1\r\nHost: evil\x9b31m.example\r\n\r\n"),
    ("nul", b"GET /nul\x00x HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("esc", b"GET /esc\x1b]0;pwned\x07 HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("long", b"GET /long HTTP/1.1\r\nHost: h\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n"),
    ("many", b"GET /many HTTP/1.1\r\nHost: h\r\n" + b"X-H: v\r\n" * 10000 + b"\r\n"),
    ("chunkbomb", b"GET /chunkbomb HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("evilstatus", b"GET /evilstatus HTTP/1.1\r\nHost: h\r\n\r\n"),
    ("after", b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n"),
]

RESPONSES = {
    b"chunkbomb": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n"
    + b"x" * 1000,
    b"evilstatus": b"HTTP/1.1 200 \x1b]0;pwned\x07\x1b[2J\r\nContent-Length: 2\r\n\r\nok",
}
PLAIN = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve(c):
    with c:
        c.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < 200000:
                chunk = c.recv(65536)
                if not chunk:
                    break
                data += chunk
        except OSError:
            return
        target = data.split(b" ", 2)[1] if data.count(b" ") >= 2 else b"/"
        name = target.lstrip(b"/").split(b"?")[0].split(b"/")[0]
        try:
            c.sendall(RESPONSES.get(name, PLAIN))
        except OSError:
            pass


def server(host, port, ready):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(16)
    s.settimeout(1)
    open(ready, "w").close()
    end = time.time() + 60
    while time.time() < end:
        try:
            c, _ = s.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def client(host, port):
    for name, req in CASES:
        c = socket.socket(family(host), socket.SOCK_STREAM)
        c.settimeout(5)
        c.connect((host, port))
        c.sendall(req)
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        c.close()
        print(name, flush=True)


if __name__ == "__main__":
    role, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if role == "server":
        server(host, port, sys.argv[4])
    else:
        client(host, port)
