#!/bin/bash
# Domain lookups counted in instructions (goal: lookup cost depends on the number of labels,
# not on the list size). Wall time at 1M entries also measures the memory
# hierarchy (the 1M table does not fit in cache), which is noisy on a shared VM; an
# instruction count under valgrind's callgrind is the same on every run. The same hosts
# (2, 4 and 8 labels, hits and misses) are looked up in lists of 1,000 and 1,000,000 names.
# Usage: bench/domain-instructions.sh [ENFORCER_BENCH]
set -euo pipefail
BENCH=${1:-.build/release/enforcer-bench}
command -v valgrind > /dev/null || { echo "domain-instructions: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
OUT=$(mktemp -d /tmp/enforcer-domain-ir.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
declare -A per
for size in 1000 1000000; do
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.$size" --toggle-collect='*domainSetContains*' \
        "$BENCH" domains-count "$size" > "$OUT/out.$size" 2> "$OUT/err.$size" || { cat "$OUT/err.$size" >&2; exit 1; }
    collected=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$OUT/err.$size")
    lookups=$(sed -n 's/.*entries, \([0-9]*\) lookups.*/\1/p' "$OUT/out.$size")
    per[$size]=$((collected / lookups))
    printf '%-9s entries: %s lookups, %s instructions each (callgrind)\n' "$size" "$lookups" "${per[$size]}"
done
ratio=$(awk -v a="${per[1000000]}" -v b="${per[1000]}" 'BEGIN { printf "%.3f", a / b }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.05 ? "met" : "MISSED") }')
echo "instructions per lookup, 1M entries / 1k entries: ${ratio}x (goal: lookup work does not grow with the list, <= 1.05x: $verdict)"
