#!/usr/bin/env bash
# The demo: check the examples, print a plan, and ask `enforcer test` a few questions.
set -u
# (the offline part needs no root)
enforcer=${1:-.build/debug/enforcer}
at=2026-11-23T15:00:00Z   # a Monday, 10:00 in New York
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; echo "(exit $?)"; }

step "$enforcer" check --dir examples/enclave
step "$enforcer" check --dir examples/enforcegate
step "$enforcer" apply --dry-run --dir examples/enclave --system db-1 --at "$at"
step "$enforcer" test --dir examples/enclave --from dev-laptop-1 --to k8s-node-1 --proto tcp --port 6443 --at "$at"
step "$enforcer" test --dir examples/enclave --from k8s-node-1 --to dev-laptop-1 --proto tcp --port 22 --at "$at"
step "$enforcer" test --dir examples/enclave --from ws-1 --to srv-1 --proto tcp --port 8080 --at "$at"
step "$enforcer" test --dir examples/enclave --from dev-laptop-1 --to db-1 --proto tcp --port 5432 --at "$at"
step "$enforcer" test --dir examples/enclave --from dev-laptop-1 --to db-1 --proto tcp --port 5432 --at 2026-11-24T03:00:00Z
step "$enforcer" test --dir examples/enclave --from ws-2 --to 10.30.0.5 --proto tcp --port 631 --at "$at"
step "$enforcer" test-uri --dir examples/enforcegate https://bit.ly/abc
step "$enforcer" test-uri --dir examples/enforcegate https://www.admin.ch/
step "$enforcer" test-uri --dir examples/enforcegate https://www.reddit.com/ --at "$at"
step "$enforcer" test-uri --dir examples/enforcegate https://www.reddit.com/ --at 2026-11-23T19:00:00Z

# ---------------------------------------------------------------------------------------
# Live: the Enclave lab in network namespaces, every system's ruleset loaded with
# `enforcer apply`, then real connections (nc) compared with what the policy says.
if [ "$(id -u)" != 0 ]; then
    echo; echo "(the live part needs root: run 'sudo make demo')"; exit 0
fi
here=$(cd "$(dirname "$0")" && pwd)
enforcer=$(realpath "$enforcer")
state=$(mktemp -d /tmp/enforcer-demo-state.XXXXXX)
servers=() listeners=()
cleanup() { for pid in "${servers[@]}"; do kill -KILL "$pid" 2>/dev/null; done; "$here/lab.sh" down; rm -rf "$state"; }
trap cleanup EXIT
printf '\n\033[1m$ scripts/lab.sh up\033[0m   (router-1 with three segments, 13 hosts, IPv4 + IPv6)\n'
"$here/lab.sh" up
for system in dev-laptop-1 dev-laptop-2 contractor-1 sre-1 ws-1 ws-2 kiosk-1 k8s-node-1 k8s-node-2 srv-1 srv-2 db-1 router-1; do
    printf '%-14s ' "$system"
    ip netns exec "enf-$system" "$enforcer" apply --dir examples/enclave --system "$system" --state-dir "$state/$system" --at "$at" | cut -c1-110
done
serve() { ip netns exec "enf-$1" socat "TCP6-LISTEN:$2,fork,reuseaddr,ipv6only=0" EXEC:/bin/cat >/dev/null 2>&1 & servers+=($!); disown $!; listeners+=("$1:$2"); }
for port in 6443 30080 22; do serve k8s-node-1 $port; done
for port in 22 443 8080; do serve srv-1 $port; done
for port in 5432 22; do serve db-1 $port; done
for port in 631 9100 22; do serve printer-1 $port; done
for host in dev-laptop-1 contractor-1 ws-2 kiosk-1; do serve $host 22; done
# Every listener up before the first attempt (a loaded machine starts socat late).
listening() { ip netns exec "enf-$1" ss -Hltn "sport = :$2" | grep -q LISTEN; }
for pair in "${listeners[@]}"; do
    for _ in $(seq 50); do listening "${pair%:*}" "${pair#*:}" && break; sleep 0.1; done
done

rows="
dev-laptop-1 10.20.0.11 6443 allow Kubernetes access (developers → pods)
contractor-1 fd00:20::11 30080 allow Kubernetes access (contractors → pods, IPv6)
dev-laptop-1 10.20.0.11 22 deny port ACL: tcp/22 is not in Kubernetes access
k8s-node-1 10.10.1.11 22 deny receivers cannot initiate
dev-laptop-1 10.10.1.21 22 deny same side: developers and contractors are never connected
ws-1 10.20.1.11 22 allow Server access for Workstations
ws-1 fd00:20:1::11 8080 deny port ACL is per policy (8080 only for servers' full mesh)
srv-2 10.20.1.11 8080 allow Servers full mesh (any)
sre-1 10.20.2.11 5432 allow Database Servers for SRE
dev-laptop-1 fd00:20:2::11 5432 allow Database Servers for Developers (Mon 10:00 New York)
ws-2 10.30.0.5 631 allow Printers for Workstations through router-1
ws-2 fd00:30::5 9100 allow Printers for Workstations through router-1 (IPv6)
ws-2 10.30.0.5 22 deny gateway policy grants tcp/631 and tcp/9100 only
10.30.0.5 10.10.2.12 22 deny the printer subnet cannot initiate back
dev-laptop-1 10.30.0.5 631 deny developers are not workstations
ws-1 10.10.2.99 22 deny untagged kiosk-1 gets nothing
kiosk-1 10.20.1.11 22 deny untagged kiosk-1 gets nothing
"
printf '\n\033[1m%-14s %-16s %6s  %-8s %-8s %s\033[0m\n' from to port expected observed because
# All attempts at once, each given 3 s: long enough for the kernel's first SYN
# retransmission (1 s), so one lost SYN on a loaded machine is not read as a deny.
attempts=$(mktemp -d /tmp/enforcer-demo-attempts.XXXXXX)
n=0 pending=()
while read -r from to port expected because; do
    [ -n "$from" ] || continue
    n=$((n + 1))
    [ "$from" = 10.30.0.5 ] && ns=enf-printer-1 || ns="enf-$from"
    ( if ip netns exec "$ns" nc -z -w 3 "$to" "$port" 2>/dev/null; then echo allow; else echo deny; fi >"$attempts/$n" ) &
    pending+=($!)
done <<< "$rows"
wait "${pending[@]}"   # (not a bare wait: the servers are jobs of this shell too)
ok=0 bad=0 n=0
while read -r from to port expected because; do
    [ -n "$from" ] || continue
    n=$((n + 1))
    observed=$(cat "$attempts/$n")
    if [ "$observed" = "$expected" ]; then mark=ok; ok=$((ok + 1)); else mark=MISMATCH; bad=$((bad + 1)); fi
    printf '%-14s %-16s %6s  %-8s %-8s %s  %s\n' "$from" "$to" "$port" "$expected" "$observed" "$because" "$mark"
done <<< "$rows"
rm -rf "$attempts"
echo; echo "$ok as the policy says, $bad mismatches"
[ "$bad" = 0 ] || exit 1

# The fleet: the same lab, its policy in etcd (db-1's :22 is still served from above).
bash "$here/fleet-demo.sh" "$enforcer" "$state"
