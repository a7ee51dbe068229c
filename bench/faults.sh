#!/usr/bin/env bash
# Page faults per call, side by side: `perf stat -e page-faults` around
# `nexus bench --prepared` at two lengths, the difference divided by the
# calls between them (so start-up and compiling cancel out), for each
# slot_reset mode.
#
#   bash bench/faults.sh NEXUS HANDLER.js...
#
# A HANDLER.input.json beside a handler is its input. PREPARED=0 runs the
# plain path (the module evaluated in each call); SHORT and LONG set the
# two lengths (100 and 1100). Prints a markdown table.
set -euo pipefail
nexus=$1
shift
cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
short=${SHORT:-100} long=${LONG:-1100}
path=--prepared label=prepared
[ "${PREPARED:-1}" = 0 ] && path='' label=plain
# Calls each run makes: the measured ones and a tenth as many to warm up.
calls() { echo $(($1 + ($1 / 10 > 10 ? $1 / 10 : 10))); }
faults() { # mode handler input iterations
  NEXUS_SLOT_RESET=$1 perf stat -x, -e page-faults -- "$nexus" bench "$2" --input "$3" \
    $path --iterations "$4" --cache-dir "$cache" 2>&1 >/dev/null |
    awk -F, '/page-faults/ { print $1 }'
}
echo "| handler | path | slot_reset | page faults per call |"
echo "|---|---|---|---|"
for handler in "$@"; do
  input='{}'
  [ -f "${handler%.js}.input.json" ] && input=$(cat "${handler%.js}.input.json")
  for mode in scan full; do
    faults "$mode" "$handler" "$input" 10 >/dev/null # compile and snapshot once
    a=$(faults "$mode" "$handler" "$input" $short)
    b=$(faults "$mode" "$handler" "$input" $long)
    per=$(awk -v a="$a" -v b="$b" -v n=$(($(calls $long) - $(calls $short))) \
      'BEGIN { printf "%.1f", (b - a) / n }')
    echo "| $(basename "$handler" .js) | $label | $mode | $per |"
  done
done
