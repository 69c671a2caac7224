#!/usr/bin/env bash
# Signed answers against unsigned ones on the wire (docs/BENCHMARKS.md,
# "DNSSEC"): the shared harness (../shared/bench) runs mirrordns alone on the
# reference zone bench.test., once unsigned and once signed, round after
# round, alternating, so that both see the same machine.
#
#   examples/bench_signed.sh [ROUNDS] [DURATION_S]
#
# The signed server answers queries with the DO bit: the static mix with
# dnsperf -D, www-ecs-many (binary queries, where dnsperf cannot add -D)
# from a copy of its query file with DO set in every OPT record. The
# harness itself has no DO mix, so it runs from a copy with one added:
# MIX+do. Prints, per mix, the signed QPS per server core over the
# unsigned one in each round, and their median.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
duration=${2:-8}
bench=$(cd ../shared/bench && pwd)
work=${BENCH_WORK:-/tmp/mirrordns-bench-signed}
rm -rf "$work"
mkdir -p "$work"
cargo build --release --quiet

# The harness, with MIX+do: -D for text input, the DO copy for -B input.
cp -r "$bench" "$work/harness"
python3 - "$work/harness/run-peers.sh" <<'PY'
import sys
path = sys.argv[1]
text = open(path).read()
parse = '  if [[ $mix == *+tcp ]]; then transport=tcp; mix=${mix%+tcp}; fi\n'
assert parse in text and '  [[ -n $rate ]] && args+=(-Q "$rate")\n' in text
text = text.replace(parse, parse + '  local dnssec_ok=""\n  if [[ $mix == *+do ]]; then dnssec_ok=1; mix=${mix%+do}; fi\n')
text = text.replace('  [[ -n $rate ]] && args+=(-Q "$rate")\n',
  '  if [[ -n $dnssec_ok ]]; then\n'
  '    if [[ ${args[0]} == -B ]]; then args=(-B -d "$QDIR/www-ecs-many-do.bin"); else args+=(-D); fi\n'
  '  fi\n'
  '  [[ -n $rate ]] && args+=(-Q "$rate")\n')
open(path, "w").write(text)
PY

# The queries, and www-ecs-many with DO set in each message's OPT record.
python3 "$bench/gen-queries.py" --out "$work/queries" >/dev/null
python3 - "$work/queries/www-ecs-many.bin" "$work/queries/www-ecs-many-do.bin" <<'PY'
import sys
data, out, at = open(sys.argv[1], "rb").read(), bytearray(), 0
while at < len(data):
    length = int.from_bytes(data[at:at + 2], "big")
    message = bytearray(data[at + 2:at + 2 + length])
    at += 2 + length
    i = 12
    while message[i]:
        i += 1 + message[i]
    opt = i + 1 + 4  # past the name's root label, QTYPE and QCLASS
    assert message[opt] == 0 and message[opt + 1:opt + 3] == b"\x00\x29", "an OPT record"
    message[opt + 7] |= 0x80  # the DO bit: the first flags octet of the OPT's TTL
    out += length.to_bytes(2, "big") + message
open(sys.argv[2], "wb").write(out)
PY

# The signed zone: the reference zone with a key of its own.
mkdir -p "$work/signed"
target/release/mirrordns dnssec keygen --out "$work/signed/bench.test.key" >/dev/null
cp "$bench/zones/bench.test.yaml" "$work/signed/"
echo "dnssec: {key_file: bench.test.key}" >>"$work/signed/bench.test.yaml"

run() { # NAME ZONE_FILE MIXES ROUND
  local name=$1 zone=$2 mixes=$3 round=$4
  BENCH_WORK=$work "$work/harness/run-peers.sh" --peers none --mixes "$mixes" \
    --duration "$duration" --results "$work/results/$name.r$round" \
    --candidate "target/release/mirrordns serve --zones $zone --listen 127.0.0.1:{port} --api 127.0.0.1:0 --state-dir $work/state-$name-$round" \
    --candidate-port 25399 --candidate-name "$name" >/dev/null
}
for round in $(seq "$rounds"); do
  run unsigned "$bench/zones/bench.test.yaml" static,www-ecs-many "$round"
  run signed "$work/signed/bench.test.yaml" static+do,www-ecs-many+do "$round"
done

python3 - "$work/results" <<'PY'
import csv, glob, statistics, sys
core = {}
for path in glob.glob(sys.argv[1] + "/*/results.csv"):
    for r in csv.DictReader(open(path)):
        round_ = path.split("/")[-2].split(".r")[1]
        core[(r["server"], r["mix"].replace("+do", ""), round_)] = float(r["qps_per_server_core"])
for mix in ("static", "www-ecs-many"):
    ratios = []
    for (server, m, round_), signed in sorted(core.items()):
        if server == "signed" and m == mix:
            unsigned = core[("unsigned", mix, round_)]
            ratios.append(signed / unsigned)
            print(f"{mix} round {round_}: unsigned {unsigned:.0f}, signed {signed:.0f} QPS per server core: {signed / unsigned:.2f}")
    print(f"{mix}: signed/unsigned median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})")
PY
