#!/bin/bash
# Per-packet cost against the number of policies (goals, on each of the three figures:
# enforcer at 10,000 policies within 3 % of enforcer at 10, i.e. >= 0.97x, and enforcer at
# least as fast as the 10-rule hand-written ruleset, >= 1.00x), beside no ruleset and a
# naive hand-written ruleset of the same sizes.
#
# Lab, in network namespaces this script makes and deletes: one sender (10.77.0.1, and
# 10.77.0.9, in no policy) and one receiver per variant (10.77.K.2), each joined to the sender
# by a veth pair of its own. In each receiver run bench/packet-load.c's TCP server (accepts
# and closes, :5202) and UDP echo server (:5203), and `iperf3 -s` (:5201). Three tests from
# the sender, each SECONDS_PER_RUN long:
#   conn/s       new TCP connections a second (connect, the server's accept and close, EOF,
#                close), THREADS client threads;
#   udp rr/s     UDP request/response round trips a second (32 bytes each way, one
#                connected socket a thread, THREADS threads): after the first datagram, the
#                established path;
#   tcp Gbit/s   one iperf3 TCP stream's throughput (received), the established path.
# Variants: the receiver's ruleset,
#   none             no ruleset at all (and so no connection tracking in that receiver);
#   enforcer N       `enforcer apply` of a generated policy of N policies (10, 1,000, 10,000)
#                    over 10,000 systems of 100 addresses each (1,000,000 sender addresses,
#                    addressed as in enforcer-bench), system i tagged team-(i mod N), policy k
#                    granting team-k to the receiver; p-0's team holds the sender (10.77.0.1 is
#                    sys-0's first address) and allows tcp/5201, tcp/5202, udp/5203, the
#                    other policies one of tcp/22; tcp/443 and tcp/8000-8100; udp/53 and icmp;
#                    or the test ports too (k mod 4);
#   uncounted N      enforcer N without its counters: applied by enforcer, listed, the counter
#                    statements and objects taken out, loaded again with `nft -f`; beside
#                    enforcer N it shows what counting costs (goal: enforcer N >= 0.97x of it).
#                    Not in the default run: VARIANTS="enforcer-10 uncounted-10" to measure it.
#   naive N          the ruleset a hand-written firewall would have, loaded with `nft -f`: an
#                    input chain with policy drop, `ct state established,related accept`,
#                    `iif lo accept`, then N rules `ip saddr X tcp|udp dport P accept`, one
#                    per sender/port pair, the sender's own three LAST (its tcp/5202 rule the
#                    very last), so each new connection walks the whole list: the worst case,
#                    and the typical one for a sender far down a long list.
# Each variant's ruleset is loaded once, into its own receiver, and stays for the whole run:
# enforcer's apply at 10,000 policies takes about 80 s of kernel time (20,001 chains and
# 1,000,000 jump elements to validate; `nft -f` of the same ruleset takes as long), too long
# to load again each round. A connection from 10.77.0.9 (in no policy) must fail at every
# receiver but the bare one, before the rounds and after them, so each ruleset is in force.
# Rounds run every variant's three tests; each round starts one variant later, so the drift
# of this shared machine hits all alike; the figures are medians over the rounds. The
# receivers' conntrack TIME_WAIT timeout is 2 s (from 120): at ~30,000 connections a second
# the table (nf_conntrack_max 262,144) would otherwise fill within a round. The TIME_WAIT
# sockets are the server's (it closes first), so the client's ports come free at once.
#
# Usage: bench/packet-bench.sh [ENFORCER]   (root; env ROUNDS=7 SECONDS_PER_RUN=2 THREADS=2 CORE=last
#        VARIANTS="none enforcer-10 …" to run some variants only)
set -euo pipefail
cd "$(dirname "$0")/.."
ENFORCER=$(realpath "${1:-.build/release/enforcer}")
ROUNDS=${ROUNDS:-7} RUN_SECONDS=${SECONDS_PER_RUN:-2} THREADS=${THREADS:-2}
# The load generators and servers (clients, servers, both iperf3 ends) all run on one core
# (the last; CORE=N to choose) at nice -19: each rate is then the inverse of the CPU time an
# operation costs, all of it (client, server, the kernel's packet path in both namespaces),
# and the other work of this shared machine moves to the other cores. Unpinned, the figures
# swing with where the scheduler puts the two ends (iperf3 here: ~4 Gbit/s across cores,
# ~12 on one) and with the machine's load.
CORE=${CORE:-$(( $(nproc) - 1 ))}
ON_CORE="taskset -c $CORE nice -n -19"
[ "$(id -u)" = 0 ] || { echo "packet-bench: needs root (network namespaces, nftables)" >&2; exit 1; }
[ -x "$ENFORCER" ] || { echo "packet-bench: no enforcer at $ENFORCER" >&2; exit 1; }
missing=""
for p in iperf3 gcc libc6-dev python3 netcat-openbsd nftables; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

