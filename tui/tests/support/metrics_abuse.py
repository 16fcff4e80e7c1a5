"""Hostile and broken clients of http-top's metrics endpoint, one after the other; prints one JSON
object with what each saw. Every connection goes to the address given (the test's own namespace
loopback), every loop is bounded in count and time.

Usage: metrics_abuse.py HOST PORT

- not_found: GET /other -> the status line.
- long_line: a 1 MiB request line -> what came back (status) and whether the server closed.
- slowloris: a request head sent one short line a second -> seconds until the server closed.
- slow_readers: 20 scrapes with a tiny receive buffer that never read -> a normal scrape's status
  and seconds meanwhile, and seconds until the server dropped the stalled ones.
- flood: 1000 idle connections held open -> seconds until a normal scrape succeeds meanwhile.
"""

import json
import resource
import socket
import sys
import time

HOST, PORT = sys.argv[1], int(sys.argv[2])


def connect(rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect((HOST, PORT))
    return s


def read_all(s, limit=64 << 20):
    data = b""
    try:
        while len(data) < limit:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except (socket.timeout, ConnectionResetError):
        pass
    return data


def status_of(data):
    line = data.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def scrape(timeout=12):
    """A well-behaved scrape: status, body length, seconds."""
    t = time.monotonic()
    try:
        s = connect()
        s.settimeout(timeout)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        data = read_all(s)
        s.close()
    except OSError:
        return None, 0, time.monotonic() - t
    head, _, body = data.partition(b"\r\n\r\n")
    return status_of(head), len(body), time.monotonic() - t


def closed_within(s, limit):
    """Seconds until the peer closes `s` (reading what it sends), or None after `limit`."""
    t = time.monotonic()
    s.settimeout(0.5)
    while time.monotonic() - t < limit:
        try:
            b = s.recv(65536)
            if not b:
                return time.monotonic() - t
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t
    return None


out = {}

s = connect()
s.sendall(b"GET /other HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
out["not_found"] = status_of(read_all(s))
s.close()

s = connect()
sent = 0
try:
    s.sendall(b"GET /" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: m\r\n\r\n")
    sent = (1 << 20)
except OSError:
    pass
data = read_all(s)
out["long_line"] = {"status": status_of(data), "closed": True, "sent_all": sent > 0}
s.close()

s = connect()
s.sendall(b"GET /metrics HTTP/1.1\r\n")
t = time.monotonic()
closed = None
for i in range(30):
    try:
        s.sendall(b"X-%d: y\r\n" % i)
    except OSError:
        closed = time.monotonic() - t
        break
    got = closed_within(s, 1.0)
    if got is not None:
        closed = time.monotonic() - t
        break
out["slowloris_closed_after_s"] = closed
s.close()

stalled = []
for _ in range(20):
    c = connect(rcvbuf=4096)
    c.sendall(b"GET /metrics HTTP/1.1\r\nHost: m\r\n\r\n")
    stalled.append(c)
time.sleep(1)
status, size, secs = scrape()
out["slow_readers"] = {"scrape_status": status, "scrape_bytes": size, "scrape_s": round(secs, 3)}
t = time.monotonic()
drops = [closed_within(c, 15) for c in stalled]
out["slow_readers"]["dropped_after_s"] = [None if d is None else round(d, 1) for d in drops]
for c in stalled:
    c.close()

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
flood = []
for _ in range(1000):
    try:
        flood.append(connect())
    except OSError:
        break
out["flood_opened"] = len(flood)
t = time.monotonic()
ok_after = None
while time.monotonic() - t < 20:
    status, size, _ = scrape(timeout=3)
    if status == 200 and size > 0:
        ok_after = time.monotonic() - t
        break
    time.sleep(0.2)
out["flood_scrape_ok_after_s"] = ok_after
for c in flood:
    c.close()

print(json.dumps(out))
