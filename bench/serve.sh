#!/usr/bin/env bash
# `just bench-serve` (and the serve section of `just bench`): nexus serve
# against two Node peers on the same handler, side by side in one run, with
# wrk on loopback (POST, keep-alive, 2 threads):
#   nexus       a fresh wasm instance per request (rows *-reuse: the handler
#               registered with ?isolation=reuse, its instances kept)
#   node vm     a fresh `vm` context per request, two cluster workers
#   node direct the handler called directly, two cluster workers
# for the trivial handler and the lodash handler, at 1 and 64 connections;
# then where a served call's time goes (CPU per request, by part).
# usage: bench/serve.sh NEXUS_BINARY HANDLERS_DIR [SECONDS]
#   HANDLERS_DIR holds lodash.js and lodash.input.json (tests/compat/make-handlers.mjs)
# ROWS (default "trivial trivial-reuse lodash lodash-eager lodash-reuse") and
# HANDLERS pick rows;
# ROUNDS (default 5) is how many times each cell is measured.
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
nexus_pid=$!
for _ in $(seq 600); do curl -sf http://127.0.0.1:18081/readyz >/dev/null && break; sleep 0.1; done
# lodash's top level reads the clock (its shortOut heuristic calls Date.now):
# under `auto` it gets a snapshot of its own, built in this process; it is
# registered again with its own policy, `eager`, for the cached kind.
curl -sf -X PUT "http://127.0.0.1:18081/handlers/lodash-eager?snapshot=eager" --data-binary "@$work/h/lodash.js" >/dev/null
cp "$work/lodash.input.json" "$work/lodash-eager.input.json"
# The same handlers with their instances kept for reuse (docs/isolation.md).
for handler in trivial lodash; do
  curl -sf -X PUT "http://127.0.0.1:18081/handlers/$handler-reuse?isolation=reuse" --data-binary "@$work/h/$handler.js" >/dev/null
  cp "$work/$handler.input.json" "$work/$handler-reuse.input.json"
done
node bench/serve-peer.mjs vm 18082 "$work/h/trivial.js" & vm_trivial=$!
node bench/serve-peer.mjs direct 18083 "$work/h/trivial.js" & direct_trivial=$!
node bench/serve-peer.mjs vm 18084 "$work/h/lodash.js" & vm_lodash=$!
node bench/serve-peer.mjs direct 18085 "$work/h/lodash.js" & direct_lodash=$!
sleep 2
# Under snapshot = auto, a handler gets its snapshot after its first calls:
# make those calls, and wait for the snapshots, before measuring.
for handler in ${HANDLERS:-trivial lodash trivial-reuse lodash-reuse}; do
  for _ in 1 2 3; do curl -sf "http://127.0.0.1:18081/handlers/$handler/invoke" --data-binary "@$work/$handler.input.json" >/dev/null; done
  for _ in $(seq 1200); do
    state=$(curl -sf "http://127.0.0.1:18081/handlers/$handler" | sed -n 's/.*"snapshot":"\([a-z]*\)".*/\1/p')
    case $state in queued|building|waiting) sleep 0.1 ;; *) break ;; esac
  done
  echo "$handler: snapshot $state" >&2
done
for _ in $(seq 1200); do
  state=$(curl -sf "http://127.0.0.1:18081/handlers/lodash-eager" | sed -n 's/.*"snapshot":"\([a-z]*\)".*/\1/p')
  case $state in queued|building|waiting) sleep 0.1 ;; *) break ;; esac
done
echo "lodash-eager (?snapshot=eager): snapshot $state" >&2

# ticks PID: its CPU time, and its children's.
. bench/ticks.sh

# One wrk run against PID's server: prints "req/s p50_ms p99_ms cpu_us"
# (cpu_us: the server's CPU time per request, in µs).
run() { # URL CONNECTIONS BODY_FILE PID [GET]
  local before after script=(-s bench/post.lua)
  [ -n "${5:-}" ] && script=()
  before=$(ticks "$4")
  BODY_FILE=$3 wrk -t"$(( $2 < 2 ? 1 : 2 ))" -c"$2" -d"${seconds}s" --latency "${script[@]}" "$1" |
    awk '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2} /Non-2xx/ {bad=$NF}
         function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
         END { if (bad) print "non-2xx:" bad > "/dev/stderr"; printf "%.0f %.2f %.2f\n", rps, ms(p50), ms(p99) }' > "$work/run"
  after=$(ticks "$4")
  read -r rps p50 p99 < "$work/run"
  echo "$rps $p50 $p99 $(echo "($after - $before) * 1000000 / $hz / ($rps * $seconds)" | bc -l | xargs printf '%.1f')"
}

