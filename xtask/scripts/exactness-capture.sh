#!/usr/bin/env bash
# Records a capture for the exactness tests (capture loss must never shift request/response pairing;
# responses sent before the request body is in): real traffic between curl / a python raw-socket
# client and nginx (with a slow python upstream behind it) in two network namespaces joined by a veth
# pair, captured with tcpdump on the client's veth. What it records, all on 10.237.0.1:80:
#   1. keep-alive: one curl fetches 30 URLs on one connection (24 static files of 100 B .. 20 KB,
#      6 missing ones -> 404), 3 times;
#   2. slow responses: 20 GETs proxied to an upstream that sleeps 50-300 ms each, from 2 curls in
#      parallel (10 each, keep-alive);
#   3. large bodies: 2 downloads of a 512 KiB file on one connection, 2 POST uploads of 200 000 bytes
#      on one connection (read in full by the upstream before it answers; no Expect header);
#   4. pipelining: 5 connections, each writing 6 GETs in one send and reading the 6 responses;
#   5. early responses: POSTs of 100 000 bytes to `location = /early { return 200 "ok\n"; }`,
#      (a) 3 without Expect, (b) 2 with `Expect: 100-continue`; the body is sent at 200 KB/s so
#      nginx's answer goes out while the body is still coming (at full veth speed the whole body is
#      in before nginx gets to answer, and the response is not early on the wire).
# Every request carries a User-Agent naming its part (exactness/1 .. exactness/5a, 5b).
#
# Usage: exactness-capture.sh OUT.pcap
# Writes OUT.pcap, OUT.pcap.nginx.log (nginx's access log: the fields of tests/common's `wire` format,
# then "$remote_port $connection $connection_requests "$http_user_agent" $content_length"), and
# OUT.pcap.curl.txt (one line per part-5 request: "PART size_upload size_request http_code").
#
# Bounded: fixed request counts, every curl with --max-time, the python clients with socket timeouts,
# and the whole script re-runs itself under `timeout` (55 s). Traffic only goes to addresses inside
# the namespaces made here (10.237.0.0/24, and 127.0.0.1 inside the server namespace). Needs root.
set -euo pipefail

out=${1:?usage: exactness-capture.sh OUT.pcap}
if [ -z "${EXACTNESS_CAPTURE_TIMED:-}" ]; then
    EXACTNESS_CAPTURE_TIMED=1 exec timeout -k 5 55 bash "$0" "$@"
fi

here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
# nginx workers run as nobody: they must be able to read the document root.
chmod 755 "$work"
srv=htexact-s$$
cli=htexact-c$$
pids=()
td=""

# shellcheck source=lab.sh
. "$here/lab.sh"

trap lab_cleanup EXIT
trap 'exit 124' INT TERM

lab_up "$srv" "$cli"
ip -n "$srv" addr add 10.237.0.1/24 dev "v$srv"
ip -n "$cli" addr add 10.237.0.2/24 dev "v$cli"

# Content: 24 small files, sizes spread geometrically from 100 B to 20 KB, exact byte counts.
mkdir -p "$work/www/static" "$work/logs" "$work/tmp"
files=()
for i in $(seq 0 23); do
    n=$(awk -v i="$i" 'BEGIN { printf "%d", 100 * 200 ^ (i / 23) }')
    name=$(printf 'f%02d-%d.txt' "$i" "$n")
    # base64 text, cut to the exact size (not `| head -c`: base64 would die of SIGPIPE under pipefail).
    head -c "$n" /dev/urandom | base64 -w 76 > "$work/www/static/$name"
    truncate -s "$n" "$work/www/static/$name"
    files+=("$name")
done
head -c $((1 << 19)) /dev/urandom > "$work/www/big.bin"
head -c 200000 /dev/urandom > "$work/up-large.bin"
head -c 100000 /dev/urandom > "$work/up-early.bin"

cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 256; }
http {
    log_format exact '\$remote_addr \$request_length \$bytes_sent \$status \$request_time "\$request" '
                     '\$remote_port \$connection \$connection_requests "\$http_user_agent" \$content_length';
    access_log $work/logs/access.log exact;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp;
    default_type application/octet-stream;
    keepalive_requests 1000;
    server {
        listen 10.237.0.1:80;
        root $work/www;
        location /static/ { }
        location = /big.bin { }
        location /slow/ { proxy_pass http://127.0.0.1:8081; }
        location = /upload { proxy_pass http://127.0.0.1:8081; }
        location = /early { return 200 "ok\n"; }
    }
}
CONF

# The slow upstream: GET /slow/N sleeps 50..300 ms (by N) and answers a few hundred bytes; POST reads
# all Content-Length bytes of the body before it answers.
cat > "$work/upstream.py" <<'PY'
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        tail = self.path.rsplit("/", 1)[-1]
        n = int(tail) if tail.isdigit() else 0
        delay_ms = 50 + n * 37 % 251
        time.sleep(delay_ms / 1000)
        line = f"slow {self.path} after {delay_ms} ms\n".encode()
        size = 200 + n * 53 % 300
        self.reply((line * (size // len(line) + 1))[:size])

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        got = 0
        while got < length:
            chunk = self.rfile.read(min(65536, length - got))
            if not chunk:
                break
            got += len(chunk)
        self.reply(f"received {got} of {length} bytes\n".encode())


server = ThreadingHTTPServer(("127.0.0.1", 8081), Handler)
server.daemon_threads = True
open(sys.argv[1], "w").close()
server.serve_forever()
PY

# The pipelining client: per connection, 6 GETs written with one send(), then the 6 responses read
# back by Content-Length. Fails unless every response is a 200 of the file's size.
cat > "$work/pipeline.py" <<'PY'
import os
import socket
import sys

host, root = sys.argv[1], sys.argv[2]
names = sorted(os.listdir(root))
for conn in range(5):
    picks = [names[(conn * 5 + j * 4) % len(names)] for j in range(6)]
    reqs = b"".join(
        f"GET /static/{p} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: exactness/4\r\nAccept: */*\r\n\r\n".encode()
        for p in picks
    )
    s = socket.create_connection((host, 80), timeout=5)
    if s.send(reqs) != len(reqs):
        sys.exit("pipeline: short send")
    buf = b""
    for p in picks:
        while b"\r\n\r\n" not in buf:
            data = s.recv(65536)
            if not data:
                sys.exit("pipeline: connection closed early")
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(l.split(":", 1)[1]) for l in lines[1:] if l.lower().startswith("content-length:"))
        while len(buf) < length:
            data = s.recv(65536)
            if not data:
                sys.exit("pipeline: connection closed in a body")
            buf += data
        buf = buf[length:]
        if status != 200 or length != os.path.getsize(os.path.join(root, p)):
            sys.exit(f"pipeline: {p}: status {status}, {length} bytes")
    if buf:
        sys.exit("pipeline: unexpected bytes after the last response")
    s.close()
PY

ip netns exec "$srv" python3 "$work/upstream.py" "$work/upstream.ready" 2>"$work/logs/upstream.log" &
pids+=($!)
for _ in $(seq 100); do [ -e "$work/upstream.ready" ] && break; sleep 0.05; done
[ -e "$work/upstream.ready" ] || { echo "upstream did not start" >&2; exit 1; }
lab_nginx "$srv" "$work"

# --immediate-mode: hand each packet over at once; libpcap's default batches them in ring blocks for
# up to a second, and whatever is still in a block when tcpdump stops is lost.
ip netns exec "$cli" tcpdump -i "v$cli" -s 0 -B 32768 -U --immediate-mode --time-stamp-precision=nano \
    -w "$work/capture.pcap" "tcp port 80" 2>"$work/tcpdump.log" &
td=$!
for _ in $(seq 100); do grep -q "listening on" "$work/tcpdump.log" && break; sleep 0.05; done

base=http://10.237.0.1
c() { ip netns exec "$cli" curl -sS --max-time 15 "$@"; }

# 1. keep-alive: 30 URLs on one connection, 3 rounds, each round in another order.
urls=()
for f in "${files[@]}"; do urls+=("$base/static/$f"); done
for i in 1 2 3 4 5 6; do urls+=("$base/static/missing-$i.txt"); done
for round in 0 1 2; do
    args=()
    for k in $(seq 0 29); do args+=(-o /dev/null "${urls[$(((k * 7 + round * 11) % 30))]}"); done
    c -A exactness/1 "${args[@]}"
done

# 2. slow responses: 2 keep-alive curls in parallel, 10 proxied GETs each.
slow=()
for w in 0 1; do
    args=()
    for k in $(seq 1 10); do args+=(-o /dev/null "$base/slow/$((w * 10 + k))"); done
    c -A exactness/2 "${args[@]}" &
    slow+=($!)
done
for p in "${slow[@]}"; do wait "$p"; done

# 3. large bodies: 2 x 512 KiB down on one connection; 2 x 200 000 bytes up on one connection.
c -A exactness/3 -o /dev/null -o /dev/null "$base/big.bin" "$base/big.bin"
c -A exactness/3 -H 'Expect:' -H 'Content-Type: application/octet-stream' --data-binary "@$work/up-large.bin" \
    -o /dev/null -o /dev/null "$base/upload" "$base/upload"

# 4. pipelining.
ip netns exec "$cli" timeout 15 python3 "$work/pipeline.py" 10.237.0.1 "$work/www/static"

# 5. early responses: nginx answers /early without needing the body (it reads and drops what has come
# so far, answers, then drops the rest). --limit-rate keeps the body coming for about a second, so the
# answer lands in the middle of it. Failures are recorded, not fatal.
: > "$work/curl.txt"
early() {
    local part=$1
    shift
    c -A "exactness/$part" -o /dev/null --limit-rate 100k --data-binary "@$work/up-early.bin" \
        -H 'Content-Type: application/octet-stream' "$@" \
        -w "$part %{size_upload} %{size_request} %{http_code}\n" "$base/early" >> "$work/curl.txt" \
        || echo "$part curl exit status $?" >> "$work/curl.txt"
}
for _ in 1 2 3; do early 5a -H 'Expect:'; done
for _ in 1 2; do early 5b -H 'Expect: 100-continue'; done

# Let the last packets through, then stop tcpdump so it finishes the file.
sleep 1
kill -INT "$td"
wait "$td" || true
td=""
if ! grep -q '^0 packets dropped by kernel' "$work/tcpdump.log"; then
    cat "$work/tcpdump.log" >&2
    echo "exactness-capture: tcpdump dropped packets" >&2
    exit 1
fi

log=$work/logs/access.log
count() { awk -F'"' -v ua="exactness/$1" '$4 == ua' "$log" | wc -l; }
total=$(wc -l < "$log")
if [ "$total" -ne 149 ]; then
    echo "exactness-capture: nginx logged $total requests, expected 149" >&2
    exit 1
fi
cp "$work/capture.pcap" "$out"
cp "$log" "$out.nginx.log"
cp "$work/curl.txt" "$out.curl.txt"
echo "exactness-capture: keep-alive $(count 1), slow $(count 2), large $(count 3), pipelined $(count 4)," \
    "early $(count 5a)+$(count 5b) requests in nginx's log ($total); wrote $out ($(stat -c %s "$out") bytes," \
    "$(grep -o '^[0-9]* packets captured' "$work/tcpdump.log"))"
