#!/usr/bin/env bash
# Builds the libFuzzer harness (fuzz/, its own Swift package) and runs it.
#
#   FUZZ_SECONDS   run time, default 600 (libFuzzer -max_total_time)
#   FUZZ_CORPUS    working corpus, default /tmp/enforcer-fuzz-corpus; seeded from
#                  fuzz/corpus/ and kept between runs, so later runs start further on
#   FUZZ_MAX_LEN   largest input libFuzzer generates, default 4096
#   FUZZ_LOG       full libFuzzer output, default /tmp/enforcer-fuzz-<time>.log
#   FUZZ_ARGS      extra libFuzzer flags, e.g. "-seed=1" or "-use_value_profile=1"
#
# Crashing inputs (traps, including violated properties) are written to fuzz/crashes/,
# each replayed once more with the Swift backtracer into <input>.txt. Exits non-zero
# when libFuzzer reports a crash, timeout or out-of-memory.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${FUZZ_SECONDS:-600}"
corpus="${FUZZ_CORPUS:-/tmp/enforcer-fuzz-corpus}"
max_len="${FUZZ_MAX_LEN:-4096}"
log="${FUZZ_LOG:-/tmp/enforcer-fuzz-$(date +%Y%m%d-%H%M%S).log}"
crashes="$here/crashes"

# `-Xswiftc -sanitize=fuzzer` alone does not link: SwiftPM (tools >= 5.5) builds an
# executable target's entry point as NFQueueFuzz_main and links with
# `--defsym main=NFQueueFuzz_main`, which does not exist with -parse-as-library.
# `--sanitize=fuzzer` passes -sanitize=fuzzer to every module (NFQueue and Compiler
# included, for coverage) and to the link, and leaves `main` to libFuzzer.
build=(swift build --package-path "$here" -c release --sanitize=fuzzer -Xswiftc -parse-as-library)
echo "== ${build[*]}"
"${build[@]}"
binary="$("${build[@]}" --show-bin-path)/NFQueueFuzz"

mkdir -p "$corpus" "$crashes"
for seed in "$here"/corpus/*; do
    [ -e "$corpus/$(basename "$seed")" ] || cp "$seed" "$corpus/"
done
before="$(mktemp)"
ls -1 "$crashes" > "$before"

# Swift's backtracer would take the trap signal first, and libFuzzer leaves an existing
# handler alone, so no crash file would be written: fuzz with it off.
echo "== fuzzing for ${seconds}s, corpus $corpus ($(ls -1 "$corpus" | wc -l) files), log $log"
set +e
SWIFT_BACKTRACE=enable=no "$binary" "$corpus" \
    -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -dict="$here/nfqueue.dict" -artifact_prefix="$crashes/" -print_final_stats=1 ${FUZZ_ARGS:-} \
    > "$log" 2>&1
status=$?
set -e

echo "== libFuzzer exit status $status"
grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" || tail -n 3 "$log" | grep -E '^#[0-9]+' || true
grep -E '^(stat::|Done [0-9]+ runs)' "$log" || true

if [ "$status" -ne 0 ]; then
    grep -E -A45 '^==[0-9]+== ERROR: libFuzzer' "$log" | grep -E '^(==|    #|SUMMARY|MS:|artifact_prefix)' || tail -n 40 "$log"
fi

found=0
for artifact in $(ls -1 "$crashes" | grep -v -x -F -f "$before" | grep -v '\.txt$' || true); do
    found=1
    echo "== new artifact: fuzz/crashes/$artifact ($(stat -c %s "$crashes/$artifact") bytes)"
    ( SWIFT_BACKTRACE=enable=yes,interactive=no,color=no "$binary" "$crashes/$artifact" ) \
        > "$crashes/$artifact.txt" 2>&1 || true
    grep -E -A3 'property violated|Fatal error|Program crashed' "$crashes/$artifact.txt" | head -n 20 || true
    echo "   replay output and backtrace: fuzz/crashes/$artifact.txt"
done
rm -f "$before"
[ -d "$crashes" ] && rmdir --ignore-fail-on-non-empty "$crashes"

if [ "$status" -eq 0 ] && [ "$found" -eq 0 ]; then
    # How the final corpus spreads over the parsers' answers and the inspector's verdicts.
    NFQUEUE_FUZZ_TALLY=1 SWIFT_BACKTRACE=enable=no "$binary" -runs=0 "$corpus" 2>&1 \
        | sed -n '/^NFQueueFuzz tally/,$p' || true
fi
exit $(( status != 0 ? status : found ))
