#!/usr/bin/env bash
# The demo's fleet act, in the Enclave lab that scripts/demo.sh brought up (root): etcd in a
# namespace of its own on the servers' segment, the Enclave policy pushed to it, db-1 following
# it with `enforcer run --store`, a trust revoke through the store cutting a live connection,
# and a new host enrolled with a key and reached. Exits 1 if anything is not as it should be.
#
#   scripts/fleet-demo.sh ENFORCER STATE_DIR
set -euo pipefail
enforcer=$1 state=$2
store=enf-store url=http://10.20.9.1:2379
export TZ=UTC
pids=()
cleanup() {
    # What the agent said, for a run that went wrong.
    [ $bad = 0 ] || { echo "db-1's log:"; tail -20 "$state/db-1.log" 2>/dev/null; }
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for ns in enf-store enf-app-1; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}
bad=0
trap cleanup EXIT
check() {  # check WHAT COMMAND...: prints WHAT and ok or WRONG
    if "${@:2}"; then printf '  %-72s ok\n' "$1"; else printf '  %-72s WRONG\n' "$1"; bad=$((bad + 1)); fi
}
say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
show() { printf '\033[1m$ %s\033[0m\n' "$*"; }
wait_for() {  # wait_for FILE TEXT [SECONDS]
    local end=$((SECONDS + ${3:-15}))
    while [ $SECONDS -lt $end ]; do grep -qF -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "  (waited for '$2' in $1 in vain)"; return 1
}
host() {  # host NAME V4 V6: a namespace on the servers' segment of router-1
    ip netns add "enf-$1"; ip -n "enf-$1" link set lo up
    ip link add "enfx-$1" netns "enf-$1" type veth peer name "px-$1" netns enf-router-1
    ip -n enf-router-1 link set "px-$1" master br-right up
    ip -n "enf-$1" link set "enfx-$1" name eth0; ip -n "enf-$1" link set eth0 up
    ip -n "enf-$1" addr add "$2/16" dev eth0; ip -n "enf-$1" addr add "$3/32" dev eth0 nodad
    ip -n "enf-$1" route add default via 10.20.0.1; ip -n "enf-$1" -6 route add default via fd00:20::1
}
connects() { ip netns exec "enf-$1" nc -z -w 3 "$2" "$3" 2>/dev/null; }
refused() { ! ip netns exec "enf-$1" nc -z -w 2 "$2" "$3" 2>/dev/null; }

say "Fleet act: one policy in etcd for every host"
# router-1's bridges pass the segments' own traffic through its forward chain too (the
# kernel's br_netfilter), where its applied policy knows no store: its table goes for this act.
show "enforcer flush --reason 'fleet act'   (on router-1)"
ip netns exec enf-router-1 "$enforcer" flush --state-dir "$state/router-1" --reason "fleet act" | sed 's/^/  /' | cut -c1-110
host store 10.20.9.1 fd00:20:9::1
mkdir -p "$state/etcd"
ip netns exec $store etcd --name demo --data-dir "$state/etcd" --listen-client-urls "$url,http://127.0.0.1:2379" \
    --advertise-client-urls "$url" --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster demo=http://127.0.0.1:2380 > "$state/etcd.log" 2>&1 &
pids+=($!); disown $!
for _ in $(seq 100); do
    ip netns exec $store curl -s -m 1 -X POST http://127.0.0.1:2379/v3/maintenance/status -d '{}' | grep -q version && break; sleep 0.1
