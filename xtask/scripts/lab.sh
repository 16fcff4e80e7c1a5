# Shared by the capture-recording scripts (sourced, not run): a server and a client network
# namespace joined by a veth pair, and their cleanup.
#
#   lab_up SRV CLI           create both namespaces, the veth (vSRV <-> vCLI), bring links up
#   lab_down SRV CLI WORK    stop the lab's nginx (if any), delete both namespaces and WORK

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

lab_down() {
    local srv=$1 cli=$2 work=$3
    ip netns exec "$srv" nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true
    ip netns del "$srv" 2>/dev/null || true
    ip netns del "$cli" 2>/dev/null || true
    rm -rf "$work"
}
