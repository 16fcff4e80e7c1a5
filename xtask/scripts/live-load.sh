#!/usr/bin/env bash
# Live load: nginx in one namespace, the load generator in another, http-top capturing the
# client's veth. At wrk's maximum rate, then at fixed rates of 10 000 and 1 000 requests/s (oha -q:
# Debian's wrk has no fixed-rate mode), each for a bounded time, it reports: requests nginx logged,
# requests http-top counted, ring drops, http-top's CPU (from /proc) and peak RSS, and the load
# generator's throughput (wrk's also without http-top attached). Then a stream of zeros to a
# non-HTTP port at full speed: what the kernel filter saw, what reached userspace, and the CPU
# http-top spent. Needs root. Usage: live-load.sh HTTP_TOP_BINARY [SECONDS]
set -euo pipefail

bin=${1:?usage: live-load.sh HTTP_TOP_BINARY [SECONDS]}
secs=${2:-10}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab.sh
. "$here/lab.sh"
lab_begin load 10.241.0
mkdir -p "$work/tmp"
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
start_top() { # extra http-top args...
    ip netns exec "$cli" "$bin" -i "v$cli" --headless --interval 3600 --duration $((secs + 5)) "$@" \
        > "$work/ht.out" 2> "$work/ht.err" &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 200); do grep -q "capturing on" "$work/ht.err" 2>/dev/null && break; sleep 0.05; done
}
# CPU seconds http-top used so far, as a percentage of one core over the run.
cpu_pct() { awk -v hz="$hz" -v s="$secs" '{print 100 * ($14 + $15) / hz / s}' "/proc/$pid/stat"; }
counter() { grep -o " $1=[0-9]*" "$work/ht.err" | tail -1 | cut -d= -f2; }

run() { # label, wrk|oha, load generator args...
    local label=$1 tool=$2; shift 2
    if ! command -v "$tool" > /dev/null; then
        # The fixed-rate rows need oha (`cargo xtask bench --live` installs it); the rest still run.
        printf '%-30s %s not installed: skipped\n' "$label" "$tool"
        return 0
    fi
    : > "$work/logs/access.log"
    ip netns exec "$srv" nginx -p "$work" -c "$work/nginx.conf" -s reopen
    start_top
    local out
    case $tool in
        wrk) out=$(ip netns exec "$cli" wrk -d "${secs}s" "$@" http://10.241.0.1/ 2>&1) ;;
        oha) out=$(ip netns exec "$cli" oha -z "${secs}s" --no-tui "$@" http://10.241.0.1/ 2>&1) ;;
    esac
    local cpu hwm
    cpu=$(cpu_pct)
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
    kill -INT "$pid"; wait "$pid" || true
    local nginx_n rps
    nginx_n=$(wc -l < "$work/logs/access.log")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    printf '%-30s %s %9.0f req/s  nginx %8s  http-top %8s  drops %s  cpu %5.1f%% of a core  rss %s MiB\n' \
        "$label" "$tool" "$rps" "$nginx_n" "$(counter requests)" "$(counter ring_drops)" "$cpu" \
        "$((hwm / 1024))"
}
baseline=$(ip netns exec "$cli" wrk -d "${secs}s" -t 1 -c 16 http://10.241.0.1/ 2>&1 | awk '/Requests\/sec/ {print $2}')
echo "wrk without http-top: $baseline req/s"
run "max (wrk, 16 conns)" wrk -t 1 -c 16
run "10 000/s (oha -q, 16 conns)" oha -q 10000 -c 16
run "1 000/s (oha -q, 16 conns)" oha -q 1000 -c 16

# Not HTTP: zeros at full speed to another port. The filter drops it in the kernel.
cat > "$work/sink.py" <<'PY'
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.241.0.1", 9100)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(30)
while c.recv(1 << 20):
    pass
PY
ip netns exec "$srv" python3 "$work/sink.py" &
sink=$!
pids+=("$sink")
sleep 0.5
start_top
ip netns exec "$cli" python3 -c "
import socket, time
s = socket.create_connection(('10.241.0.1', 9100)); buf = bytes(1 << 20); n = 0
end = time.time() + $secs
while time.time() < end:
    s.sendall(buf); n += 1
s.close(); print(n)
" > "$work/bulk.out"
cpu=$(cpu_pct)
kill -INT "$pid"; wait "$pid" || true
wait "$sink" || true
printf '%-30s %s MiB of zeros in %ss: filter saw %s frames, kept %s, userspace got %s packets, cpu %5.1f%% of a core\n' \
    "bulk non-HTTP (port 9100)" "$(cat "$work/bulk.out")" "$secs" "$(counter filter_seen)" \
    "$(counter filter_kept)" "$(counter packets)" "$cpu"
