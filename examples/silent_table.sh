#!/usr/bin/env bash
# The silent-targets table of docs/STEERING.md: `mirrordns simulate` on the
# WonderNetwork and RIPE Atlas data sets, 8 and 12 mirrors, 10 % noise, with
# 0 to 90 % of the sub-blocks answering no active probe, with and without
# access-log (passive) RTTs. Prints a Markdown table.
#
#   cargo build --release && examples/silent_table.sh [../shared/data/latency]
#
# "converged" is the first round from which answered/oracle stays within
# 2 % of the last round's; "explored after" is the largest share of
# exploration answers from that round on.
set -euo pipefail
data=${1:-../shared/data/latency}
bin=${MIRRORDNS:-target/release/mirrordns}
echo "| data | mirrors | silent | passive | answered/oracle (last round) | converged at round | explored after, % | round robin | geo-nearest | best per /16 |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for set in wondernetwork ripe-atlas-country; do
  for mirrors in 8 12; do
    seed=$([ "$mirrors" = 8 ] && echo 1 || echo 2)
    for silent in 0 0.3 0.6 0.9; do
      for passive in no yes; do
        flag=$([ "$passive" = yes ] && echo --passive || true)
        "$bin" simulate --data "$data/$set" --mirror-count "$mirrors" --noise 0.1 \
          --rounds 24 --seed "$seed" --silent "$silent" $flag |
          awk -v set="$set" -v m="$mirrors" -v s="$silent" -v p="$passive" '
            $1 ~ /^[0-9]+$/ && NF == 13 { n = $1; ratio[n] = $3; explored[n] = $10;
                                          rr = $11; geo = $12; per16 = $13; last = n }
            END {
              conv = last
              for (r = last; r >= 0; r--) {
                if (ratio[r] > ratio[last] * 1.02 || ratio[r] < ratio[last] / 1.02) break
                conv = r
              }
              worst = 0
              for (r = conv; r <= last; r++) if (explored[r] > worst) worst = explored[r]
              printf "| %s | %s | %s | %s | %.3f | %d | %.1f | %s | %s | %s |\n",
                     set, m, s, p, ratio[last], conv, worst, rr, geo, per16
            }'
      done
    done
  done
done
