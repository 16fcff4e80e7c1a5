#!/usr/bin/env bash
# Records assets/demo.pcap: real traffic between real clients (curl) and a real server (nginx, with a
# python upstream behind it) in two network namespaces joined by a veth pair, captured with tcpdump.
#
# Bounded: a fixed number of request rounds, every curl with --max-time, the whole script under
# `timeout`. Traffic only goes to addresses inside the namespaces made here. Needs root.
set -euo pipefail

out=${1:?usage: demo-capture.sh OUT.pcap}
here=$(cd "$(dirname "$0")" && pwd)
httpd="$here/../../tui/tests/support/httpd.py"
work=$(mktemp -d)
# nginx workers run as nobody: they must be able to read the document root.
chmod 755 "$work"
srv=htdemo-s$$
cli=htdemo-c$$
pids=()

# shellcheck source=lab.sh
. "$here/lab.sh"

cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    lab_down "$srv" "$cli" "$work"
}
trap cleanup EXIT

lab_up "$srv" "$cli"
ip -n "$srv" addr add 10.232.0.1/24 dev "v$srv"
ip -n "$srv" addr add fd00:4855::1/64 dev "v$srv" nodad
for i in 2 3 4 5; do ip -n "$cli" addr add "10.232.0.$i/24" dev "v$cli"; done
ip -n "$cli" addr add fd00:4855::2/64 dev "v$cli" nodad

# Content with a spread of sizes.
mkdir -p "$work/www/static" "$work/logs"
head -c 1800 /dev/urandom | base64 -w 76 > "$work/www/static/app.css"
head -c 6000 /dev/urandom | base64 -w 76 > "$work/www/static/app.js"
head -c 4000 /dev/urandom > "$work/www/static/logo.png"
printf '<!doctype html><title>demo</title><h1>http-top demo</h1>\n' > "$work/www/index.html"

cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 256; }
http {
    log_format wire '\$remote_addr \$request_length \$bytes_sent \$status \$request_time "\$request"';
    access_log $work/logs/access.log wire;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp;
    default_type application/octet-stream;
    keepalive_requests 1000;
    gzip on;
    gzip_types text/css application/javascript text/plain;
    gzip_min_length 256;
    server {
        listen 10.232.0.1:80;
        listen [fd00:4855::1]:80;
        listen 10.232.0.1:8080;
        root $work/www;
        location /static/ { }
        location = / { }
        location /api/ { proxy_pass http://127.0.0.1:8000/; proxy_http_version 1.1; }
        location /search { proxy_pass http://127.0.0.1:8000/delay/15; }
        location /admin { return 403; }
        location /broken { proxy_pass http://127.0.0.1:9/; }
        location /old { return 301 /; }
        location /health { return 204; }
    }
}
CONF
mkdir -p "$work/tmp"

ip netns exec "$srv" python3 "$httpd" 127.0.0.1 8000 --ready "$work/httpd.ready" 2>/dev/null &
pids+=($!)
for _ in $(seq 100); do [ -e "$work/httpd.ready" ] && break; sleep 0.05; done
lab_nginx "$srv" "$work"

# --immediate-mode: hand each packet over at once; libpcap's default batches them in ring blocks for
# up to a second, and whatever is still in a block when tcpdump stops is lost.
ip netns exec "$cli" tcpdump -i "v$cli" -s 0 -U --immediate-mode --time-stamp-precision=nano -w "$work/demo.pcap" \
    "tcp port 80 or tcp port 8080" 2>"$work/tcpdump.log" &
pids+=($!)
for _ in $(seq 100); do grep -q "listening on" "$work/tcpdump.log" && break; sleep 0.05; done

base=http://10.232.0.1
c() { ip netns exec "$cli" curl -s -o /dev/null --max-time 5 "$@" || true; }

# 60 rounds; each round several clients (source addresses) with keep-alive, a mix of services.
for round in $(seq 60); do
    src=10.232.0.$((2 + round % 4))
    c --interface "$src" -H "Host: shop.example" --compressed \
        "$base/" "$base/static/app.css" "$base/static/app.js" "$base/static/logo.png" \
        -o /dev/null -o /dev/null -o /dev/null
    c --interface "$src" -H "Host: api.example" \
        "$base/api/bytes/$((200 + round * 37))" "$base/api/delay/$((round % 7 * 9))" "$base/api/status/200" \
        -o /dev/null -o /dev/null
    c --interface "$src" -H "Host: api.example" -X POST --data-binary "{\"order\":$round}" \
        -H 'Content-Type: application/json' "$base/api/orders"
    c --interface "$src" -H "Host: shop.example" "$base/search?s=shoes&page=$round" "$base/search?s=hats" \
        "$base/search?q=none" -o /dev/null -o /dev/null
    case $((round % 5)) in
        0) c --interface "$src" "$base/admin/panel" "$base/broken/x" -o /dev/null ;;
        1) c --interface "$src" -I "$base/static/app.js" ;;
        2) c --interface "$src" "$base/old/page" "$base/health" "$base/missing.html" -o /dev/null -o /dev/null ;;
        3) c -g "http://[fd00:4855::1]/static/app.css" --compressed ;;
        4) c --interface "$src" "$base:8080/api/bytes/5000" ;;
    esac
    sleep 0.$((RANDOM % 9 + 1))
done

sleep 1
kill -INT "${pids[-1]}"
wait "${pids[-1]}" 2>/dev/null || true
cp "$work/demo.pcap" "$out"
# nginx's own account of every request, for the tests to compare with.
cp "$work/logs/access.log" "${out%.pcap}-nginx.log"
echo "demo-capture: $(wc -l < "$work/logs/access.log") requests in nginx's log; wrote $out ($(stat -c %s "$out") bytes)"
