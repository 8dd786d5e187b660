#!/bin/bash
# Worker verdict rate and CPU per packet (goal: >= 0.9x a minimal NFQUEUE loop written in C,
# in its batched mode, on both), and instructions per packet under callgrind beside the loop's.
#
# One network namespace of its own: the enforcegate policy applied as gw-1 (so the kernel
# state is the same for every consumer), an xtables NFQUEUE rule (iptables-nft; this
# kernel has no native nft queue) on input for tcp dport 443, and a drop right after it,
# so an accepted packet costs the kernel as little as possible after its verdict. The
# stream, from bench/queue-feed.c: 2,000 flows 127.0.0.2 -> 127.0.0.1:443, each a SYN and
# one segment carrying a real TLS ClientHello (a fixture, SNI python.example, permitted by
# default_action), so every second packet makes the worker judge a flow.
#
# Consumer-limited by construction: per cycle the consumer is stopped (SIGSTOP), all 4,000
# packets are queued, then it is let go (SIGCONT) and timed until the queue is empty.
# Consumers: bench/noop-queue.c (one verdict per packet), the same with batched verdicts
# (-b: the goal's baseline), and `enforcer run`. Rounds alternate them.
#
# Rates and CPU time move with the machine's load; instruction counts do not. With valgrind
# installed (and INSTRUCTIONS not 0), each consumer also runs under callgrind twice, draining
# 2 and then 2 + IR_CYCLES cycles: the difference over the packets of the extra cycles is the
# user-space instructions of one packet, start-up and shutdown cancelled out.
#
# Usage: bench/queue-bench.sh [ENFORCER]   (root; env CYCLES=30 ROUNDS=3 INSTRUCTIONS=1
# IR_CYCLES=4; WORKER_PROFILE=FILE records the worker's runs with `perf record -g` into FILE
# (slowing them), for `perf report -i FILE`)
set -euo pipefail
cd "$(dirname "$0")/.."
ENFORCER=$(realpath "${1:-.build/release/enforcer}")
HELLO=$PWD/Tests/NFQueueTests/Fixtures/python-python.example.bin
CYCLES=${CYCLES:-30} ROUNDS=${ROUNDS:-3} FLOWS=2000 PROFILE=${WORKER_PROFILE:-}
INSTRUCTIONS=${INSTRUCTIONS:-1} IR_CYCLES=${IR_CYCLES:-4}
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

wait_for() {  # wait_for FILE TEXT [TRIES]: until the consumer has bound the queue (tenths of a second)
    for _ in $(seq "${3:-300}"); do grep -q "$2" "$1" 2>/dev/null && return 0; kill -0 "$CONSUMER" 2>/dev/null || break; sleep 0.1; done
    echo "queue-bench: consumer did not start:" >&2; cat "$1" >&2; exit 1
}

cpu_time() {  # cpu_time PID: "utime stime" in clock ticks (all threads, /proc/PID/stat), then
    # the main thread's time on a CPU in ns (/proc/PID/schedstat: a finer clock than ticks)
    echo "$(awk '{ sub(/^.*\) /, ""); print $12, $13 }' "/proc/$1/stat") $(cut -d' ' -f1 "/proc/$1/schedstat")"
}

started() {  # started LABEL: the line a consumer writes once it has bound the queue
    case $1 in worker*) echo "worker: judging queue" ;; *) echo "bound queue" ;; esac
}

