# Shared by the capture-recording scripts (sourced, not run): a server and a client network
# namespace joined by a veth pair, and their cleanup.
#
#   lab_up SRV CLI           create both namespaces, the veth (vSRV <-> vCLI), bring links up
#   lab_nginx SRV WORK       start nginx in SRV with WORK/nginx.conf; return once port 80 listens
#   lab_down SRV CLI WORK    stop the lab's nginx (if any), delete both namespaces and WORK
#   lab_cleanup              for `trap lab_cleanup EXIT` in a recording script: SIGINT to the
#                            tcpdump in $td (so it finishes its file), kill the processes in $pids,
#                            then lab_down "$srv" "$cli" "$work"
#   lab_begin NAME NET       for a load script: a work directory ($work, with www/ and logs/),
#                            namespaces htNAME-s$$ and htNAME-c$$ ($srv, $cli) holding NET.1 and
#                            NET.2 on their veth, and on exit (lab_end) the processes in $pids
#                            killed, the command in $lab_undo run (if set), the lab torn down
#   lab_cpu_s PID            user + system CPU seconds process PID has used so far
#   lab_counter NAME FILE    counter NAME of the last http-top summary line in FILE

lab_up() {
    local srv=$1 cli=$2
    ip netns add "$srv"
    ip netns add "$cli"
    ip link add "v$srv" netns "$srv" type veth peer name "v$cli" netns "$cli"
    for ns in "$srv" "$cli"; do
        ip -n "$ns" link set lo up
        ip -n "$ns" link set "v$ns" up
    done
}

lab_nginx() {
    local srv=$1 work=$2
    ip netns exec "$srv" nginx -p "$work" -c "$work/nginx.conf"
    for _ in $(seq 100); do
        ip netns exec "$srv" ss -ltn | grep -q ':80 ' && return 0
        sleep 0.05
    done
    echo "nginx did not start listening" >&2
    return 1
}

lab_down() {
    local srv=$1 cli=$2 work=$3
    ip netns exec "$srv" nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true
    ip netns del "$srv" 2>/dev/null || true
    ip netns del "$cli" 2>/dev/null || true
    rm -rf "$work"
}

lab_cleanup() {
    [ -n "${td:-}" ] && kill -INT "$td" 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    lab_down "$srv" "$cli" "$work"
}

lab_begin() {
    local name=$1 net=$2
    work=$(mktemp -d)
    chmod 755 "$work"
    srv=ht$name-s$$
    cli=ht$name-c$$
    pids=()
    trap lab_end EXIT
    lab_up "$srv" "$cli"
    ip -n "$srv" addr add "$net.1/24" dev "v$srv"
    ip -n "$cli" addr add "$net.2/24" dev "v$cli"
    mkdir -p "$work/www" "$work/logs"
}

lab_end() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${lab_undo:-}" ]; then eval "$lab_undo" || true; fi
    lab_down "$srv" "$cli" "$work"
}

lab_cpu_s() {
    awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

lab_counter() {
    grep -o " $1=[0-9]*" "$2" | tail -1 | cut -d= -f2
}
