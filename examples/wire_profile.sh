#!/usr/bin/env bash
# Where a server's CPU goes under a saturating dnsperf load, in samples per
# million answered queries, so that two servers profiled one after the other
# compare symbol by symbol (docs/BENCHMARKS.md, "Why www-ecs-many is still
# behind gdnsd").
#
# Usage: examples/wire_profile.sh [SERVER] [MIX]
#   SERVER: mirrordns (target/release, default) or any peer of
#           ../shared/bench/lib/peers.sh (knot, nsd, gdnsd, pdns)
#   MIX:    www-ecs-many (default), www or static
# Needs perf, dnsperf and ../shared/bench; the server runs on CPU 1 and
# dnsperf on CPU 0, as in the side-by-side runs. Prints the user/kernel
# split and the 25 costliest symbols; keeps perf.data in the work directory.
# With FLAMEGRAPH=FILE.svg it records call stacks too and draws them with
# inferno (`cargo install inferno`); build mirrordns with debug information
# for that: CARGO_PROFILE_RELEASE_DEBUG=true cargo build --release (and
# MIRRORDNS=path/to/that/binary if it is not target/release/mirrordns).
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-mirrordns}
mix=${2:-www-ecs-many}
port=25499
# shellcheck source=examples/bench_server.sh
source examples/bench_server.sh
bench_setup "$server" "$mix" $port
setsid taskset -c 1 bash -c "exec $cmd" >"$work/server.log" 2>&1 </dev/null &
group=$!
trap 'kill -TERM -- -$group 2>/dev/null || true' EXIT
sleep 1.5
pid=$(pgrep -g "$group" | head -1)
for task in /proc/"$pid"/task/*; do taskset -p -c 1 "${task##*/}" >/dev/null; done

# One pass to warm up (templates, learned sub-blocks), then the profiled one.
taskset -c 0 dnsperf -s 127.0.0.1 -p $port "${input[@]}" -l 4 -q 100 >/dev/null 2>&1
stacks=()
[[ -n ${FLAMEGRAPH:-} ]] && stacks=(--call-graph dwarf)
perf record -F 2000 "${stacks[@]}" -p "$pid" -o "$work/perf.data" -- sleep 4 2>/dev/null &
recorder=$!
taskset -c 0 dnsperf -s 127.0.0.1 -p $port "${input[@]}" -l 4 -q 100 >"$work/dnsperf.txt" 2>&1
wait $recorder
queries=$(awk '/Queries completed/{print $3}' "$work/dnsperf.txt")
echo "$server $mix: $queries queries answered in 4 s; samples per million queries:"
# perf prints "overhead samples what"; print "samples-per-million what".
per_million() {
  awk -v q="$queries" '{ n = $2; $1 = ""; $2 = ""; printf "%8.1f %s\n", n * 1e6 / q, $0 }'
}
report() {
  perf report -i "$work/perf.data" --no-children --stdio -g none -F "overhead,sample,$1" 2>/dev/null |
    grep -vE '^#|^$'
}
report dso | per_million
echo "costliest symbols:"
report sym | awk 'NR <= 25' | per_million
if [[ -n ${FLAMEGRAPH:-} ]]; then
  perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf |
    inferno-flamegraph --title "$server, $mix, pinned to one core" >"$FLAMEGRAPH"
  echo "flame graph: $FLAMEGRAPH"
fi