# Each cell is ROUNDS runs of the three servers in turn; the table gives
# each figure's median, and the median of the rounds' ratios with every
# round's (sorted), so one noisy second on this shared machine moves no
# figure much, and how many rounds reach a ratio can be read off.
rounds=${ROUNDS:-5}
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
col() { awk -v c="$1" '{ print $c }' "$2" | median; }
each() { awk -v c="$1" '{ print $c }' "$2" | sort -g | awk '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $1 }'; }
echo "| handler | connections | nexus req/s (p50, p99 ms) | node vm req/s (p50, p99) | node direct req/s (p50, p99) | nexus / node vm (each round) | nexus / node direct (each round) | server CPU per request: nexus, vm, direct (µs) |"
echo "|---|---|---|---|---|---|---|---|"
for row in ${ROWS:-trivial trivial-reuse lodash lodash-eager lodash-reuse}; do
  handler=${row%%-*}
  if [ "$handler" = trivial ]; then vm=18082 direct=18083 vm_pid=$vm_trivial direct_pid=$direct_trivial
  else vm=18084 direct=18085 vm_pid=$vm_lodash direct_pid=$direct_lodash; fi
  for c in 1 64; do
    : > "$work/cell"
    for _ in $(seq "$rounds"); do
      read -r n_rps n_50 n_99 n_cpu < <(run "http://127.0.0.1:18081/handlers/$row/invoke" "$c" "$work/$row.input.json" "$nexus_pid")
      read -r v_rps v_50 v_99 v_cpu < <(run "http://127.0.0.1:$vm/" "$c" "$work/$handler.input.json" "$vm_pid")
      read -r d_rps d_50 d_99 d_cpu < <(run "http://127.0.0.1:$direct/" "$c" "$work/$handler.input.json" "$direct_pid")
      echo "$n_rps $n_50 $n_99 $n_cpu $v_rps $v_50 $v_99 $v_cpu $d_rps $d_50 $d_99 $d_cpu" \
        "$(echo "$n_rps / $v_rps" | bc -l)" "$(echo "$n_rps / $d_rps" | bc -l)" >> "$work/cell"
    done
    printf "| %s | %s | %s (%s, %s) | %s (%s, %s) | %s (%s, %s) | %.2f× (%s) | %.2f× (%s) | %s, %s, %s |\n" \
      "$row" "$c" "$(col 1 "$work/cell")" "$(col 2 "$work/cell")" "$(col 3 "$work/cell")" \
      "$(col 5 "$work/cell")" "$(col 6 "$work/cell")" "$(col 7 "$work/cell")" \
      "$(col 9 "$work/cell")" "$(col 10 "$work/cell")" "$(col 11 "$work/cell")" \
      "$(col 13 "$work/cell")" "$(each 13 "$work/cell")" "$(col 14 "$work/cell")" "$(each 14 "$work/cell")" \
      "$(col 4 "$work/cell")" "$(col 8 "$work/cell")" "$(col 12 "$work/cell")"
  done
done

# Where the trivial handler's served call goes, in the server's CPU per
# request at 64 connections: the whole request, HTTP alone (GET /healthz on
# the same server: hyper, axum, tokio and the kernel's TCP), and the call in
# its instance alone (`nexus bench --prepared`, one thread, its phases).
case " ${ROWS:-trivial} " in *" trivial "*)
  read -r _ _ _ whole < <(run "http://127.0.0.1:18081/handlers/trivial/invoke" 64 "$work/trivial.input.json" "$nexus_pid")
  read -r h_rps _ _ http < <(run "http://127.0.0.1:18081/healthz" 64 /dev/null "$nexus_pid" get)
  "$nexus" bench "$work/h/trivial.js" --input '{"name":"bench"}' --iterations 20000 --prepared --json \
    --cache-dir "$work/cache" 2>/dev/null > "$work/bench.json"
  phase() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p" "$work/bench.json" | xargs printf '%.1f'; }
  call=$(phase median_us)
  rest=$(echo "$whole - $http - $call" | bc -l | xargs printf '%.1f')
  echo
  echo "| trivial, prepared, 64 connections | server CPU per request (µs) |"
  echo "|---|---|"
  echo "| the whole request (POST /handlers/trivial/invoke) | $whole |"
  echo "| HTTP alone (GET /healthz, $h_rps req/s) | $http |"
  echo "| the call in its instance, alone (\`nexus bench --prepared\` median) | $call |"
  echo "| · setup / instantiate / the guest's work / teardown | $(phase setup) / $(phase instantiate) / $(phase call) / $(phase teardown) |"
  echo "| the rest: the hand-off to a call thread and back, admission, routing, metrics, a POST's body | $rest |"
;; esac
