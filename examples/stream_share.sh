#!/usr/bin/env bash
# Three instances on one nats-server on loopback, then examples/stream_share
# (throughput and publish-to-answer latency), then a fourth instance that
# replays the whole stream. Usage: examples/stream_share.sh [BATCHES] [ROUNDS]
# after `cargo build --release --examples`; needs nats-server, curl and bc.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
nats-server -js -a 127.0.0.1 -p 4333 -sd "$work/js" >"$work/nats.log" 2>&1 &
pids=($!)
sleep 0.5
for i in 1 2 3; do
  MIRRORDNS_API_TOKEN=t target/release/mirrordns serve --zones examples/zones/load.test.yaml \
    --listen 127.0.0.1:536$i --api 127.0.0.1:806$i --state-dir "$work/s$i" \
    --nats nats://127.0.0.1:4333 --rrl-rate 0 >"$work/serve$i.log" 2>&1 &
  pids+=($!)
done
sleep 1.5
target/release/examples/stream_share nats://127.0.0.1:4333 \
  http://127.0.0.1:8061=127.0.0.1:5361,http://127.0.0.1:8062=127.0.0.1:5362,http://127.0.0.1:8063=127.0.0.1:5363 \
  "${1:-200}" "${2:-200}"
# A fourth instance, started now, replays the whole stream.
total=$(( ${1:-200} + ${2:-200} ))
start=$(date +%s.%N)
MIRRORDNS_API_TOKEN=t target/release/mirrordns serve --zones examples/zones/load.test.yaml \
  --listen 127.0.0.1:5364 --api 127.0.0.1:8064 --state-dir "$work/s4" \
  --nats nats://127.0.0.1:4333 >"$work/serve4.log" 2>&1 &
pids+=($!)
until [ "$(curl -s 127.0.0.1:8064/metrics | awk '/^mirrordns_stream_position /{print $2}')" = "$total" ]; do sleep 0.01; done
end=$(date +%s.%N)
echo "late instance: replayed $total messages ($(( ${1:-200} * 1000 + ${2:-200} * 8 )) measurements) in $(echo "$end - $start" | bc) s from its start"
kill "${pids[@]}"; wait 2>/dev/null || true
rm -rf "$work"
