#!/usr/bin/env bash
# `just bench-serve`: nexus serve against two Node peers on the same handler,
# side by side in one run, with wrk on loopback (POST, keep-alive, 2 threads):
#   nexus       a fresh wasm instance per request
#   node vm     a fresh `vm` context per request, two cluster workers
#   node direct the handler called directly, two cluster workers
# for the trivial handler and the lodash handler, at 1 and 64 connections.
# usage: bench/serve.sh NEXUS_BINARY HANDLERS_DIR [SECONDS]
#   HANDLERS_DIR holds lodash.js and lodash.input.json (tests/compat/make-handlers.mjs)
set -euo pipefail
cd "$(dirname "$0")/.."
nexus=$1 handlers=$2 seconds=${3:-10}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/h"
cp bench/trivial.js "$work/h/trivial.js"
echo '{"name":"bench"}' > "$work/trivial.input.json"
cp "$handlers/lodash.js" "$work/h/lodash.js"
cp "$handlers/lodash.input.json" "$work/lodash.input.json"

"$nexus" serve --handlers "$work/h" --listen 127.0.0.1:18081 --cache-dir "$work/cache" >/dev/null 2>"$work/nexus.log" &
for _ in $(seq 600); do curl -sf http://127.0.0.1:18081/readyz >/dev/null && break; sleep 0.1; done
# lodash's top level reads the clock (its shortOut heuristic calls Date.now),
# so `auto` keeps it plain; a second server snapshots it anyway (`eager`).
mkdir -p "$work/eager"
cp "$work/h/lodash.js" "$work/eager/lodash.js"
"$nexus" serve --handlers "$work/eager" --listen 127.0.0.1:18086 --cache-dir "$work/cache" --snapshot eager >/dev/null 2>"$work/nexus-eager.log" &
for _ in $(seq 600); do curl -sf http://127.0.0.1:18086/readyz >/dev/null && break; sleep 0.1; done
node bench/serve-peer.mjs vm 18082 "$work/h/trivial.js" & node bench/serve-peer.mjs direct 18083 "$work/h/trivial.js" &
node bench/serve-peer.mjs vm 18084 "$work/h/lodash.js" & node bench/serve-peer.mjs direct 18085 "$work/h/lodash.js" &
sleep 2
# Under snapshot = auto, a handler gets its snapshot after its first calls:
# make those calls, and wait for the snapshots, before measuring.
for handler in ${HANDLERS:-trivial lodash}; do
  for _ in 1 2 3; do curl -sf "http://127.0.0.1:18081/handlers/$handler/invoke" --data-binary "@$work/$handler.input.json" >/dev/null; done
  for _ in $(seq 1200); do
    state=$(curl -sf "http://127.0.0.1:18081/handlers/$handler" | sed -n 's/.*"snapshot":"\([a-z]*\)".*/\1/p')
    case $state in queued|building|waiting) sleep 0.1 ;; *) break ;; esac
  done
  echo "$handler: snapshot $state" >&2
done
for _ in $(seq 1200); do
  state=$(curl -sf "http://127.0.0.1:18086/handlers/lodash" | sed -n 's/.*"snapshot":"\([a-z]*\)".*/\1/p')
  case $state in queued|building|waiting) sleep 0.1 ;; *) break ;; esac
done
echo "lodash (eager): snapshot $state" >&2

# One wrk run: prints "req/s p50_ms p99_ms".
run() { # URL CONNECTIONS BODY_FILE
  BODY_FILE=$3 wrk -t"$(( $2 < 2 ? 1 : 2 ))" -c"$2" -d"${seconds}s" --latency -s bench/post.lua "$1" |
    awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
         function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
         END { if (bad) print "non-2xx:" bad > "/dev/stderr"; printf "%.0f %.2f %.2f\n", rps, ms(p50), ms(p99) }'
}

echo "| handler | connections | nexus req/s (p50, p99 ms) | node vm req/s (p50, p99) | node direct req/s (p50, p99) | nexus / node vm | nexus / node direct |"
echo "|---|---|---|---|---|---|---|"
for row in ${ROWS:-trivial lodash lodash-eager}; do
  handler=${row%-eager} port=18081
  [ "$row" = lodash-eager ] && port=18086
  if [ $handler = trivial ]; then vm=18082 direct=18083; else vm=18084 direct=18085; fi
  for c in 1 64; do
    read -r n_rps n_50 n_99 < <(run "http://127.0.0.1:$port/handlers/$handler/invoke" "$c" "$work/$handler.input.json")
    read -r v_rps v_50 v_99 < <(run "http://127.0.0.1:$vm/" "$c" "$work/$handler.input.json")
    read -r d_rps d_50 d_99 < <(run "http://127.0.0.1:$direct/" "$c" "$work/$handler.input.json")
    printf "| %s | %s | %s (%s, %s) | %s (%s, %s) | %s (%s, %s) | %.2f× | %.2f× |\n" \
      "$row" "$c" "$n_rps" "$n_50" "$n_99" "$v_rps" "$v_50" "$v_99" "$d_rps" "$d_50" "$d_99" \
      "$(echo "$n_rps / $v_rps" | bc -l)" "$(echo "$n_rps / $d_rps" | bc -l)"
  done
done
