# Sourced by the serving benchmarks.
# CPU time (user + system, in clock ticks) of a process and its children
# (a Node peer is a cluster: a primary and two workers).
ticks() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    total=$(( total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0) ))
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)
