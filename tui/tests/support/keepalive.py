"""A long-lived HTTP/1.1 client: one keep-alive connection per server, a request on each every
INTERVAL seconds, for COUNT rounds (bounded: it stops by itself, at the latest after 60 s).

Usage: keepalive.py COUNT INTERVAL URL [URL ...]   (URL: http://HOST:PORT/PATH)
Prints one line per round, "round N", flushed, so the test can wait for progress.
"""

import http.client
import sys
import time
import urllib.parse

count, interval = int(sys.argv[1]), float(sys.argv[2])
targets = [urllib.parse.urlsplit(u) for u in sys.argv[3:]]
conns = [http.client.HTTPConnection(t.hostname, t.port, timeout=5) for t in targets]
deadline = time.monotonic() + 60
for n in range(count):
    if time.monotonic() > deadline:
        break
    for t, c in zip(targets, conns):
        c.request("GET", t.path or "/")
        c.getresponse().read()
    print("round", n, flush=True)
    time.sleep(interval)
for c in conns:
    c.close()
