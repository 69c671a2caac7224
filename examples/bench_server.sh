# shellcheck shell=bash
# Sourced by wire_profile.sh and wire_instructions.sh: one server of the
# side-by-side harness (../shared/bench) and one query mix, set up in a
# fresh work directory.
#
# After `bench_setup SERVER MIX PORT`:
#   $work   the work directory (queries, state, server config, output)
#   $cmd    the server's foreground command line, listening on 127.0.0.1:PORT
#   input   dnsperf's arguments for the mix (an array)
# SERVER is mirrordns (target/release, or $MIRRORDNS, with $MIRRORDNS_ARGS
# added) or any peer of ../shared/bench/lib/peers.sh; MIX is static, www or
# www-ecs-many.
bench_setup() {
  local server=$1 mix=$2 port=$3 bench
  bench=$(cd ../shared/bench && pwd)
  work=$(mktemp -d)
  echo "work directory: $work" >&2
  python3 "$bench/gen-queries.py" --out "$work/queries" >/dev/null
  case $mix in
    static) input=(-d "$work/queries/static.txt") ;;
    www) input=(-d "$work/queries/www.txt") ;;
    www-ecs-many) input=(-B -d "$work/queries/www-ecs-many.bin") ;;
    *) echo "unknown mix $mix" >&2; exit 2 ;;
  esac
  if [[ $server == mirrordns ]]; then
    cmd="${MIRRORDNS:-target/release/mirrordns} serve --zones $bench/zones/bench.test.yaml --listen 127.0.0.1:$port --api 127.0.0.1:0 --state-dir $work/state ${MIRRORDNS_ARGS:-}"
  else
    # shellcheck source=/dev/null
    source "$bench/lib/peers.sh"
    mkdir -p "$work/$server"
    "peer_${server}_config" "$work/$server" "$port"
    cmd=$("peer_${server}_cmd" "$work/$server" "$port")
  fi
}
