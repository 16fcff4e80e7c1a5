#!/usr/bin/env bash
# Records a large benchmark capture (about 1 000 000 requests) from real traffic: nginx in one network namespace, ab (small
# keep-alive requests) and curl (5 MiB bodies, gzip) in another, tcpdump on the client's veth.
# Bounded by request counts and by the caller's `timeout`. Needs root. Kept out of git.
set -euo pipefail

out=${1:?usage: bench-capture.sh OUT.pcap [all|bodies|small]}
# "bodies": only the 5 MiB transfers, for the large-body throughput figure. "small": 200 000 small
# keep-alive requests and three 5 MiB downloads, the common case of real traffic (small exchanges
# dominate), where bytes per second flatter nothing.
mode=${2:-all}
work=$(mktemp -d)
chmod 755 "$work"
srv=htbench-s$$
cli=htbench-c$$
td=""

# shellcheck source=lab.sh
. "$(dirname "$0")/lab.sh"

cleanup() {
    [ -n "$td" ] && kill "$td" 2>/dev/null || true
    lab_down "$srv" "$cli" "$work"
}
trap cleanup EXIT

lab_up "$srv" "$cli"
ip -n "$srv" addr add 10.236.0.1/24 dev "v$srv"
ip -n "$cli" addr add 10.236.0.2/24 dev "v$cli"

mkdir -p "$work/www" "$work/logs" "$work/tmp"
head -c $((5 << 20)) /dev/urandom > "$work/www/big.bin"
head -c 700 /dev/urandom | base64 > "$work/www/small.txt"
seq 1 20000 | sed 's/^/a line of compressible text /' > "$work/www/text.txt"

cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/tmp;
    keepalive_requests 100000;
    gzip on;
    gzip_types text/plain;
    server { listen 10.236.0.1:80; root $work/www; }
}
CONF
lab_nginx "$srv" "$work"

ip netns exec "$cli" tcpdump -i "v$cli" -s 0 -B 262144 -w "$out" "tcp port 80" 2>"$work/tcpdump.log" &
td=$!
for _ in $(seq 100); do grep -q "listening on" "$work/tcpdump.log" && break; sleep 0.05; done

base=http://10.236.0.1
if [ "$mode" = small ]; then
    ip netns exec "$cli" ab -q -k -n 200000 -c 8 "$base/small.txt" > /dev/null
    ip netns exec "$cli" curl -s --max-time 30 -o /dev/null -o /dev/null -o /dev/null \
        "$base/big.bin" "$base/big.bin" "$base/big.bin"
    sleep 2
    kill -INT "$td"
    wait "$td" || true
    td=""
    tail -n 3 "$work/tcpdump.log"
    exit 0
fi
# Four rounds of 250 000 small requests (240 000 keep-alive, 10 000 one per connection), five
# times three 5 MiB bodies and a gzip (chunked) one: 1 000 000 requests and then some.
for round in 1 2 3 4; do
    if [ "$mode" = all ]; then
        ip netns exec "$cli" ab -q -k -n 240000 -c 8 "$base/small.txt" > /dev/null
        ip netns exec "$cli" ab -q -n 10000 -c 4 "$base/small.txt" > /dev/null
    fi
    for _ in 1 2 3 4 5; do
        ip netns exec "$cli" curl -s --max-time 30 -o /dev/null -o /dev/null -o /dev/null \
            "$base/big.bin" "$base/big.bin" "$base/big.bin"
    done
    ip netns exec "$cli" curl -s --max-time 30 --compressed -o /dev/null "$base/text.txt"
done

# Let libpcap hand over its last block (it batches for up to a second).
sleep 2
kill -INT "$td"
wait "$td" || true
td=""
tail -n 3 "$work/tcpdump.log"
