#!/usr/bin/env bash
# Fanout under load: nginx serves a 600-byte page to wrk (16 keep-alive connections, at its
# maximum rate, for a bounded time) across a veth; http-top captures the client's end with one
# ring (the default) and with --fanout 2 (a PACKET_FANOUT group of two rings, each read by its own
# thread), with a small ring (2 MiB each) and the default one. For each run it prints one line of
# key=value pairs (for cargo xtask bench): requests nginx logged, requests http-top counted, ring
# drops, http-top's CPU seconds while wrk ran, and wrk's rate.
# Needs root. Usage: fanout-load.sh HTTP_TOP_BINARY [SECONDS]
set -euo pipefail

bin=${1:?usage: fanout-load.sh HTTP_TOP_BINARY [SECONDS]}
secs=${2:-8}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab.sh
. "$here/lab.sh"
lab_begin fan 10.244.0
head -c 450 /dev/urandom | base64 > "$work/www/index.html"
chmod -R a+rX "$work"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http {
    access_log $work/logs/access.log;
    keepalive_requests 1000000;
    server { listen 10.244.0.1:80; root $work/www; }
}
CONF
lab_nginx "$srv" "$work"

counter() { lab_counter "$1" "$work/ht.err"; }

run() { # label, http-top args...
    local label=$1; shift
    : > "$work/logs/access.log"
    ip netns exec "$srv" nginx -p "$work" -c "$work/nginx.conf" -s reopen 2>/dev/null
    ip netns exec "$cli" "$bin" -i "v$cli" --headless --interval 3600 --duration $((secs + 10)) "$@" \
        > /dev/null 2> "$work/ht.err" &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 200); do grep -q "capturing on" "$work/ht.err" 2>/dev/null && break; sleep 0.05; done
    sleep 1
    local out cpu0 cpu
    cpu0=$(lab_cpu_s "$pid")
    out=$(ip netns exec "$cli" timeout $((secs + 20)) wrk -d "${secs}s" -t 1 -c 16 http://10.244.0.1/ 2>&1)
    cpu=$(awk -v a="$(lab_cpu_s "$pid")" -v b="$cpu0" 'BEGIN {print a - b}')
    sleep 1
    kill -INT "$pid"; wait "$pid" || true
    printf 'fanout-row label=%s nginx_requests=%s http_top_requests=%s ring_drops=%s cpu_s=%s wrk_rps=%s\n' \
        "$label" "$(wc -l < "$work/logs/access.log")" "$(counter requests)" "$(counter ring_drops)" \
        "$cpu" "$(echo "$out" | awk '/Requests\/sec/ {print $2}')"
}

run one-ring2 --ring-mb 2
run fanout2-ring2 --ring-mb 2 --fanout 2
run one --ring-mb 32
run fanout2 --ring-mb 32 --fanout 2
