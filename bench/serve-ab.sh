#!/usr/bin/env bash
# Two nexus builds serving one handler side by side, in turns:
# requests a second under wrk (POST, keep-alive) and the server's CPU per
# request, ROUNDS (default 5) runs each, medians and the ratio B / A. Both
# log as a cluster would (LOG_FORMAT, default json; stderr to a file), so
# the access lines are part of what is measured.
# usage: bench/serve-ab.sh NEXUS_A NEXUS_B [SECONDS] [CONNECTIONS]
# ENV_A and ENV_B add environment to one server (ENV_B="NEXUS_LOG=warn"),
# to compare one build against itself. HANDLER (default bench/trivial.js)
# and INPUT (a JSON file; default {"name":"bench"}) serve another handler.
set -euo pipefail
cd "$(dirname "$0")/.."
a=$1 b=$2 seconds=${3:-5} connections=${4:-64} rounds=${ROUNDS:-5}
work=$(mktemp -d)
pid_a= pid_b=
# The servers start in command substitutions: not this shell's jobs.
trap 'kill $pid_a $pid_b 2>/dev/null || true; rm -rf "$work"' EXIT
handler=${HANDLER:-bench/trivial.js}
name=$(basename "$handler" .js)
mkdir -p "$work/h"
cp "$handler" "$work/h/$name.js"
if [ -n "${INPUT:-}" ]; then cp "$INPUT" "$work/input.json"; else echo '{"name":"bench"}' > "$work/input.json"; fi

start() { # BINARY PORT ENV
  env $3 "$1" serve --handlers "$work/h" --listen "127.0.0.1:$2" --cache-dir "$work/cache-$2" \
    --log-format "${LOG_FORMAT:-json}" >/dev/null 2>"$work/log-$2" &
  echo $!
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$2/readyz" >/dev/null && break; sleep 0.1; done
  # Its snapshot, after the first calls, before measuring.
  for _ in 1 2 3; do curl -sf "http://127.0.0.1:$2/handlers/$name/invoke" -d @"$work/input.json" >/dev/null; done
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$2/handlers/$name" | grep -q '"path":"prepared"' && break
    sleep 0.1
  done
}
pid_a=$(start "$a" 18091 "${ENV_A:-}")
pid_b=$(start "$b" 18092 "${ENV_B:-}")
hz=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Prints "req/s cpu_us_per_request".
run() { # PORT PID
  local before after rps
  before=$(ticks "$2")
  rps=$(BODY_FILE="$work/input.json" wrk -t"$(( connections < 2 ? 1 : 2 ))" -c"$connections" -d"${seconds}s" -s bench/post.lua \
    "http://127.0.0.1:$1/handlers/$name/invoke" | awk '/Requests\/sec/ {print $2}')
  after=$(ticks "$2")
  echo "$rps $(echo "($after - $before) * 1000000 / $hz / ($rps * $seconds)" | bc -l)"
}

for _ in $(seq "$rounds"); do
  run 18091 "$pid_a" >> "$work/a"
  run 18092 "$pid_b" >> "$work/b"
done
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rps_a=$(cut -d' ' -f1 "$work/a" | median) rps_b=$(cut -d' ' -f1 "$work/b" | median)
cpu_a=$(cut -d' ' -f2 "$work/a" | median) cpu_b=$(cut -d' ' -f2 "$work/b" | median)
echo "| binary | requests/s (median of $rounds) | CPU µs per request |"
echo "|---|---|---|"
printf '| A %s %s | %.0f | %.1f |\n' "${ENV_A:-}" "$a" "$rps_a" "$cpu_a"
printf '| B %s %s | %.0f | %.1f |\n' "${ENV_B:-}" "$b" "$rps_b" "$cpu_b"
printf '| B / A | %.3f | %.3f |\n' "$(echo "$rps_b / $rps_a" | bc -l)" "$(echo "$cpu_b / $cpu_a" | bc -l)"
echo "rounds (req/s): A $(cut -d' ' -f1 "$work/a" | xargs) | B $(cut -d' ' -f1 "$work/b" | xargs)"
