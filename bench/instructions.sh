#!/usr/bin/env bash
# Instructions per invocation of `nexus bench bench/trivial.js` under
# callgrind, for each binary given: a count the machine's noise does not move,
# for comparing builds side by side. Per call = (Ir at N=3000 - Ir at N=1000)
# / 2200 (each run also warms up with N/10 calls). One instance slot and no
# slots kept for reuse, since valgrind cannot reserve the full pool.
# usage: bench/instructions.sh NEXUS_BINARY...
set -euo pipefail
cd "$(dirname "$0")/.."
export NEXUS_REUSE_MAX_INSTANCES=0
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 2; }
echo "| binary | plain | prepared |"
echo "|---|---|---|"
for nexus in "$@"; do
  cache=$(mktemp -d)
  # Warm the cache under valgrind itself, with the measured runs' own
  # settings: the CPU features valgrind reports and the pool's size are
  # part of the engine's configuration, and so of the component keys.
  for flag in "" --prepared; do
    valgrind --tool=none --smc-check=all-non-file "$nexus" bench bench/trivial.js \
      --iterations 10 $flag --max-instances 1 --cache-dir "$cache" >/dev/null 2>&1
  done
  row="| $nexus |"
  for flag in "" --prepared; do
    ir() {
      valgrind --tool=callgrind --callgrind-out-file=/dev/null --smc-check=all-non-file \
        "$nexus" bench bench/trivial.js --input '{"name":"bench"}' --iterations "$1" $flag \
        --json --max-instances 1 --cache-dir "$cache" 2>&1 | awk '/Collected/ {print $4}'
    }
    a=$(ir 1000) c=$(ir 3000)
    row="$row $(( (c - a) / 2200 )) |"
  done
  echo "$row"
  rm -rf "$cache"
done
