#!/bin/bash
# Worker verdict rate (goal: >= 0.9x a minimal no-op NFQUEUE loop written in C).
#
# One network namespace of its own: the enforcegate policy applied as gw-1 (so the kernel
# state is the same for every consumer), an xtables NFQUEUE rule (iptables-nft; this
# kernel has no native nft queue) on input for tcp dport 443, and a drop right after it,
# so an accepted packet costs the kernel as little as possible after its verdict. The
# stream, from bench/queue-feed.c: 2,000 flows 127.0.0.2 -> 127.0.0.1:443, each a SYN and
# one segment carrying a real TLS ClientHello (a fixture, SNI python.example, permitted by
# default_action), so every second packet makes the worker judge a flow and log it.
#
# Consumer-limited by construction: per cycle the consumer is stopped (SIGSTOP), all 4,000
# packets are queued, then it is let go (SIGCONT) and timed until the queue is empty.
# Consumers: bench/noop-queue.c (one verdict per packet: the goal's baseline), the same
# with batched verdicts (for information), and `enforcer run`. Rounds alternate them.
#
# Usage: bench/queue-bench.sh [ENFORCER]   (root; env CYCLES=30 ROUNDS=3; WORKER_PROFILE=FILE records the
# worker's runs with `perf record -g` into FILE (slowing them), for `perf report -i FILE`)
set -euo pipefail
cd "$(dirname "$0")/.."
ENFORCER=$(realpath "${1:-.build/release/enforcer}")
HELLO=$PWD/Tests/NFQueueTests/Fixtures/python-python.example.bin
CYCLES=${CYCLES:-30} ROUNDS=${ROUNDS:-3} FLOWS=2000 PROFILE=${WORKER_PROFILE:-}
[ "$(id -u)" = 0 ] || { echo "queue-bench: needs root (network namespace, NFQUEUE)" >&2; exit 1; }
[ -x "$ENFORCER" ] || { echo "queue-bench: no enforcer at $ENFORCER" >&2; exit 1; }
command -v iptables-nft >/dev/null || { echo "queue-bench: needs iptables-nft (Debian package iptables)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/enforcer-queue-bench.XXXXXX)
NS=enfq-$$
CONSUMER="" FEEDER=""
cleanup() {
    # The feeder first: it may otherwise stop the consumer again after it is let go.
    if [ -n "$FEEDER" ]; then kill -TERM "$FEEDER" 2>/dev/null || true; wait "$FEEDER" 2>/dev/null || true; fi
    if [ -n "$CONSUMER" ]; then kill -CONT "$CONSUMER" 2>/dev/null || true; kill -TERM "$CONSUMER" 2>/dev/null || true; wait "$CONSUMER" 2>/dev/null || true; fi
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

gcc -O2 -Wall -o "$WORK/noop-queue" bench/noop-queue.c $(pkg-config --cflags --libs libnetfilter_queue libmnl)
gcc -O2 -Wall -o "$WORK/queue-feed" bench/queue-feed.c

# The consumer on one core, the feeder on the other (when there are two).
if [ "$(nproc)" -ge 2 ]; then PIN_CONSUMER="taskset -c 1" PIN_FEED="taskset -c 0"; else PIN_CONSUMER="" PIN_FEED=""; fi

ip netns add "$NS"
ip -n "$NS" link set lo up
cp -r examples/enforcegate "$WORK/policy"
ip netns exec "$NS" "$ENFORCER" apply --dir "$WORK/policy" --system gw-1 --state-dir "$WORK/state" > "$WORK/apply.out"
ip netns exec "$NS" iptables-nft -A INPUT -p tcp --dport 443 -j NFQUEUE --queue-num 0
ip netns exec "$NS" nft -f - <<'EOF'
table inet queue_bench_drop {
    chain input { type filter hook input priority filter + 10; policy accept; tcp dport 443 drop; }
}
EOF

wait_for() {  # wait_for FILE TEXT: until the consumer has bound the queue
    for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; kill -0 "$CONSUMER" 2>/dev/null || break; sleep 0.1; done
    echo "queue-bench: consumer did not start:" >&2; cat "$1" >&2; exit 1
}

cpu_ticks() {  # cpu_ticks PID: "utime stime" in clock ticks, from /proc/PID/stat
    awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat"
}

measure() {  # measure LABEL CMD...: one consumer, CYCLES timed drains; rates appended to WORK/LABEL.rates
    local label=$1; shift
    rm -f "$WORK/$label.out" "$WORK/$label.err"  # not last round's "bound" line
    $PIN_CONSUMER ip netns exec "$NS" "$@" > "$WORK/$label.out" 2> "$WORK/$label.err" &
    CONSUMER=$!
    case $label in worker) wait_for "$WORK/$label.err" "worker: judging queue" ;; *) wait_for "$WORK/$label.err" "bound queue" ;; esac
    local profiler="" before
    before=$(cpu_ticks "$CONSUMER")
    if [ -n "$PROFILE" ] && [ "$label" = "${PROFILE_LABEL:-worker}" ]; then
        perf record -q -g -o "$PROFILE" -p "$CONSUMER" > /dev/null 2>&1 & profiler=$!
        sleep 0.5
    fi
    $PIN_FEED ip netns exec "$NS" "$WORK/queue-feed" drain -p "$CONSUMER" -f "$HELLO" -k "$FLOWS" -c "$CYCLES" > "$WORK/feed.out" &
    FEEDER=$!
    wait "$FEEDER"; FEEDER=""
    if [ -n "$profiler" ]; then kill -INT "$profiler"; wait "$profiler" || true; fi
    local after; after=$(cpu_ticks "$CONSUMER")
    kill -TERM "$CONSUMER"; wait "$CONSUMER" || true; CONSUMER=""
    # CPU time the consumer used while the feeder ran (its drains, and its idle wake-ups).
    echo "${before% *} ${before#* } ${after% *} ${after#* }" >> "$WORK/$label.cpu"
    sed -n 's/^queue-feed: rates //p' "$WORK/feed.out" | tr ' ' '\n' >> "$WORK/$label.rates"
    printf '  %-13s %s\n' "$label" "$(grep -v '^queue-feed: rates' "$WORK/feed.out" | sed 's/^queue-feed: //')"
}

