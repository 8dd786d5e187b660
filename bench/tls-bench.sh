#!/bin/bash
# TLS connections per second through a gateway with SNI inspection vs without (goal:
# >= 0.97x), and the handshake latency the inspection adds (goal: p99 <= 100 us more).
#
# Lab, in network namespaces this script makes and deletes: client (office-pc-1,
# 192.168.50.11) -- gateway (gw-1: 192.168.50.1 | 203.0.113.1) -- server (203.0.113.10),
# as in LiveTrafficTests' gateway test. Server: `openssl s_server -www` on :443 with a
# self-signed P-256 certificate for example.org. Client: bench/tls-handshakes.py, one
# connection at a time (TCP connect + TLS 1.3 handshake with SNI example.org, verified),
# for SECONDS per run.
#   with inspection:    `enforcer run` with examples/enforcegate on the gateway: flows to 443
#                       are queued until the worker has judged their ClientHello.
#   without:            the same policy less its web rules (the blocks with no [kind], and
#                       the url expectations that test them), applied by `enforcer apply`:
#                       no queue at all.
#   queue, C no-op:     the full policy applied by `enforcer apply`, its queue answered by
#                       bench/noop-queue.c -b (accepts every packet, marks none, so every
#                       client packet of each flow is queued): what any NFQUEUE consumer pays
#                       on this machine, the floor under "with inspection".
# Rounds alternate without / with, so drift of this shared machine hits both alike; each
# round's ratio is printed too, and the spread of those says how far one run can be trusted
# (two runs of the script should agree within 2 %: add rounds until they do).
#
# Usage: bench/tls-bench.sh [ENFORCER]   (root; env SECONDS_PER_RUN=6 ROUNDS=3)
set -euo pipefail
cd "$(dirname "$0")/.."
ENFORCER=$(realpath "${1:-.build/release/enforcer}")
RUN_SECONDS=${SECONDS_PER_RUN:-6} ROUNDS=${ROUNDS:-3}
[ "$(id -u)" = 0 ] || { echo "tls-bench: needs root (network namespaces)" >&2; exit 1; }
[ -x "$ENFORCER" ] || { echo "tls-bench: no enforcer at $ENFORCER" >&2; exit 1; }
command -v iptables-nft >/dev/null || { echo "tls-bench: needs iptables-nft (Debian package iptables) for enforcer's xt NFQUEUE fallback" >&2; exit 1; }

