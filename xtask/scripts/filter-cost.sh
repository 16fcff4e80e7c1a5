#!/usr/bin/env bash
# The kernel filter's own cost: nginx serves a 600-byte page (with sendfile, its head goes in a
# segment of its own, which the filter reads; without, head and page go in one short segment,
# which it does not) and a 5 MiB file to wrk (bounded in time) across a veth; http-top captures
# the client's end with body skipping on (the filter reads response heads) and with --no-skip
# (it reads none). With the kernel's BPF statistics on
# (kernel.bpf_stats_enabled, restored after), it reads the program's run count and run time from
# the fdinfo of http-top's program descriptor and prints one line per run (for cargo xtask bench):
# runs, nanoseconds per run, wrk's rate.
# Needs root. Usage: filter-cost.sh HTTP_TOP_BINARY [SECONDS]
set -euo pipefail

bin=${1:?usage: filter-cost.sh HTTP_TOP_BINARY [SECONDS]}
secs=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab.sh
. "$here/lab.sh"
# shellcheck disable=SC2034 # run by lab_end
lab_undo="sysctl -q kernel.bpf_stats_enabled=$(sysctl -n kernel.bpf_stats_enabled)"
lab_begin fc 10.245.0
sysctl -q kernel.bpf_stats_enabled=1
mkdir -p "$work/www/one"
head -c 450 /dev/urandom | base64 > "$work/www/index.html"
cp "$work/www/index.html" "$work/www/one/index.html"
head -c $((5 << 20)) /dev/urandom > "$work/www/5m.bin"
chmod -R a+rX "$work"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    server {
        listen 10.245.0.1:80;
        root $work/www;
        location /one/ { sendfile off; }
    }
}
CONF
lab_nginx "$srv" "$work"

# run_cnt and run_time_ns of the socket filter process PID holds.
prog_stats() {
    local f
    for f in /proc/"$1"/fdinfo/*; do
        if grep -q '^prog_type:' "$f" 2>/dev/null; then
            awk '/^run_cnt:/ {c = $2} /^run_time_ns:/ {t = $2} END {print c, t}' "$f"
            return
        fi
    done
    echo "0 0"
}

run() { # label, path, connections, http-top args...
    local label=$1 path=$2 conns=$3; shift 3
    ip netns exec "$cli" "$bin" -i "v$cli" --headless --interval 3600 --duration $((secs + 10)) "$@" \
        > /dev/null 2> "$work/ht.err" &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 200); do grep -q "capturing on" "$work/ht.err" 2>/dev/null && break; sleep 0.05; done
    sleep 1
    local out s0 s1
    s0=$(prog_stats "$pid")
    out=$(ip netns exec "$cli" timeout $((secs + 20)) wrk -d "${secs}s" -t 1 -c "$conns" "http://10.245.0.1/$path" 2>&1)
    s1=$(prog_stats "$pid")
    kill -INT "$pid"; wait "$pid" || true
    awk -v a="$s0" -v b="$s1" -v label="$label" -v rps="$(echo "$out" | awk '/Requests\/sec/ {print $2}')" \
        -v heads="$(lab_counter filter_head_stretches "$work/ht.err")" \
        -v unread="$(lab_counter filter_heads_unread "$work/ht.err")" 'BEGIN {
        split(a, x, " "); split(b, y, " "); n = y[1] - x[1]; t = y[2] - x[2]
        printf "filter-row label=%s runs=%d run_ns=%d ns_per_run=%.0f head_stretches=%s heads_unread=%s wrk_rps=%s\n", label, n, t, n ? t / n : 0, heads, unread, rps
    }'
}

run small-skip "" 16
run small-noskip "" 16 --no-skip
run small1-skip one/ 16
run small1-noskip one/ 16 --no-skip
run 5m-skip 5m.bin 4
run 5m-noskip 5m.bin 4 --no-skip