WARMUP=3
measure() {  # measure LABEL CMD...: one consumer, CYCLES timed drains; rates appended to WORK/LABEL.rates
    local label=$1; shift
    rm -f "$WORK/$label.out" "$WORK/$label.err"  # not last round's "bound" line
    $PIN_CONSUMER ip netns exec "$NS" "$@" > "$WORK/$label.out" 2> "$WORK/$label.err" &
    CONSUMER=$!
    wait_for "$WORK/$label.err" "$(started "$label")"
    local profiler="" before
    before=$(cpu_time "$CONSUMER")
    if [ -n "$PROFILE" ] && [ "$label" = "${PROFILE_LABEL:-worker}" ]; then
        perf record -q -g -o "$PROFILE" -p "$CONSUMER" > /dev/null 2>&1 & profiler=$!
        sleep 0.5
    fi
    $PIN_FEED ip netns exec "$NS" "$WORK/queue-feed" drain -p "$CONSUMER" -f "$HELLO" -k "$FLOWS" -c "$CYCLES" -w "$WARMUP" > "$WORK/feed.out" &
    FEEDER=$!
    wait "$FEEDER"; FEEDER=""
    if [ -n "$profiler" ]; then kill -INT "$profiler"; wait "$profiler" || true; fi
    local after; after=$(cpu_time "$CONSUMER")
    kill -TERM "$CONSUMER"; wait "$CONSUMER" || true; CONSUMER=""
    # CPU time the consumer used while the feeder ran (its drains, and its idle wake-ups).
    echo "$before $after" >> "$WORK/$label.cpu"
    sed -n 's/^queue-feed: rates //p' "$WORK/feed.out" | tr ' ' '\n' >> "$WORK/$label.rates"
    printf '  %-13s %s\n' "$label" "$(grep -v '^queue-feed: rates' "$WORK/feed.out" | sed 's/^queue-feed: //')"
}

instructions() {  # instructions LABEL CYCLES CMD...: the user-space instructions callgrind counted in
    # one consumer's whole life while it drained 1 + CYCLES cycles, into WORK/LABEL.ir.CYCLES
    local label=$1 cycles=$2; shift 2
    rm -f "$WORK/$label.err" "$WORK/$label.vg"
    $PIN_CONSUMER ip netns exec "$NS" valgrind --tool=callgrind --log-file="$WORK/$label.vg" --callgrind-out-file="$WORK/$label.cg.$cycles" \
        "$@" > /dev/null 2> "$WORK/$label.err" &
    CONSUMER=$!
    wait_for "$WORK/$label.err" "$(started "$label")" 1800
    $PIN_FEED ip netns exec "$NS" "$WORK/queue-feed" drain -p "$CONSUMER" -f "$HELLO" -k "$FLOWS" -c "$cycles" -w 1 > "$WORK/feed.out" &
    FEEDER=$!
    wait "$FEEDER" || { echo "queue-bench: the feed failed under callgrind ($label)" >&2; exit 1; }
    FEEDER=""
    kill -TERM "$CONSUMER"; wait "$CONSUMER" || true; CONSUMER=""
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$WORK/$label.vg" > "$WORK/$label.ir.$cycles"
    [ -s "$WORK/$label.ir.$cycles" ] || { echo "queue-bench: callgrind counted nothing ($label)" >&2; cat "$WORK/$label.vg" >&2; exit 1; }
}

stopped_line() {  # the worker's last line, its summary
    grep -o 'run: stopped .*' "$WORK/worker.err" | tail -1 | sed 's/" *$//; s/"\( [a-z_]*=\)/\1/g'
}

echo "stream: $FLOWS flows x (SYN + $(stat -c %s "$HELLO")-byte ClientHello) per cycle, $CYCLES timed cycles per run (after $WARMUP untimed), $ROUNDS rounds"
for round in $(seq "$ROUNDS"); do
    echo "round $round:"
    measure noop "$WORK/noop-queue"
    measure noop-batch "$WORK/noop-queue" -b
    measure worker "$ENFORCER" run --dir "$WORK/policy" --system gw-1 --state-dir "$WORK/state"
    echo "  worker: $(stopped_line)"
done

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
noop=$(median "$WORK/noop.rates") batch=$(median "$WORK/noop-batch.rates") worker=$(median "$WORK/worker.rates")
printf '\n%-42s %12s %10s\n' "verdicts/s (median of all timed cycles)" "verdicts/s" "us/packet"
for pair in "noop-queue.c, one verdict per packet:$noop" "noop-queue.c -b, batched verdicts:$batch" "enforcer run (judges and logs each flow):$worker"; do
    awk -v l="${pair%%:*}" -v r="${pair##*:}" 'BEGIN { printf "%-42s %12.0f %10.2f\n", l, r, 1e6 / r }'
