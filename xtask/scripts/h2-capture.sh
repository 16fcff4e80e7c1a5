#!/usr/bin/env bash
# Records the same workload twice for the HTTP/2 speed figure: h2load against nginx, once over
# HTTP/2 with prior knowledge (port 81, `listen ... http2`) and once over HTTP/1.1 (`h2load --h1`,
# port 80): 200 000 requests of a 700-byte file over 10 connections, 10 streams (or pipelined
# requests: h2load --h1 keeps one in flight per connection) at once. Bounded by request counts and
# by the caller's `timeout`. Needs root. Kept out of git.
set -euo pipefail

h2out=${1:?usage: h2-capture.sh OUT-h2.pcap OUT-h1.pcap}
h1out=${2:?usage: h2-capture.sh OUT-h2.pcap OUT-h1.pcap}
work=$(mktemp -d)
chmod 755 "$work"
srv=hth2-s$$
cli=hth2-c$$
td=""

# shellcheck source=lab.sh
. "$(dirname "$0")/lab.sh"

cleanup() {
    [ -n "$td" ] && kill "$td" 2>/dev/null || true
    lab_down "$srv" "$cli" "$work"
}
trap cleanup EXIT

lab_up "$srv" "$cli"
ip -n "$srv" addr add 10.239.0.1/24 dev "v$srv"
ip -n "$cli" addr add 10.239.0.2/24 dev "v$cli"
mkdir -p "$work/www" "$work/logs" "$work/tmp"
head -c 700 /dev/urandom | base64 > "$work/www/small.txt"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/tmp;
    keepalive_requests 1000000;
    server { listen 10.239.0.1:80; root $work/www; }
    server { listen 10.239.0.1:81 http2; root $work/www; }
}
CONF
lab_nginx "$srv" "$work"

record() {
    local out=$1 port=$2
    shift 2
    ip netns exec "$cli" tcpdump -i "v$cli" -s 0 -B 262144 -w "$out" "tcp port $port" 2>"$work/tcpdump.log" &
    td=$!
    for _ in $(seq 100); do grep -q "listening on" "$work/tcpdump.log" && break; sleep 0.05; done
    ip netns exec "$cli" h2load -n 200000 -c 10 "$@" "http://10.239.0.1:$port/small.txt" | grep -E "^requests:"
    sleep 1.5
    kill -INT "$td"
    wait "$td" || true
    td=""
}
record "$h2out" 81 -m 10
record "$h1out" 80 --h1 -m 10
