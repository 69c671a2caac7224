#!/usr/bin/env bash
# Instructions and simulated cache misses a server spends per answered query,
# counted by callgrind: unlike time, the count repeats to within a fraction of
# a percent whatever else the machine is doing, so a change too small for the
# noisy side-by-side runs still shows (docs/BENCHMARKS.md, "Counted, not
# timed"). User space only: the kernel's share is not counted.
#
# Usage: examples/wire_instructions.sh [SERVER] [MIX]
#   SERVER: mirrordns (target/release, default) or any peer of
#           ../shared/bench/lib/peers.sh (knot, nsd, gdnsd, pdns)
#   MIX:    www-ecs-many (default), www or static
# MIRRORDNS=path/to/binary measures another build; MIRRORDNS_ARGS adds
# serve options (e.g. "--rrl-exempt 192.0.2.0/24 --rrl-rate 100000000" to
# count rate limiting as production runs it, loopback not exempt).
# CALLGRIND_ARGS adds callgrind options, e.g. "--LL=1048576,8,64" to take
# this machine's 1 MiB L2 (per core) as the last level the simulation reports.
# Needs valgrind, dnsperf and ../shared/bench. The server runs under
# valgrind (about 50 times slower), so dnsperf keeps 100 queries in flight
# and the server reads full batches, as it does at saturation.
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-mirrordns}
mix=${2:-www-ecs-many}
port=25599
# shellcheck source=examples/bench_server.sh
source examples/bench_server.sh
bench_setup "$server" "$mix" $port
# --trace-children: NSD answers from a forked child.
# shellcheck disable=SC2086 # $cmd is a command line, CALLGRIND_ARGS a list of options
setsid valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no --trace-children=yes ${CALLGRIND_ARGS:-} \
  --callgrind-out-file="$work/callgrind.%p" $cmd >"$work/server.log" 2>&1 </dev/null &
group=$!
trap 'kill -TERM -- -$group 2>/dev/null || true' EXIT
sleep 8

# Warm up uncounted (templates, every ECS subnet learned), then count.
dnsperf -s 127.0.0.1 -p $port "${input[@]}" -Q 3000 -n 1 -l 30 -q 200 >"$work/warm-up.txt" 2>&1
callgrind_control -i on >/dev/null
dnsperf -s 127.0.0.1 -p $port "${input[@]}" -q 100 -l 10 >"$work/dnsperf.txt" 2>&1
callgrind_control -d >/dev/null
callgrind_control -i off >/dev/null
sleep 1
queries=$(awk '/Queries completed/{print $3}' "$work/dnsperf.txt")
# Every process's totals (Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw), summed.
for counts in "$work"/callgrind.*.1; do
  callgrind_annotate "$counts" 2>/dev/null | grep 'PROGRAM TOTALS'
  echo "costliest functions: callgrind_annotate $counts" >&2
done | awk -v q="$queries" -v what="$server $mix" '
  {
    gsub(",", ""); gsub(/\([^)]*\)/, "")
    for (i = 1; i <= 9; i++) total[i] += $i
  }
  END {
    printf "%s: %d queries answered; per query %.0f instructions, %.2f L1 misses (%.2f read, %.2f write), %.3f last-level misses\n",
      what, q, total[1] / q, (total[5] + total[6]) / q, total[5] / q, total[6] / q, (total[8] + total[9]) / q
  }'