START=$SECONDS
WORK=$(mktemp -d /tmp/enforcer-packet-bench.XXXXXX)
T=$$
read -r -a VARIANTS <<< "${VARIANTS:-none enforcer-10 enforcer-1000 enforcer-10000 naive-10 naive-1000 naive-10000}"
TESTS=(conn udp tcp)
SND=enfp-$T-snd
rcv() { echo "enfp-$T-$1"; }            # the receiver namespace of a variant
addr() {                                 # the receiver address of a variant: 10.77.K.2, K its place in VARIANTS
    local i; for i in "${!VARIANTS[@]}"; do [ "${VARIANTS[$i]}" = "$1" ] && { echo "10.77.$((i + 1)).2"; return; }; done
}
SERVERS=()
declare -A SERVER_PID  # VARIANT.conn, VARIANT.udp: the C servers, for their CPU time
cleanup() {
    for pid in "${SERVERS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    for ns in "$SND" $(for v in "${VARIANTS[@]}"; do rcv "$v"; done); do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p bench/out
cc -O2 -Wall -pthread -o bench/out/packet-load bench/packet-load.c
LOAD=$PWD/bench/out/packet-load

# The policies: the same 10,000 systems and 1,000,000 addresses at each size, tagged for it.
gen_policy() {  # gen_policy N RECEIVER_ADDRESS DIR
    local n=$1 recv=$2 dir=$3
    mkdir -p "$dir/rules.d"
    printf '[policy]\ntime_window_tz = "utc"\n' > "$dir/enforcer.conf"
    awk -v n="$n" -v recv="$recv" 'BEGIN {
        printf "[system] recv: {\n    address: %s\n    tags: core\n}\n", recv
        for (i = 0; i < 10000; i++) {
            line = "    address: "
            for (j = 0; j < 100; j++) {
                a = 167772160 + (i * 100 + j) * 2
                addr = (i == 0 && j == 0) ? "10.77.0.1" : sprintf("%d.%d.%d.%d", int(a / 16777216), int(a / 65536) % 256, int(a / 256) % 256, a % 256)
                line = line (j ? ", " : "") addr
            }
            printf "[system] sys-%d: {\n%s\n    tags: team-%d\n}\n", i, line, i % n
        }
    }' > "$dir/rules.d/10-systems.policy"
    awk -v n="$n" 'BEGIN {
        split("tcp/5201, tcp/5202, udp/5203|tcp/22|tcp/443, tcp/8000-8100|udp/53, icmp", allow, "|")
        for (k = 0; k < n; k++)
            printf "[policy] p-%d: {\n    senders: team-%d\n    receivers: core\n    allow: %s\n}\n", k, k, allow[k % 4 + 1]
    }' > "$dir/rules.d/20-policies.policy"
}

# The naive ruleset of N rules: N - 3 other senders (the first address of sys-1, sys-2, …,
# each to one port its policy allows), then the sender's three.
gen_naive() {  # gen_naive N FILE
    awk -v n="$1" 'BEGIN {
        split("tcp dport 5202|tcp dport 22|tcp dport 443|udp dport 53", port, "|")
        print "table inet packet_bench_naive {\n\tchain input {\n\t\ttype filter hook input priority filter; policy drop;"
        print "\t\tct state established,related accept\n\t\tiif \"lo\" accept"
        for (j = 0; j < n - 3; j++) {
            s = j + 1; a = 167772160 + s * 100 * 2
            printf "\t\tip saddr %d.%d.%d.%d %s accept\n", int(a / 16777216), int(a / 65536) % 256, int(a / 256) % 256, a % 256, port[(s % n) % 4 + 1]
        }
        print "\t\tip saddr 10.77.0.1 tcp dport 5201 accept\n\t\tip saddr 10.77.0.1 udp dport 5203 accept\n\t\tip saddr 10.77.0.1 tcp dport 5202 accept\n\t}\n}"
    }' > "$2"
}