WORK=$(mktemp -d /tmp/enforcer-tls-bench.XXXXXX)
T=$$
CLI=enft-$T-cli GW=enft-$T-gw SRV=enft-$T-srv
SERVER="" WORKER="" CLIENT=""
cleanup() {
    for pid in $CLIENT $WORKER $SERVER; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    for ns in "$CLI" "$GW" "$SRV"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# The lab.
for ns in "$CLI" "$GW" "$SRV"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add c$T netns "$CLI" type veth peer name in0 netns "$GW"
ip link add s$T netns "$SRV" type veth peer name out0 netns "$GW"
ip -n "$CLI" link set c$T name eth0; ip -n "$SRV" link set s$T name eth0
ip -n "$CLI" link set eth0 up; ip -n "$SRV" link set eth0 up; ip -n "$GW" link set in0 up; ip -n "$GW" link set out0 up
ip -n "$CLI" addr add 192.168.50.11/24 dev eth0
ip -n "$GW" addr add 192.168.50.1/24 dev in0; ip -n "$GW" addr add 203.0.113.1/24 dev out0
ip -n "$SRV" addr add 203.0.113.10/24 dev eth0
ip -n "$CLI" route add default via 192.168.50.1; ip -n "$SRV" route add default via 203.0.113.1
ip netns exec "$GW" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$CLI" sysctl -qw net.ipv4.ip_local_port_range="1024 65535" net.ipv4.tcp_tw_reuse=1

# Policies: the full one, and the same less its web rules.
cp -r examples/enforcegate "$WORK/full"
cp -r examples/enforcegate "$WORK/plain"
# One client opening hundreds of connections a second is what the per-source SYN limit
# (queue_syn_rate, 100/s by default) is there to stop: off, so the worker is what is measured.
for dir in full plain; do sed -i 's/^\[kernel\]$/[kernel]\nqueue_syn_rate = 0/' "$WORK/$dir/enforcer.conf"; done
python3 - "$WORK/plain/rules.d" <<'EOF'
import pathlib, re, sys
header = re.compile(r'^\s*(\[(?P<kind>[a-z-]+)\]\s+)?("[^"]*"|[^\s:"]+)\s*:\s*\{\s*$')
for path in pathlib.Path(sys.argv[1]).glob("*.policy"):
    kept, block, kind = [], None, None
    for line in path.read_text().splitlines(keepends=True):
        if block is None:
            m = header.match(line)
            if m:
                block, kind = [line], m.group("kind")
            else:
                kept.append(line)
            continue
        block.append(line)
        if line.strip() == "}":
            web_rule = kind is None
            web_expectation = kind == "expect" and any(re.match(r"\s*url\s*:", l) for l in block)
            if not (web_rule or web_expectation):
                kept += block
            block = None
    if any(header.match(l) for l in kept):
        path.write_text("".join(kept))
    else:
        path.unlink()
EOF
echo "policy without web rules: rules.d/$(cd "$WORK/plain/rules.d" && ls *.policy | tr '\n' ' ')(of $(cd "$WORK/full/rules.d" && ls *.policy | tr '\n' ' '))"

gcc -O2 -Wall -o "$WORK/noop-queue" bench/noop-queue.c $(pkg-config --cflags --libs libnetfilter_queue libmnl)

# The server.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=example.org \
    -addext subjectAltName=DNS:example.org -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
ip netns exec "$SRV" openssl s_server -quiet -www -accept 443 -cert "$WORK/cert.pem" -key "$WORK/key.pem" -num_tickets 0 \
    > /dev/null 2> "$WORK/server.err" &
SERVER=$!
for _ in $(seq 50); do ip netns exec "$SRV" ss -Hltn 'sport = :443' | grep -q . && break; sleep 0.1; done

handshakes() {  # handshakes LABEL: one client run; latencies appended to WORK/LABEL.lat
    ip netns exec "$CLI" python3 bench/tls-handshakes.py 203.0.113.10 443 example.org "$WORK/cert.pem" 1 "$WORK/warmup.lat" > /dev/null
    ip netns exec "$CLI" python3 bench/tls-handshakes.py 203.0.113.10 443 example.org "$WORK/cert.pem" "$RUN_SECONDS" "$WORK/run.lat" > "$WORK/run.out" &
    CLIENT=$!
    wait "$CLIENT"; CLIENT=""
    read -r _ count _ failures _ seconds < "$WORK/run.out"
    cat "$WORK/run.lat" >> "$WORK/$1.lat"
    echo "$count $seconds" >> "$WORK/$1.runs"
    awk -v l="$1" -v c="$count" -v f="$failures" -v s="$seconds" 'BEGIN { printf "  %-17s %6d connections in %.2f s (%.0f/s), %d failed\n", l, c, s, c / s, f }'
    [ "$count" -gt 0 ] || { echo "tls-bench: no handshake succeeded ($1)" >&2; cat "$WORK/server.err" >&2; exit 1; }
}

for round in $(seq "$ROUNDS"); do
    echo "round $round:"
    ip netns exec "$GW" "$ENFORCER" apply --dir "$WORK/plain" --system gw-1 --state-dir "$WORK/state" > "$WORK/apply.out"
    if ip netns exec "$GW" nft list ruleset | grep -q 'queue'; then echo "tls-bench: the policy without web rules still queues" >&2; exit 1; fi
    handshakes without

    rm -f "$WORK/worker.err"  # not last round's "judging" line
    ip netns exec "$GW" "$ENFORCER" run --dir "$WORK/full" --system gw-1 --state-dir "$WORK/state" > "$WORK/run-apply.out" 2> "$WORK/worker.err" &
    WORKER=$!
    for _ in $(seq 300); do grep -q "worker: judging queue" "$WORK/worker.err" && break; kill -0 "$WORKER" 2>/dev/null || break; sleep 0.1; done
    grep -q "worker: judging queue" "$WORK/worker.err" || { echo "tls-bench: the worker did not start" >&2; cat "$WORK/worker.err" >&2; exit 1; }
    handshakes "with inspection"
    kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
    echo "  worker: $(grep -o 'run: stopped .*' "$WORK/worker.err" | tail -1 | sed 's/" *$//; s/"\( [a-z_]*=\)/\1/g')"
    # Flow lines of one client and host are counted, not written, within log_repeat_window.
    echo "  worker log: $(grep -c 'proto=tls host=example.org' "$WORK/worker.err" || true) flow lines for tls host=example.org, $(grep -c 'outcome=deny' "$WORK/worker.err" || true) denied"

    ip netns exec "$GW" "$ENFORCER" apply --dir "$WORK/full" --system gw-1 --state-dir "$WORK/state" > "$WORK/apply.out"
    ip netns exec "$GW" "$WORK/noop-queue" -b > "$WORK/noop.out" 2>&1 &
    WORKER=$!
    # Bound when queue 0 shows in the gateway namespace's own list of queues.
    for _ in $(seq 50); do ip netns exec "$GW" grep -q '^ *0 ' /proc/net/netfilter/nfnetlink_queue 2>/dev/null && break; sleep 0.05; done
    handshakes "queue, C no-op"
    kill -TERM "$WORKER"; wait "$WORKER" || true; WORKER=""
done

rate() { awk '{ c += $1; s += $2 } END { printf "%.1f", c / s }' "$1"; }
pct() { sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int(p * NR + 0.999999); if (i < 1) i = 1; printf "%.0f", v[i] }'; }
plain_rate=$(rate "$WORK/without.runs") web_rate=$(rate "$WORK/with inspection.runs") noop_rate=$(rate "$WORK/queue, C no-op.runs")
p50a=$(pct "$WORK/without.lat" 0.50) p99a=$(pct "$WORK/without.lat" 0.99)
p50b=$(pct "$WORK/with inspection.lat" 0.50) p99b=$(pct "$WORK/with inspection.lat" 0.99)
p50c=$(pct "$WORK/queue, C no-op.lat" 0.50) p99c=$(pct "$WORK/queue, C no-op.lat" 0.99)
printf '\n%-28s %10s %12s %12s\n' "TLS through the gateway" "conns/s" "p50 us" "p99 us"
printf '%-28s %10s %12s %12s\n' "without inspection" "$plain_rate" "$p50a" "$p99a"
printf '%-28s %10s %12s %12s\n' "with SNI inspection" "$web_rate" "$p50b" "$p99b"
printf '%-28s %10s %12s %12s\n' "queued, C no-op consumer" "$noop_rate" "$p50c" "$p99c"
awk -v a="$plain_rate" -v c="$noop_rate" -v p="$p50a" -v q="$p50c" -v r="$p99a" -v s="$p99c" 'BEGIN {
    printf "the queue alone (C no-op)    %9.3fx of without; added latency p50 %+d us, p99 %+d us (the floor under inspection on this machine)\n", c / a, q - p, s - r
}'
# Each round's ratio (its two runs side by side), and their spread.
rounds=$(paste -d' ' "$WORK/without.runs" "$WORK/with inspection.runs" | awk '{ printf "%s%.3f", (NR > 1 ? " " : ""), ($3 / $4) / ($1 / $2) }')
awk -v a="$plain_rate" -v b="$web_rate" -v p="$p50a" -v q="$p50b" -v r="$p99a" -v s="$p99b" -v rounds="$rounds" 'BEGIN {
    printf "ratio with / without         %9.3fx   (goal >= 0.97x: %s)\n", b / a, (b / a >= 0.97) ? "met" : "MISSED"
    n = split(rounds, v, " "); lo = v[1]; hi = v[1]; for (i = 2; i <= n; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i] }
    printf "ratio by round               %s   (spread %.3f .. %.3f)\n", rounds, lo, hi
    printf "added handshake latency      p50 %+d us (%.2fx), p99 %+d us (%.2fx)   (goal: p99 <= +100 us: %s)\n", q - p, q / p, s - r, s / r, (s - r <= 100) ? "met" : "MISSED"
}'
