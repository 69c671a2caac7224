#!/usr/bin/env bash
# Server CPU per query with 1 and 2 UDP sockets (SO_REUSEPORT), at a fixed
# rate dnsperf holds on this machine: with 2 sockets each carries half of it,
# so run RATE/2 with 1 socket too to compare at the same load per socket.
# Usage: examples/udp_scaling.sh [RATE] [RUNS]
# after `cargo build --release`; needs dnsperf and ../shared/bench.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-60000}
runs=${2:-3}
bench=../shared/bench
port=25599
queries=$(mktemp -d)
trap 'rm -rf "$queries"' EXIT
python3 "$bench/gen-queries.py" --out "$queries" >/dev/null
for mix in static www-ecs-many; do
  case $mix in
    static) input=(-d "$queries/static.txt") ;;
    www-ecs-many) input=(-B -d "$queries/www-ecs-many.bin") ;;
  esac
  for threads in 1 2; do
    for run in $(seq "$runs"); do
      state=$(mktemp -d)
      target/release/mirrordns serve --zones "$bench/zones/bench.test.yaml" --listen 127.0.0.1:$port \
        --api 127.0.0.1:0 --state-dir "$state" --udp-threads "$threads" --rrl-rate 0 2>/dev/null &
      pid=$!
      sleep 0.5
      # Warm up (templates, learned clusters), then measure.
      dnsperf -s 127.0.0.1 -p $port "${input[@]}" -n 1 -c 4 -q 200 -Q "$rate" >/dev/null 2>&1
      before=$(awk '{print $14 + $15}' /proc/$pid/stat)
      out=$(dnsperf -s 127.0.0.1 -p $port "${input[@]}" -l 5 -c 4 -q 200 -Q "$rate" 2>&1)
      after=$(awk '{print $14 + $15}' /proc/$pid/stat)
      kill $pid; wait $pid 2>/dev/null || true
      rm -rf "$state"
      completed=$(echo "$out" | awk '/Queries completed/{print $3}')
      ticks=$(getconf CLK_TCK)
      echo "$mix threads=$threads run=$run: $completed queries, $(echo "scale=2; ($after - $before) / $ticks * 1000000 / $completed" | bc) us server CPU per query"
    done
  done
done