# The lab: the sender's addresses on its loopback, a /32 route to each receiver.
ip netns add "$SND"; ip -n "$SND" link set lo up
ip -n "$SND" addr add 10.77.0.1/32 dev lo; ip -n "$SND" addr add 10.77.0.9/32 dev lo
modprobe nf_conntrack 2>/dev/null || true
for i in "${!VARIANTS[@]}"; do
    v=${VARIANTS[$i]} ns=$(rcv "${VARIANTS[$i]}") k=$((i + 1))
    ip netns add "$ns"; ip -n "$ns" link set lo up
    ip link add s$T-$k netns "$SND" type veth peer name r$T-$k netns "$ns"
    ip -n "$ns" link set r$T-$k name eth0
    ip -n "$SND" link set s$T-$k up; ip -n "$ns" link set eth0 up
    ip -n "$ns" addr add "10.77.$k.2/32" dev eth0; ip -n "$ns" route add 10.77.0.0/24 dev eth0
    ip -n "$SND" route add "10.77.$k.2/32" dev s$T-$k src 10.77.0.1
    ip netns exec "$ns" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=2
    ip netns exec "$ns" $ON_CORE "$LOAD" tcp-server 5202 2> "$WORK/$v.tcp-server.err" & SERVERS+=($!); SERVER_PID[$v.conn]=$!
    ip netns exec "$ns" $ON_CORE "$LOAD" udp-server 5203 2> "$WORK/$v.udp-server.err" & SERVERS+=($!); SERVER_PID[$v.udp]=$!
    ip netns exec "$ns" $ON_CORE iperf3 -s -p 5201 > "$WORK/$v.iperf-server.out" 2>&1 & SERVERS+=($!)
done
for v in "${VARIANTS[@]}"; do
    for _ in $(seq 50); do
        [ "$(ip netns exec "$(rcv "$v")" ss -Hltn '( sport = :5201 or sport = :5202 )' | wc -l)" -ge 2 ] && break; sleep 0.1
    done
done

# The rulesets, each once.
echo "packet-bench: $ROUNDS rounds of ${#VARIANTS[@]} variants x 3 tests, $RUN_SECONDS s each, $THREADS client threads; 1,000,000 sender addresses; enforcer $ENFORCER"
echo "(naive N: N rules, one per sender/port pair, the sender's own rules last: every new connection walks the whole list)"
for v in "${VARIANTS[@]}"; do
    t0=${EPOCHREALTIME/./}
    case $v in
        none) continue ;;
        enforcer-*)
            gen_policy "${v#enforcer-}" "$(addr "$v")" "$WORK/$v"
            ip netns exec "$(rcv "$v")" "$ENFORCER" apply --dir "$WORK/$v" --system recv --state-dir "$WORK/state-$v" \
                > "$WORK/$v.apply" 2>&1 || { echo "packet-bench: enforcer apply failed:" >&2; cat "$WORK/$v.apply" >&2; exit 1; }
            what=$(sed -n 's/.*table replaced: \([0-9]* sets, [0-9]* chains, [0-9]* kernel elements\).*/\1/p' "$WORK/$v.apply") ;;
        uncounted-*)
            gen_policy "${v#uncounted-}" "$(addr "$v")" "$WORK/$v"
            ip netns exec "$(rcv "$v")" "$ENFORCER" apply --dir "$WORK/$v" --system recv --state-dir "$WORK/state-$v" \
                > "$WORK/$v.apply" 2>&1 || { echo "packet-bench: enforcer apply failed:" >&2; cat "$WORK/$v.apply" >&2; exit 1; }
            # The same ruleset without its counters: every `counter name X` statement and every
            # counter object out of the listing, loaded again in place of enforcer's.
            ip netns exec "$(rcv "$v")" nft list ruleset > "$WORK/$v.listed"
            python3 -c 'import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"\n\t*counter [^ \n{]+ \{\n[^}]*\}", "", text)
text = re.sub(r"counter name \"?[^ \"\n]+\"? ?", "", text)
open(sys.argv[2], "w").write(text)' "$WORK/$v.listed" "$WORK/$v.nft"
            ! grep -q 'counter' "$WORK/$v.nft" || { echo "packet-bench: counters left in $WORK/$v.nft" >&2; exit 1; }
            ip netns exec "$(rcv "$v")" nft flush ruleset
            ip netns exec "$(rcv "$v")" nft -f "$WORK/$v.nft"
            what="$(sed -n 's/.*table replaced: \([0-9]* sets, [0-9]* chains, [0-9]* kernel elements\).*/\1/p' "$WORK/$v.apply"), counters taken out" ;;
        naive-*)
            gen_naive "${v#naive-}" "$WORK/$v.nft"
            ip netns exec "$(rcv "$v")" nft -f "$WORK/$v.nft"
            what="$(grep -c ' accept$' "$WORK/$v.nft") rules" ;;
    esac
    printf '  loaded %-15s in %5.1f s: %s\n' "$v" "$(awk -v a="$t0" -v b="${EPOCHREALTIME/./}" 'BEGIN { print (b - a) / 1e6 }')" "$what"
