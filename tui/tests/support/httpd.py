"""A real HTTP/1.1 server for the end-to-end tests (python's http.server, keep-alive on).

Usage: httpd.py HOST PORT [HOST PORT ...] [--tcp-echo PORT] [--ready FILE]

- GET /bytes/N   -> 200 with N bytes of body (Content-Length)
- GET /status/C  -> status C with a short body
- GET /delay/MS  -> 200 after MS milliseconds (at most 2000)
- POST anything  -> reads Content-Length bytes, 201 with a short body
- --tcp-echo P   -> also a plain TCP (non-HTTP) listener that answers every read with b"pong"
- --ready FILE   -> written once every socket listens, so the test waits on a condition, not a sleep

Stops by itself after 120 s so a failed test can never leave it running.
"""

import http.server
import socket
import socketserver
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def _send(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) == 2 and parts[0] == "bytes":
            self._send(200, b"x" * int(parts[1]))
        elif len(parts) == 2 and parts[0] == "delay":
            time.sleep(min(int(parts[1]), 2000) / 1000)
            self._send(200, b"done\n")
        elif len(parts) == 2 and parts[0] == "status":
            self._send(int(parts[1]), b"status\n")
        else:
            self._send(200, b"hello from http-top's test server\n")

    do_HEAD = do_GET

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        self._send(201, b"created\n")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host, port):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), Handler)


def tcp_echo(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(16)

    def serve():
        while True:
            c, _ = s.accept()
            threading.Thread(target=echo, args=(c,), daemon=True).start()

    def echo(c):
        with c:
            while c.recv(65536):
                c.sendall(b"pong")

    threading.Thread(target=serve, daemon=True).start()


def main():
    args = sys.argv[1:]
    ready = None
    echo_port = None
    if "--ready" in args:
        i = args.index("--ready")
        ready = args[i + 1]
        del args[i : i + 2]
    if "--tcp-echo" in args:
        i = args.index("--tcp-echo")
        echo_port = int(args[i + 1])
        del args[i : i + 2]
    hosts = list(zip(args[0::2], args[1::2]))
    for host, port in hosts:
        srv = Server(host, int(port))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    if echo_port is not None:
        for host in {h for h, _ in hosts}:
            tcp_echo(host, echo_port)
    if ready:
        with open(ready, "w") as f:
            f.write("ready\n")
    threading.Event().wait(120)


if __name__ == "__main__":
    main()