done
printf 'demo root password\n' > "$state/password"
login=(--store-user root --store-password-file "$state/password")
fleet() { ip netns exec $store "$enforcer" "$@" --store http://127.0.0.1:2379 --fleet demo; }
admin() { ip netns exec $store "$enforcer" "$@" --store http://127.0.0.1:2379 --fleet demo "${login[@]}"; }

# The Enclave policy, plus an admin port that needs multi-factor trust.
cp -r examples/enclave "$state/policy"
printf '[policy] "Admin for SRE and contractors": {\n    senders: sre, contractors\n    receivers: database-servers\n    allow: tcp/2222\n    trust: mfa\n}\n' \
    > "$state/policy/rules.d/50-admin.policy"
show "enforcer fleet init --root-password-file PASSWORD"; fleet fleet init --root-password-file "$state/password" | sed 's/^/  /'
show "enforcer fleet push --dir examples/enclave (+ 50-admin.policy)"; admin fleet push --dir "$state/policy" --message "the Enclave policy" | sed 's/^/  /'
admin fleet host add db-1 --password-file "$state/password" > /dev/null

# db-1 follows the store (its table until now came from `enforcer apply`).
show "enforcer run --store $url --system db-1   (on db-1)"
ip netns exec enf-db-1 "$enforcer" run --store "$url" --fleet demo --system db-1 --state-dir "$state/fleet-db-1" \
    --store-user enforcer.demo.system.db-1 --store-password-file "$state/password" > "$state/db-1.log" 2>&1 &
pids+=($!); disown $!
wait_for "$state/db-1.log" "applied generation 1" || true
sed -n 's/^[^ ]* level=info msg="\(applied generation 1[^"]*\)".*/  db-1: \1/p' "$state/db-1.log" | cut -c1-110

say "A trust revoke through the store cuts a live connection"
ip netns exec enf-db-1 socat TCP6-LISTEN:2222,fork,reuseaddr,ipv6only=0 EXEC:/bin/cat > /dev/null 2>&1 & pids+=($!); disown $!
sleep 0.3
show "enforcer trust grant contractor-1 mfa --store $url"; admin trust grant contractor-1 mfa | sed 's/^/  /'
wait_for "$state/db-1.log" "applied generation 2" > /dev/null || true
ip netns exec enf-contractor-1 python3 -c '
import socket, sys, time
s = socket.create_connection(("10.20.2.11", 2222), timeout=2)
while True:
    s.sendall(b"ping\n")
    if s.recv(16) != b"ping\n": sys.exit(1)
    time.sleep(0.05)' 2> /dev/null & chatter=$!; pids+=($chatter); disown $chatter
sleep 0.5
check "contractor-1 → db-1 tcp/2222 (mfa granted): a live connection" kill -0 $chatter
show "enforcer trust revoke contractor-1 mfa --store $url"; admin trust revoke contractor-1 mfa | sed 's/^/  /'
start=$EPOCHREALTIME
wait_for "$state/db-1.log" "runtime overrides changed): applied generation 3" > /dev/null || true
applied=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
for _ in $(seq 80); do kill -0 $chatter 2>/dev/null || break; sleep 0.05; done
check "db-1 applied the revoke (in ${applied} ms, polled), its connection is cut" bash -c "! kill -0 $chatter 2>/dev/null"
check "contractor-1 → db-1 tcp/2222: refused from now on" refused contractor-1 10.20.2.11 2222

say "A new host enrolled with a key: db-1 opens to it as one of the servers"
show "enforcer fleet key create --tags servers --uses 1 --expires 1h"
key=$(admin fleet key create --tags servers --uses 1 --expires 1h | head -1)
echo "  ${key%%.*}.…"
host app-1 10.20.3.11 fd00:20:3::11
check "app-1 → db-1 tcp/22 before it enrols: refused" refused app-1 10.20.2.11 22
show "enforcer enrol --key KEY --name app-1 --store $url   (on app-1)"
ip netns exec enf-app-1 "$enforcer" enrol --store "$url" --fleet demo --key "$key" --name app-1 --state-dir "$state/fleet-app-1" | sed 's/^/  /'
wait_for "$state/db-1.log" "enrolled systems: app-1 added" > /dev/null || true
check "db-1 applied app-1 (servers reach servers)" grep -q "app-1 added): applied generation" "$state/db-1.log"
check "app-1 → db-1 tcp/22 after it enrolled: connects" connects app-1 10.20.2.11 22
echo; echo "fleet act: $([ $bad = 0 ] && echo "all as it should be" || echo "$bad WRONG")"
[ $bad = 0 ]