done

in_force() {  # from 10.77.0.9 (in no policy): connects to the bare receiver only
    local v got
    for v in "${VARIANTS[@]}"; do
        if ip netns exec "$SND" nc -z -w 1 -s 10.77.0.9 "$(addr "$v")" 5202 2>/dev/null; then got=connects; else got=refused; fi
        if [ "$got" != "$([ "$v" = none ] && echo connects || echo refused)" ]; then
            echo "packet-bench: $1: 10.77.0.9 (in no policy) $got at $v: its ruleset is not what it should be" >&2; exit 1
        fi
    done
}
in_force "before the rounds"

cpu_seconds() {  # cpu_seconds PID: its user + system CPU seconds so far, from /proc/PID/stat
    awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.3f\n", ($12 + $13) / hz }' "/proc/$1/stat"
}

measure() {  # measure VARIANT TEST: one run; prints its figure and appends it to WORK/VARIANT.TEST,
             # and the CPU time it took (client and server) per operation to WORK/VARIANT.TEST.cpu
    local v=$1 t=$2 out figure errors cpu before after
    case $t in
        conn|udp)
            before=$(cpu_seconds "${SERVER_PID[$v.$t]}")
            out=$(ip netns exec "$SND" $ON_CORE "$LOAD" "$([ "$t" = conn ] && echo tcp || echo udp)-client" "$(addr "$v")" \
                "$([ "$t" = conn ] && echo 5202 || echo 5203)" "$RUN_SECONDS" "$THREADS")
            after=$(cpu_seconds "${SERVER_PID[$v.$t]}")
            # "…: N things in S s, R/s, E errors, cpu U S" → R E, and the CPU microseconds per thing
            read -r figure errors cpu < <(echo "$out" | awk -v b="$before" -v a="$after" '{
                n = $2; r = $(NF - 5); sub(/\/s,/, "", r); e = $(NF - 4)
                printf "%s %s %.2f\n", r, e, n ? ($(NF - 1) + $NF + a - b) / n * 1e6 : 0 }')
            [ "$errors" = 0 ] || echo "packet-bench: $v $t: $out" >&2 ;;
        tcp)
            out=$(ip netns exec "$SND" $ON_CORE iperf3 -c "$(addr "$v")" -p 5201 -t "$RUN_SECONDS" -J)
            # Gbit/s received, and the CPU milliseconds of both iperf3 ends per GB
            read -r figure cpu < <(echo "$out" | python3 -c 'import json, sys
e = json.load(sys.stdin)["end"]; r = e["sum_received"]; c = e["cpu_utilization_percent"]
print("%.2f %.2f" % (r["bits_per_second"] / 1e9, (c["host_total"] + c["remote_total"]) / 100 * r["seconds"] / (r["bytes"] / 1e9) * 1e3))') ;;
    esac
    echo "$figure" >> "$WORK/$v.$t"
    echo "$cpu" >> "$WORK/$v.$t.cpu"
    echo "$figure"
}

