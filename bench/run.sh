#!/bin/bash
# Every benchmark, in order. Each prints its result as a ratio against the obvious
# alternative measured in the same run (absolute times on a shared machine are noisy), with
# its goal beside it, "met" or "MISSED" (the goals: bench/README.md).
#   1. compile: a policy of 10,000 systems / 1,000,000 addresses (enforcer-bench; it also
#      writes /tmp/enforcer-bench-policy, which step 2 loads)
#   2. kernel apply vs nft -f of the same ruleset (apply-bench.sh)
#   3. worker verdicts/s, CPU and instructions per packet vs a batched no-op NFQUEUE loop in C (queue-bench.sh)
#   4. TLS connections through the gateway with SNI inspection vs without (tls-bench.sh)
#   5. domain lists: DomainSet vs Set<String> with a suffix walk (enforcer-bench domains)
#   6. domain lookups in instructions (callgrind), 1M entries vs 1k (domain-instructions.sh)
#   7. one client's SYN flood through the gateway: the defaults vs no SYN limit, and vs a
#      queue that fails open when full (flood-bench.sh)
#   8. per-packet cost: new TCP connections/s, UDP round trips/s and TCP throughput through a
#      receiver under enforcer at 10, 1,000 and 10,000 policies vs no ruleset and a naive
#      one-rule-per-sender/port ruleset of the same sizes (packet-bench.sh)
#   9. the fleet: 1,000 agents on one etcd, change to applied on every affected host, beside
#      etcd's own watch fan-out; offline resume, etcd restart, cold start (fleet-bench.sh)
# Network traffic stays on loopback and in network namespaces the scripts make and delete.
#
# Usage: bench/run.sh [BUILD_DIR]   (as root; default .build/release, what `make bench` builds)
# The output is also kept in bench/out/run-TIMESTAMP.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-.build/release}
[ "$(id -u)" = 0 ] || { echo "bench/run.sh: needs root (network namespaces, nftables, NFQUEUE)" >&2; exit 1; }
for f in enforcer enforcer-bench; do
    [ -x "$BUILD/$f" ] || { echo "bench/run.sh: no $BUILD/$f (build with: swift build -c release)" >&2; exit 1; }
done

# What the benchmarks need beyond `make deps`: iptables-nft (this kernel has no native nft
# queue, so enforcer queues through xt NFQUEUE), gcc for the C baseline and packet source,
# curl for the flood bench's clients.
missing=""
for p in iptables gcc libc6-dev pkg-config libnetfilter-queue-dev libmnl-dev openssl python3 iproute2 util-linux time valgrind curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null || exit 1
fi

mkdir -p bench/out
LOG=bench/out/run-$(date -u +%Y%m%dT%H%M%SZ).txt
GOALS=$(mktemp /tmp/enforcer-bench-goals.XXXXXX) PART=$(mktemp /tmp/enforcer-bench-step.XXXXXX)
trap 'rm -f "$GOALS" "$PART"' EXIT
failed=()

idle_percent() {  # CPU idle over the next second, from /proc/stat
    local _c u1 n1 s1 i1 w1 q1 sq1 st1 u2 n2 s2 i2 w2 q2 sq2 st2
    read -r _c u1 n1 s1 i1 w1 q1 sq1 st1 _ < /proc/stat; sleep 1
    read -r _c u2 n2 s2 i2 w2 q2 sq2 st2 _ < /proc/stat
    local busy=$(( (u2 + n2 + s2 + q2 + sq2 + st2) - (u1 + n1 + s1 + q1 + sq1 + st1) )) idle=$(( (i2 + w2) - (i1 + w1) ))
    echo $(( 100 * idle / (busy + idle > 0 ? busy + idle : 1) ))
}

settle() {  # waits up to 120 s for a quiet machine, e.g. for the kernel to free the namespaces of the step before
    local start=$SECONDS idle samples=0
    while idle=$(idle_percent); samples=$((samples + 1)); [ "$idle" -lt 85 ] && [ $((SECONDS - start)) -lt 120 ]; do :; done
    if [ "$idle" -lt 85 ]; then echo "(machine busy: ${idle}% idle after $((SECONDS - start)) s of waiting; the ratios below are noisier)"
    else echo "(machine ${idle}% idle$( [ "$samples" -gt 1 ] && echo ", after $((SECONDS - start)) s of waiting"))"; fi
}

step() {  # step TITLE CMD...: runs one benchmark, keeps its goal lines for the summary
    local title=$1; shift
    printf '\n=== %s\n' "$title" | tee -a "$LOG"
    settle | tee -a "$LOG"
    local start=$SECONDS
    "$@" 2>&1 | tee "$PART"
    local status=${PIPESTATUS[0]}
    echo "($title: $((SECONDS - start)) s)" | tee -a "$PART"
    cat "$PART" >> "$LOG"
    grep -i 'goal' "$PART" | sed "s/^ */[$title] /" >> "$GOALS"
    if [ "$status" -ne 0 ]; then echo "=== $title: FAILED (exit $status)" | tee -a "$LOG"; failed+=("$title"); fi
}

{ echo "enforcer benchmarks, $(date -u +%FT%TZ), $(uname -r), $(nproc) cores, build $BUILD, commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"; } | tee "$LOG"
step "1 compile" "$BUILD/enforcer-bench"
step "2 apply" bash bench/apply-bench.sh "$BUILD/enforcer"
step "3 worker verdicts" bash bench/queue-bench.sh "$BUILD/enforcer"
step "4 TLS through the gateway" bash bench/tls-bench.sh "$BUILD/enforcer"
step "5 domain lists" "$BUILD/enforcer-bench" domains
step "6 domain lookup instructions" bash bench/domain-instructions.sh "$BUILD/enforcer-bench"
step "7 SYN flood" bash bench/flood-bench.sh "$BUILD/enforcer"
step "8 per-packet cost" bash bench/packet-bench.sh "$BUILD/enforcer"
step "9 fleet" bash bench/fleet-bench.sh "$BUILD/enforcer-bench" "$BUILD/enforcer"

{
    printf '\n=== summary (the goal lines)\n'
    cat "$GOALS"
    for title in "${failed[@]}"; do echo "[$title] FAILED to run"; done
    echo "full output: $LOG"
} | tee -a "$LOG"
[ ${#failed[@]} -eq 0 ]
