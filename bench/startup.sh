#!/usr/bin/env bash
# Time from `nexus serve` starting to /readyz answering 200, with an empty
# cache directory: cold (the guest compiled) against a seed made by
# `nexus cache warm` (nothing compiled). Medians of N runs, side by side.
#   bench/startup.sh NEXUS HANDLERS_DIR [N]
set -euo pipefail
nexus=$(realpath "$1"); handlers=$(realpath "$2"); runs=${3:-5}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
NEXUS_CACHE_DIR="$work/seed" "$nexus" cache warm --handlers "$handlers" >/dev/null 2>&1
port=18099
ready_ms() {
  rm -rf "$work/cache"
  local start end pid
  start=$(date +%s%N)
  "$nexus" serve --listen 127.0.0.1:$port --cache-dir "$work/cache" --handlers "$handlers" "$@" >/dev/null 2>&1 &
  pid=$!
  until curl -sf -o /dev/null http://127.0.0.1:$port/readyz; do sleep 0.002; done
  end=$(date +%s%N)
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo $(( (end - start) / 1000000 ))
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
cold=$(for _ in $(seq "$runs"); do ready_ms; done | median)
seeded=$(for _ in $(seq "$runs"); do ready_ms --seed-dir "$work/seed"; done | median)
echo "| start to ready, median of $runs | cold (empty cache) | seeded (empty cache + seed) | cold / seeded |"
echo "|---|---|---|---|"
echo "| nexus serve --handlers $(basename "$handlers") | $cold ms | $seeded ms | $(( cold / (seeded > 0 ? seeded : 1) ))× |"
