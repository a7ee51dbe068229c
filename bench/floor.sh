#!/usr/bin/env bash
# `just bench-floor`: the trivial handler served by nexus (a fresh instance
# per call, and `isolation = reuse`), by Node calling it directly (no
# isolation: bench/serve-peer.mjs), and the floor under any server on
# nexus's HTTP stack: host/examples/http_floor.rs, hyper and tokio
# answering the handler's answer as a constant. wrk POSTs {"name":"bench"}
# at CONNECTIONS; ROUNDS (default 5) runs of SECONDS each, the servers in
# turn. Prints each server's median requests a second (and every round's),
# its CPU per request, and its ratio to Node direct.
# usage: bench/floor.sh NEXUS HTTP_FLOOR [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
nexus=$1 floor=$2 seconds=${3:-5} connections=${4:-64} rounds=${ROUNDS:-5}
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/h"
cp bench/trivial.js "$work/h/trivial.js"
echo '{"name":"bench"}' > "$work/input.json"

"$nexus" serve --handlers "$work/h" --listen 127.0.0.1:18181 --cache-dir "$work/cache" >/dev/null 2>"$work/nexus.log" &
pids+=($!)
node bench/serve-peer.mjs direct 18183 "$work/h/trivial.js" & pids+=($!)
"$floor" 127.0.0.1:18184 & pids+=($!)
for _ in $(seq 600); do curl -sf http://127.0.0.1:18181/readyz >/dev/null && break; sleep 0.1; done
curl -sf -X PUT "http://127.0.0.1:18181/handlers/trivial-reuse?isolation=reuse" --data-binary @bench/trivial.js >/dev/null
for handler in trivial trivial-reuse; do
  for _ in 1 2 3; do curl -sf "http://127.0.0.1:18181/handlers/$handler/invoke" -d @"$work/input.json" >/dev/null; done
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:18181/handlers/$handler" | grep -q '"path":"prepared"' && break
    sleep 0.1
  done
done
sleep 1

# ticks PID: its CPU time, and its children's.
. bench/ticks.sh
run() { # NAME URL PID: appends "req/s cpu_us" to $work/NAME
  local before after rps
  before=$(ticks "$3")
  rps=$(BODY_FILE="$work/input.json" wrk -t"$(( connections < 2 ? 1 : 2 ))" -c"$connections" -d"${seconds}s" \
    -s bench/post.lua "$2" | awk '/Requests\/sec/ { printf "%.0f", $2 }')
  after=$(ticks "$3")
  echo "$rps $(echo "($after - $before) * 1000000 / $hz / ($rps * $seconds)" | bc -l)" >> "$work/$1"
}
names=(floor direct nexus-reuse nexus)
for _ in $(seq "$rounds"); do
  run floor http://127.0.0.1:18184/ "${pids[2]}"
  run direct http://127.0.0.1:18183/ "${pids[1]}"
  run nexus-reuse http://127.0.0.1:18181/handlers/trivial-reuse/invoke "${pids[0]}"
  run nexus http://127.0.0.1:18181/handlers/trivial/invoke "${pids[0]}"
done
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
direct=$(cut -d' ' -f1 "$work/direct" | median)
echo "| server ($connections connections) | req/s (each round) | CPU per request (µs) | / node direct |"
echo "|---|---|---|---|"
for name in "${names[@]}"; do
  case $name in
    floor) label="hyper answering a constant (the floor)" ;;
    direct) label="node, calling the handler directly" ;;
    nexus-reuse) label="nexus, isolation = reuse" ;;
    nexus) label="nexus, a fresh instance per call (the default)" ;;
  esac
  rps=$(cut -d' ' -f1 "$work/$name" | median)
  cpu=$(cut -d' ' -f2 "$work/$name" | median)
  every=$(cut -d' ' -f1 "$work/$name" | sort -g | paste -sd, | sed 's/,/, /g')
  printf '| %s | %s (%s) | %.1f | %.2f× |\n' "$label" "$rps" "$every" "$cpu" "$(echo "$rps / $direct" | bc -l)"
done