echo "stream: $FLOWS flows x (SYN + $(stat -c %s "$HELLO")-byte ClientHello) per cycle, $CYCLES timed cycles per run, $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
    echo "round $round:"
    measure noop "$WORK/noop-queue"
    measure noop-batch "$WORK/noop-queue" -b
    measure worker "$ENFORCER" run --dir "$WORK/policy" --system gw-1 --state-dir "$WORK/state"
    echo "  $(grep -E '^[^ ]+ [a-z]+: stopped \(' "$WORK/worker.err" | tail -1 | cut -d' ' -f2-)"
done

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
noop=$(median "$WORK/noop.rates") batch=$(median "$WORK/noop-batch.rates") worker=$(median "$WORK/worker.rates")
printf '\n%-42s %12s %10s\n' "verdicts/s (median of all timed cycles)" "verdicts/s" "us/packet"
for pair in "noop-queue.c, one verdict per packet:$noop" "noop-queue.c -b, batched verdicts:$batch" "enforcer run (judges and logs each flow):$worker"; do
    awk -v l="${pair%%:*}" -v r="${pair##*:}" 'BEGIN { printf "%-42s %12.0f %10.2f\n", l, r, 1e6 / r }'
done
# CPU time per packet, from the consumers' own user and system time (less exposed to the
# machine's noise than the drain rates; resolution one clock tick per run).
hz=$(getconf CLK_TCK) packets=$((2 * FLOWS * CYCLES))
printf '\n%-42s %10s %10s\n' "CPU time per packet (all runs)" "user us" "system us"
for label in noop noop-batch worker; do
    awk -v l="$label" -v hz="$hz" -v p="$packets" '{ u += $3 - $1; s += $4 - $2; n++ } END { printf "%-42s %10.2f %10.2f\n", l, u / hz / (p * n) * 1e6, s / hz / (p * n) * 1e6 }' "$WORK/$label.cpu"
done
echo
awk -v w="$worker" -v n="$noop" -v b="$batch" 'BEGIN {
    printf "ratio worker / no-op loop               %8.2fx   (goal >= 0.9x: %s)\n", w / n, (w / n >= 0.9) ? "met" : "MISSED"
    printf "ratio worker / batched no-op loop       %8.2fx   (information; not the goal baseline)\n", w / b
    printf "worker cost over the no-op loop         %8.2f us per packet\n", 1e6 / w - 1e6 / n
}'
