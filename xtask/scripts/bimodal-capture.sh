#!/usr/bin/env bash
# Records the bimodal capture for the dashboard's latency pictures and the alert tests: a python
# upstream behind nginx whose answers come in two modes (a cache hit after ~3 ms, a miss after
# ~80 ms), in three phases told apart by the client's User-Agent (bimodal/A, B, C):
#   A (0-8 s)    hits and misses only;
#   B (8-14 s)   plus /api/fail/N answered 503 by the upstream, about 4 per second;
#   C (14-22 s)  misses slow down to ~180 ms ("after a deploy"); no more 503s.
# A few /api/report calls (~400 ms) run through all three phases: the tail. Clients: 4 python
# keep-alive threads (http.client), each paced at one request per 90 ms; every request is one line of
# the client's own log (phase, path, status, its own latency in ms).
#
# Usage: bimodal-capture.sh OUT.pcap
# Writes OUT.pcap, OUT.pcap.nginx.log (nginx's access log: "$status $request_time
# $upstream_response_time \"$request\" \"$http_user_agent\" $msec") and OUT.pcap.client.txt.
#
# Bounded: each client thread stops after 22 s and at most 400 requests, every socket has a
# timeout, and the whole script re-runs itself under `timeout` (60 s). Traffic only goes to addresses
# inside the namespaces made here (10.238.0.0/24, and 127.0.0.1 inside the server namespace).
# Needs root.
set -euo pipefail

out=${1:?usage: bimodal-capture.sh OUT.pcap}
if [ -z "${BIMODAL_CAPTURE_TIMED:-}" ]; then
    BIMODAL_CAPTURE_TIMED=1 exec timeout -k 5 60 bash "$0" "$@"
fi

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
chmod 755 "$work"
srv=htbim-s$$
cli=htbim-c$$
pids=()
td=""

# shellcheck source=lab.sh
. "$here/lab.sh"

trap lab_cleanup EXIT
trap 'exit 124' INT TERM

lab_up "$srv" "$cli"
ip -n "$srv" addr add 10.238.0.1/24 dev "v$srv"
ip -n "$cli" addr add 10.238.0.2/24 dev "v$cli"
mkdir -p "$work/logs" "$work/tmp"

cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 256; }
http {
    log_format bimodal '\$status \$request_time \$upstream_response_time "\$request" '
                       '"\$http_user_agent" \$msec';
    access_log $work/logs/access.log bimodal;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp;
    keepalive_requests 10000;
    upstream app { server 127.0.0.1:8081; keepalive 8; }
    server {
        listen 10.238.0.1:80;
        location /api/ {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF

# The upstream. /api/items/N: a miss when N % 3 == 0 (80 ms, 180 ms in phase C), else a hit (3 ms);
# /api/report: 400 ms; /api/fail/N: 503 at once. The phase comes from the User-Agent nginx passes on.
cat > "$work/upstream.py" <<'PY'
import socket
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # The head and the body go out in two writes: without this, Nagle holds the body until
        # nginx's delayed ACK (40 ms) and every answer gains a third mode.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        phase = self.headers.get("User-Agent", "")[-1:]
        parts = self.path.split("/")
        n = int(parts[-1]) if parts[-1].isdigit() else 0
        if self.path.startswith("/api/fail/"):
            self.reply(503, b'{"error":"unavailable"}\n')
            return
        if self.path.startswith("/api/report"):
            time.sleep(0.4)
        elif n % 3 == 0:
            time.sleep(0.18 if phase == "C" else 0.08)
        else:
            time.sleep(0.003)
        self.reply(200, ('{"item":%d,"pad":"%s"}\n' % (n, "x" * (n % 200))).encode())


server = ThreadingHTTPServer(("127.0.0.1", 8081), Handler)
server.daemon_threads = True
open(sys.argv[1], "w").close()
server.serve_forever()
PY

# The clients: 4 threads, one keep-alive connection each, one request per 90 ms (paced from the
# previous request's start), for 22 s at most and 400 requests at most per thread.
cat > "$work/client.py" <<'PY'
import http.client
import sys
import threading
import time

host, out = sys.argv[1], sys.argv[2]
start = time.monotonic()
lines = []
lock = threading.Lock()


def phase(t):
    return "A" if t < 8 else "B" if t < 14 else "C"


def worker(w):
    conn = http.client.HTTPConnection(host, 80, timeout=5)
    for i in range(400):
        t0 = time.monotonic()
        t = t0 - start
        if t >= 22:
            break
        p = phase(t)
        n = w * 1000 + i
        if i % 25 == 7:
            path = "/api/report"
        elif p == "B" and i % 3 == 1:
            path = f"/api/fail/{n}"
        else:
            path = f"/api/items/{n}"
        conn.request("GET", path, headers={"User-Agent": f"bimodal/{p}"})
        r = conn.getresponse()
        r.read()
        ms = (time.monotonic() - t0) * 1000
        with lock:
            lines.append(f"{p} {path} {r.status} {ms:.3f}")
        time.sleep(max(0.0, 0.09 - (time.monotonic() - t0)))
    conn.close()


threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
for th in threads:
    th.start()
for th in threads:
    th.join()
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
PY

ip netns exec "$srv" /usr/bin/python3 "$work/upstream.py" "$work/upstream.ready" 2>"$work/logs/upstream.log" &
pids+=($!)
for _ in $(seq 100); do [ -e "$work/upstream.ready" ] && break; sleep 0.05; done
[ -e "$work/upstream.ready" ] || { echo "upstream did not start" >&2; exit 1; }
lab_nginx "$srv" "$work"

ip netns exec "$cli" tcpdump -i "v$cli" -s 0 -B 32768 -U --immediate-mode --time-stamp-precision=nano \
    -w "$work/capture.pcap" "tcp port 80" 2>"$work/tcpdump.log" &
td=$!
for _ in $(seq 100); do grep -q "listening on" "$work/tcpdump.log" && break; sleep 0.05; done

ip netns exec "$cli" timeout 40 /usr/bin/python3 "$work/client.py" 10.238.0.1 "$work/client.txt"

sleep 1
kill -INT "$td"
wait "$td" || true
td=""
if ! grep -q '^0 packets dropped by kernel' "$work/tcpdump.log"; then
    cat "$work/tcpdump.log" >&2
    echo "bimodal-capture: tcpdump dropped packets" >&2
    exit 1
fi
logged=$(wc -l < "$work/logs/access.log")
asked=$(wc -l < "$work/client.txt")
if [ "$logged" -ne "$asked" ]; then
    echo "bimodal-capture: nginx logged $logged requests, the client made $asked" >&2
    exit 1
fi
cp "$work/capture.pcap" "$out"
cp "$work/logs/access.log" "$out.nginx.log"
cp "$work/client.txt" "$out.client.txt"
echo "bimodal-capture: $logged requests" >&2
