#!/usr/bin/env bash
# Body skipping under load: nginx serves 5 MiB and 100 MiB files to wrk (keep-alive, at its
# maximum rate, for a bounded time) across a veth; http-top captures the client's end with body
# skipping on (the default) and off (--no-skip), with the default ring and a small one. For each
# run it prints one line of key=value pairs (for cargo xtask bench):
#   bytes nginx sent and requests it logged, the same as http-top counted them (--json),
#   bytes that reached userspace (captured), ring drops, http-top's CPU seconds while wrk ran
#   (from /proc/PID/stat: its own, user and system), and wrk's throughput.
# Needs root. Usage: skip-load.sh HTTP_TOP_BINARY [SECONDS]
set -euo pipefail

bin=${1:?usage: skip-load.sh HTTP_TOP_BINARY [SECONDS]}
secs=${2:-8}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab.sh
. "$here/lab.sh"
lab_begin skip 10.243.0
head -c $((5 << 20)) /dev/urandom > "$work/www/5m.bin"
head -c $((100 << 20)) /dev/urandom > "$work/www/100m.bin"
chmod -R a+rX "$work"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http {
    log_format wire '\$bytes_sent \$status';
    access_log $work/logs/access.log wire;
    keepalive_requests 1000000;
    sendfile on;
    server { listen 10.243.0.1:80; root $work/www; }
}
CONF
lab_nginx "$srv" "$work"

counter() { lab_counter "$1" "$work/ht.err"; }

wrk_rate() { # body: MB/s wrk read, from its "Transfer/sec"
    awk '/Transfer\/sec/ {v=$2; u=substr(v, length(v)-1); n=substr(v, 1, length(v)-2);
        if (u=="GB") n*=1024; if (u=="KB") n/=1024; print n}'
}

run() { # label, body file, http-top args...
    local label=$1 file=$2; shift 2
    : > "$work/logs/access.log"
    ip netns exec "$srv" nginx -p "$work" -c "$work/nginx.conf" -s reopen
    ip netns exec "$cli" "$bin" -i "v$cli" --json --duration $((secs + 10)) "$@" \
        > "$work/ht.json" 2> "$work/ht.err" &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 200); do grep -q "capturing on" "$work/ht.err" 2>/dev/null && break; sleep 0.05; done
    # Past start-up (the first scan of process names) before the clock starts.
    sleep 1
    local out cpu0 cpu
    cpu0=$(lab_cpu_s "$pid")
    out=$(ip netns exec "$cli" timeout $((secs + 20)) wrk -d "${secs}s" -t 1 -c 4 "http://10.243.0.1/$file" 2>&1)
    cpu=$(awk -v a="$(lab_cpu_s "$pid")" -v b="$cpu0" 'BEGIN {print a - b}')
    # nginx logs a request once it is sent; let the last ones reach the log and http-top.
    sleep 1
    kill -INT "$pid"; wait "$pid" || true
    local nginx_n nginx_bytes ht_n ht_bytes
    # Only completed requests: wrk stops mid-body, and nginx logs the cut one with its partial
    # bytes (status 200), which http-top reports as truncated: both sides leave those out.
    nginx_n=$(awk -v full=$(( $(stat -c %s "$work/www/$file") )) '$1 > full {n++} END {print n+0}' "$work/logs/access.log")
    nginx_bytes=$(awk -v full=$(( $(stat -c %s "$work/www/$file") )) '$1 > full {b+=$1} END {printf "%.0f", b}' "$work/logs/access.log")
    read -r ht_n ht_bytes < <(python3 -c '
import json, sys
n = b = 0
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e.get("status") == 200 and not e["truncated"] and not e["gap"]:
        n += 1; b += e["response_bytes"]
print(n, b)' "$work/ht.json")
    printf 'skip-row label=%s body=%s nginx_requests=%s nginx_bytes=%s http_top_requests=%s http_top_bytes=%s captured=%s filter_skipped_bytes=%s ring_drops=%s gaps=%s cpu_s=%s wrk_mb_s=%s\n' \
        "$label" "$file" "$nginx_n" "$nginx_bytes" "$ht_n" "$ht_bytes" "$(counter bytes)" \
        "$(counter filter_skipped_bytes)" "$(counter ring_drops)" "$(counter gaps)" "$cpu" \
        "$(echo "$out" | wrk_rate)"
}

for file in 5m.bin 100m.bin; do
    run skip "$file"
    run copy "$file" --no-skip
done
run skip-ring2 5m.bin --ring-mb 2
run copy-ring2 5m.bin --ring-mb 2 --no-skip