for round in $(seq "$ROUNDS"); do
    echo "round $round:"
    for i in "${!VARIANTS[@]}"; do
        v=${VARIANTS[$(( (i + round - 1) % ${#VARIANTS[@]} ))]}
        c=$(measure "$v" conn) u=$(measure "$v" udp) g=$(measure "$v" tcp)
        printf '  %-15s conn/s %7s   udp rr/s %7s   tcp Gbit/s %6s\n' "$v" "$c" "$u" "$g"
    done
done
in_force "after the rounds"

# What the ruleset itself takes per operation, steadier than the rates on a shared machine: one
# more run of conn and udp per variant under `perf record` (cpu-clock samples of the client;
# the kernel runs the receiver's input hook, the ruleset, in the context of the task that sent
# the packet), the samples inside nft_do_chain_inet x the sample period / operations. Sampling
# resolution: one sample is 250 us; runs of 3 s. Skipped without perf (Debian package linux-perf).
PERF_HZ=4000 PERF_SECONDS=3
ruleset_cost() {  # ruleset_cost VARIANT TEST: microseconds in nft_do_chain_inet per operation, to WORK/VARIANT.TEST.nft
    local v=$1 t=$2 n
    n=$(perf record -q -F "$PERF_HZ" -g -o "$WORK/perf.data" -- ip netns exec "$SND" $ON_CORE "$LOAD" \
        "$([ "$t" = conn ] && echo tcp || echo udp)-client" "$(addr "$v")" "$([ "$t" = conn ] && echo 5202 || echo 5203)" \
        "$PERF_SECONDS" "$THREADS" 2> /dev/null | awk '{ print $2 }')
    perf report -i "$WORK/perf.data" --children --sort sym -n -q -g none 2> /dev/null | awk -v n="$n" -v hz="$PERF_HZ" '
        { pct = $1; sub(/%/, "", pct); total += $3 } $NF == "nft_do_chain_inet" { nft = pct }
        END { printf "%.2f\n", n ? nft / 100 * total / hz * 1e6 / n : 0 }' > "$WORK/$v.$t.nft"
}
if command -v perf > /dev/null; then
    for v in "${VARIANTS[@]}"; do if [ "$v" != none ]; then for t in conn udp; do ruleset_cost "$v" "$t"; done; fi; done
fi

median() { sort -n "$WORK/$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
label() {
    case $1 in
        none) echo "none (no ruleset)" ;;
        enforcer-*) printf 'enforcer, %s policies' "$(printf "%'d" "${1#enforcer-}")" ;;
        uncounted-*) printf 'enforcer, %s, no counters' "$(printf "%'d" "${1#uncounted-}")" ;;
        naive-*) printf 'naive, %s rules' "$(printf "%'d" "${1#naive-}")" ;;
    esac
}
printf '\n%-32s %10s %10s %11s   %13s %13s %11s\n' "medians of $ROUNDS rounds" "conn/s" "udp rr/s" "tcp Gbit/s" "CPU us/conn" "CPU us/rr" "CPU ms/GB"
for v in "${VARIANTS[@]}"; do
    printf '%-32s %10s %10s %11s   %13s %13s %11s\n' "$(label "$v")" "$(median "$v.conn")" "$(median "$v.udp")" "$(median "$v.tcp")" \
        "$(median "$v.conn.cpu")" "$(median "$v.udp.cpu")" "$(median "$v.tcp.cpu")"
done
echo "(CPU: client and server user + system time per operation; the system time holds the kernel's packet processing, the ruleset's included)"
ratio() {  # ratio TEST A B GOAL [NOTE]: "TEST: A / B = Rx (goal >= Gx) met|MISSED"; GOAL "-": information, NOTE says what
    local a b
    # Only variants this run measured.
    [ -s "$WORK/$2.$1" ] && [ -s "$WORK/$3.$1" ] || return 0
    a=$(median "$2.$1") b=$(median "$3.$1")
    awk -v t="$1" -v a="$a" -v b="$b" -v la="${2/-/ }" -v lb="${3/-/ }" -v g="$4" -v note="${5:-}" 'BEGIN {
        name = (t == "conn") ? "conn/s" : (t == "udp") ? "udp rr/s" : "tcp Gbit/s"
        r = b > 0 ? a / b : 0
        if (g == "-") printf "%s: %s / %s = %.2fx (%s)\n", name, la, lb, r, note
        else printf "%s: %s / %s = %.2fx (goal >= %.2fx) %s\n", name, la, lb, r, g, (r >= g) ? "met" : "MISSED"
    }'
}
if command -v perf > /dev/null; then
    printf '\n%-32s %17s %17s\n' "the ruleset's own cost (perf)" "us per connection" "us per datagram"
    for v in "${VARIANTS[@]}"; do
        [ "$v" = none ] || printf '%-32s %17s %17s\n' "$(label "$v")" "$(cat "$WORK/$v.conn.nft")" "$(cat "$WORK/$v.udp.nft")"
    done
    echo "(CPU time inside nft_do_chain_inet, the receiver's input hook, per connection (the client's SYN, then its established"
    echo " ACKs and FIN) and per UDP request (one established datagram); one $PERF_SECONDS s run each under perf record at $PERF_HZ Hz; information)"
else
    echo "(perf not installed: no figures of the ruleset's own cost)"
fi
echo
for t in "${TESTS[@]}"; do
    ratio "$t" enforcer-10000 enforcer-10 0.97
    ratio "$t" enforcer-10000 naive-10 1.00
    ratio "$t" enforcer-10 naive-10 1.00
    ratio "$t" naive-1000 naive-10 - "the naive ruleset's growth; information"
    ratio "$t" naive-10000 naive-10 - "the naive ruleset's growth; information"
    ratio "$t" enforcer-10000 none - "enforcer's whole cost against no ruleset; information"
    ratio "$t" enforcer-10 uncounted-10 0.97 "counting"
done
echo "(packet-bench: $((SECONDS - START)) s)"
