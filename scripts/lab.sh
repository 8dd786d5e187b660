#!/usr/bin/env bash
# The Enclave lab: network namespaces wired like examples/enclave, for `make demo` and by hand.
#   scripts/lab.sh up      router enf-router-1 with three segments (bridges), one namespace per host
#   scripts/lab.sh down    removes every enf-* namespace
#   scripts/lab.sh list
# Addresses are those of examples/enclave/rules.d; printer-1 (10.30.0.5) stands for the
# gateway-policy subnet. IPv4 and IPv6 everywhere; neighbour discovery is left on.
set -euo pipefail
R=enf-router-1

# name segment ipv4 ipv6
HOSTS="
dev-laptop-1 left 10.10.1.11 fd00:10:1::11
dev-laptop-2 left 10.10.1.12 fd00:10:1::12
contractor-1 left 10.10.1.21 fd00:10:1::21
sre-1 left 10.10.1.31 fd00:10:1::31
ws-1 left 10.10.2.11 fd00:10:2::11
ws-2 left 10.10.2.12 fd00:10:2::12
kiosk-1 left 10.10.2.99 fd00:10:2::99
k8s-node-1 right 10.20.0.11 fd00:20::11
k8s-node-2 right 10.20.0.12 fd00:20::12
srv-1 right 10.20.1.11 fd00:20:1::11
srv-2 right 10.20.1.12 fd00:20:1::12
db-1 right 10.20.2.11 fd00:20:2::11
printer-1 printers 10.30.0.5 fd00:30::5
"

segment() {  # segment NAME → "router-v4 prefix4 router-v6 prefix6"
    case $1 in
        left) echo "10.10.0.1 16 fd00:10::1 32" ;;
        right) echo "10.20.0.1 16 fd00:20::1 32" ;;
        printers) echo "10.30.0.1 24 fd00:30::1 64" ;;
    esac
}

up() {
    down
    ip netns add $R
    ip -n $R link set lo up
    ip netns exec $R sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    for s in left right printers; do
        read -r v4 p4 v6 p6 < <(segment $s)
        ip -n $R link add br-$s type bridge
        ip -n $R link set br-$s up
        ip -n $R addr add $v4/$p4 dev br-$s
        ip -n $R addr add $v6/$p6 dev br-$s nodad
    done
    local i=0
    while read -r name seg v4 v6; do
        [ -n "$name" ] || continue
        read -r rv4 p4 rv6 p6 < <(segment "$seg")
        local ns=enf-$name
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip link add "enfv$i" netns "$ns" type veth peer name "p$i" netns $R
        ip -n $R link set "p$i" master "br-$seg" up
        ip -n "$ns" link set "enfv$i" name eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" addr add "$v4/$p4" dev eth0
        ip -n "$ns" addr add "$v6/$p6" dev eth0 nodad
        ip -n "$ns" route add default via "$rv4"
        ip -n "$ns" -6 route add default via "$rv6"
        i=$((i + 1))
    done <<< "$HOSTS"
}

down() {
    # Processes outlive their namespace's name: stop every one still inside first.
    for ns in $(ip netns list | awk '/^enf-/ {print $1}'); do
        pids=$(ip netns pids "$ns" 2>/dev/null)
        [ -n "$pids" ] && kill -KILL $pids 2>/dev/null
        ip netns del "$ns"
    done
}

case ${1:-} in
    up) up ;;
    down) down ;;
    list) ip netns list | awk '/^enf-/ {print $1}' ;;
    *) echo "usage: $0 up|down|list" >&2; exit 2 ;;
esac
