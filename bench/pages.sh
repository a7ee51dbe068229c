#!/usr/bin/env bash
# The pages of the guest's linear memory a call writes: the pages a fresh
# instance's reset copies back afterwards. Under NEXUS_SLOT_RESET=full every
# page is decommitted after a call, so the next call faults on each page it
# touches; `perf record -e exceptions:page_fault_user` logs those faults,
# writes flagged. Prints the count of pages written in at least 90% of the
# calls, how many contiguous regions they make, and where each lies from the
# lowest (the top of the guest's shadow stack; its data, then its heap,
# follow).
# usage: bench/pages.sh NEXUS_BINARY HANDLER.js INPUT_JSON CALLS [nexus bench flags, e.g. --prepared]
set -euo pipefail
cd "$(dirname "$0")/.."
nexus=$1 handler=$2 input=$3 calls=$4
shift 4
command -v perf >/dev/null || { echo "needs perf (apt-get install linux-perf)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export NEXUS_SLOT_RESET=full NEXUS_REUSE_MAX_INSTANCES=0
# Warm the cache first: the measured run then only calls.
"$nexus" bench "$handler" --input "$input" --iterations 5 "$@" --max-instances 1 --cache-dir "$work/cache" >/dev/null 2>&1
perf record -q -e exceptions:page_fault_user -o "$work/perf.data" \
  "$nexus" bench "$handler" --input "$input" --iterations "$calls" "$@" --max-instances 1 --cache-dir "$work/cache" >/dev/null 2>&1
perf script -i "$work/perf.data" 2>/dev/null | python3 -c '
import collections, re, sys
n = int(sys.argv[1])
calls = n + max(n // 10, 10)  # nexus bench warms up with a tenth more, at least 10
faults = [(int(a, 16), int(e, 16)) for a, e in
          re.findall(r"address=0x([0-9a-f]+) ip=0x[0-9a-f]+ error_code=0x([0-9a-f]+)", sys.stdin.read())]
# The one instance slot: the GiB of address space most of the faults land in.
slot = collections.Counter(a >> 30 for a, _ in faults).most_common(1)[0][0]
written = collections.Counter(a >> 12 for a, e in faults if a >> 30 == slot and e & 2)
pages = sorted(p for p, n in written.items() if n >= calls * 0.9)
regions = 1 + sum(1 for a, b in zip(pages, pages[1:]) if b != a + 1)
print(f"{len(pages)} pages in {regions} regions written a call:", " ".join(f"+{(p - pages[0]) * 4}K" for p in pages))
' "$calls"
