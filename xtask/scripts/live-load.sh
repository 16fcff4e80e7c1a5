#!/usr/bin/env bash
# Live load: nginx in one namespace, wrk in another, http-top capturing the client's veth.
# For each rate (wrk's maximum, then fixed rates with wrk -R when the wrk build supports it, else
# fewer connections), runs a bounded time and reports: requests nginx logged, requests http-top
# counted, ring drops, http-top's CPU (from /proc) and peak RSS, wrk's throughput with and without
# http-top attached. Needs root. Usage: live-load.sh HTTP_TOP_BINARY [SECONDS]
set -euo pipefail

bin=${1:?usage: live-load.sh HTTP_TOP_BINARY [SECONDS]}
secs=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
chmod 755 "$work"
srv=htload-s$$
cli=htload-c$$
# shellcheck source=lab.sh
. "$here/lab.sh"
trap 'lab_down "$srv" "$cli" "$work"' EXIT

lab_up "$srv" "$cli"
ip -n "$srv" addr add 10.241.0.1/24 dev "v$srv"
ip -n "$cli" addr add 10.241.0.2/24 dev "v$cli"
mkdir -p "$work/www" "$work/logs" "$work/tmp"
head -c 600 /dev/urandom | base64 > "$work/www/index.html"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http {
    access_log $work/logs/access.log;
    client_body_temp_path $work/tmp;
    keepalive_requests 1000000;
    server { listen 10.241.0.1:80; root $work/www; }
}
CONF
lab_nginx "$srv" "$work"

hz=$(getconf CLK_TCK)
run() { # label, wrk args...
    local label=$1; shift
    : > "$work/logs/access.log"
    ip netns exec "$srv" nginx -p "$work" -c "$work/nginx.conf" -s reopen
    ip netns exec "$cli" "$bin" -i "v$cli" --headless --interval 3600 --duration $((secs + 5)) \
        > "$work/ht.out" 2> "$work/ht.err" &
    local pid=$!
    for _ in $(seq 200); do grep -q "capturing on" "$work/ht.err" 2>/dev/null && break; sleep 0.05; done
    local wrk_out
    wrk_out=$(ip netns exec "$cli" wrk -d "${secs}s" "$@" http://10.241.0.1/ 2>&1)
    local t0
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    local hwm
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    kill -INT "$pid"; wait "$pid" || true
    local nginx_n ht_n drops rps
    nginx_n=$(wc -l < "$work/logs/access.log")
    ht_n=$(grep -o ' requests=[0-9]*' "$work/ht.err" | tail -1 | cut -d= -f2)
    drops=$(grep -o 'ring_drops=[0-9]*' "$work/ht.err" | tail -1 | cut -d= -f2)
    rps=$(echo "$wrk_out" | awk '/Requests\/sec/ {print $2}')
    printf '%-26s wrk %9s req/s  nginx %8s  http-top %8s  drops %s  cpu %5.1f%% of a core  rss %s MiB\n' \
        "$label" "$rps" "$nginx_n" "$ht_n" "$drops" "$(echo "$t0 $hz $secs" | awk '{print 100 * $1 / $2 / $3}')" \
        "$((hwm / 1024))"
}
baseline=$(ip netns exec "$cli" wrk -d "${secs}s" -t 1 -c 16 http://10.241.0.1/ 2>&1 | awk '/Requests\/sec/ {print $2}')
echo "wrk without http-top: $baseline req/s"
run "max (1 thread, 16 conns)" -t 1 -c 16
run "fewer (1 thread, 2 conns)" -t 1 -c 2
