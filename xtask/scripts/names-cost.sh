#!/usr/bin/env bash
# The names resolver's cost on a crowded machine: NS network namespaces with PER sleeping processes
# each (default 100 x 10 = 1 000 processes), one listening socket per namespace, then SCANS scans by
# the helper exactly as http-top runs it (`http-top --names-helper`, one byte per scan), timed with
# the kernel's own CPU accounting. Everything it makes is removed at the end; every process it
# starts ends by itself (sleep with a bound).
#
# Usage: names-cost.sh BIN [NS] [PER] [SCANS]      (root)
set -euo pipefail
bin=$1; ns=${2:-100}; per=${3:-10}; scans=${4:-20}
tag="htcost$$"
cleanup() {
    for i in $(seq 1 "$ns"); do ip netns del "$tag$i" 2>/dev/null || true; done
    pkill -f "sleep 3$$" 2>/dev/null || true
}
trap cleanup EXIT
for i in $(seq 1 "$ns"); do
    ip netns add "$tag$i"
    ip -n "$tag$i" link set lo up
    for _ in $(seq 1 "$per"); do ip netns exec "$tag$i" sleep "3$$" & done
    ip netns exec "$tag$i" timeout 300 /usr/bin/python3 -c 'import socket,time; s=socket.socket(); s.bind(("127.0.0.1",8080)); s.listen(); time.sleep(300)' &
done
sleep 2
echo "processes: $(ls /proc | grep -c '^[0-9]')  namespaces: $(ip netns list | wc -l)"
# One scan per byte; the reply's size and the helper's CPU (utime+stime from its stat, in ticks).
python3 - "$bin" "$scans" <<'PY'
import os, subprocess, sys, time, struct
bin, scans = sys.argv[1], int(sys.argv[2])
p = subprocess.Popen([bin, "--names-helper"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def cpu():
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
walls, size = [], 0
for _ in range(scans):
    t = time.monotonic()
    p.stdin.write(b"S"); p.stdin.flush()
    n = struct.unpack("<I", p.stdout.read(4))[0]
    size = len(p.stdout.read(n))
    walls.append(time.monotonic() - t)
c = cpu()
p.stdin.close(); p.wait()
walls.sort()
print(f"scans: {scans}  reply: {size} bytes  wall per scan: median {walls[len(walls)//2]*1e3:.1f} ms, max {walls[-1]*1e3:.1f} ms")
print(f"helper CPU per scan: {c/scans*1e3:.1f} ms  (every 5 s: {c/scans/5*100:.2f}% of a core)")
PY
# The main process's side: http-top itself on lo for 16 s (about four scans: at start, then every
# 5 s), its `names` thread's CPU (decoding and indexing the snapshots) from /proc.
"$bin" -i lo --headless -q --duration 16 2>/dev/null &
top=$!
sleep 15
tid=$(grep -l '^names$' /proc/$top/task/*/comm | head -1 | xargs dirname)
ticks=$(awk '{print $14+$15}' "$tid/stat")
echo "http-top's names thread: $(echo "$ticks * 1000 / $(getconf CLK_TCK) / 4" | bc) ms CPU per scan (4 scans in 15 s)"
wait $top