done
# CPU time per packet, from the consumers' own time (less exposed to the machine's noise than
# the drain rates): user and system in clock ticks, and the main thread's total in ns.
hz=$(getconf CLK_TCK) packets=$((2 * FLOWS * (CYCLES + WARMUP)))
printf '\n%-42s %10s %10s %10s %s\n' "CPU time per packet (all runs)" "user us" "system us" "total us" " (main thread; each run's)"
for label in noop noop-batch worker; do
    awk -v l="$label" -v hz="$hz" -v p="$packets" '{ u += $4 - $1; s += $5 - $2; t += $6 - $3; n++; runs = runs sprintf(" %.2f", ($6 - $3) / p / 1e3) }
        END { printf "%-42s %10.2f %10.2f %10.2f  (%s)\n", l, u / hz / (p * n) * 1e6, s / hz / (p * n) * 1e6, t / (p * n) / 1e3, substr(runs, 2) }' "$WORK/$label.cpu"
    awk -v p="$packets" '{ t += $6 - $3; n++ } END { print t / (p * n) / 1e3 }' "$WORK/$label.cpu" > "$WORK/$label.cpu-us"
done
cpu_batch=$(cat "$WORK/noop-batch.cpu-us") cpu_worker=$(cat "$WORK/worker.cpu-us") cpu_noop=$(cat "$WORK/noop.cpu-us")
echo
awk -v w="$worker" -v n="$noop" -v b="$batch" -v cb="$cpu_batch" -v cw="$cpu_worker" -v cn="$cpu_noop" 'BEGIN {
    printf "ratio worker / batched no-op loop, verdicts/s       %6.2fx   (goal >= 0.9x: %s)\n", w / b, (w / b >= 0.9) ? "met" : "MISSED"
    printf "ratio worker / batched no-op loop, CPU per packet   %6.2fx   (goal: batched loop / worker >= 0.9x, so <= 1.11x: %s)\n", cw / cb, (cb / cw >= 0.9) ? "met" : "MISSED"
    printf "ratio worker / no-op loop (one verdict a packet)    %6.2fx   verdicts/s, %.2fx CPU per packet (information)\n", w / n, cw / cn
    printf "worker cost over the batched loop                   %6.2f us per packet of drain time, %.2f us of CPU\n", 1e6 / w - 1e6 / b, cw - cb
}'

if [ "$INSTRUCTIONS" != 0 ] && command -v valgrind > /dev/null; then
    echo
    echo "instructions per packet (callgrind; user space only: each consumer drained 1 + 2 and 1 + $((2 + IR_CYCLES)) cycles, the difference / $((2 * FLOWS * IR_CYCLES)) packets)"
    # valgrind cannot read the debug information of the Swift release build ("possibly
    # corrupted debuginfo"): it counts a copy without it, whose symbols still name the functions.
    objcopy --strip-debug "$ENFORCER" "$WORK/enforcer-nodebug"
    for label in noop-batch worker; do
        case $label in worker) cmd=("$WORK/enforcer-nodebug" run --dir "$WORK/policy" --system gw-1 --state-dir "$WORK/state") ;; *) cmd=("$WORK/noop-queue" -b) ;; esac
        instructions "$label" 2 "${cmd[@]}"
        instructions "$label" $((2 + IR_CYCLES)) "${cmd[@]}"
        echo "$(( ($(cat "$WORK/$label.ir.$((2 + IR_CYCLES))") - $(cat "$WORK/$label.ir.2")) / (2 * FLOWS * IR_CYCLES) ))" > "$WORK/$label.ir"
        printf '  %-40s %8d instructions\n' "$label" "$(cat "$WORK/$label.ir")"
    done
    awk -v w="$(cat "$WORK/worker.ir")" -v b="$(cat "$WORK/noop-batch.ir")" 'BEGIN {
        printf "ratio worker / batched no-op loop, instructions per packet   %.2fx   (information: user space only, the kernel'"'"'s share is the same work for both)\n", w / b
    }'
    echo "  (callgrind files: callgrind_annotate WORK/worker.cg.N, kept only with KEEP_CALLGRIND=DIR)"
    if [ -n "${KEEP_CALLGRIND:-}" ]; then mkdir -p "$KEEP_CALLGRIND"; cp "$WORK"/*.cg.* "$KEEP_CALLGRIND/"; fi
fi
