#!/usr/bin/env bash
# What each handler takes in the cache directory, for sizing its bound
# (deploy/README.md): its bytecode and its snapshot (prepared component),
# as files and in the blocks a kubelet counts against a memory-backed
# volume. Each handler is warmed alone into its own directory, with the
# guest from a shared seed, so that every file there is its own.
#   bench/sizes.sh NEXUS HANDLER.js...
set -euo pipefail
nexus=$(realpath "$1"); shift
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
NEXUS_CACHE_DIR="$work/seed" "$nexus" cache warm >/dev/null 2>&1
guest=$(ls "$work/seed/v1/components")
# A size in bytes, as people read it.
human() { awk -v b="$1" 'BEGIN { if (b < 1024) printf "%d B", b; else if (b < 1048576) printf "%d KiB", b / 1024; else printf "%.1f MiB", b / 1048576 }'; }
size() { human "$(stat -c %s "$1")"; }
blocks() { human $(( $(du -k "$1" | cut -f1) * 1024 )); }
echo "| handler | source | bytecode | its blocks | snapshot | its blocks |"
echo "|---|---|---|---|---|---|"
for file in "$@"; do
  name=$(basename "$file" .js)
  mkdir -p "$work/$name/handlers"
  cp "$file" "$work/$name/handlers/"
  NEXUS_SEED_DIR="$work/seed" NEXUS_CACHE_DIR="$work/$name/cache" NEXUS_MAX_DISK_CACHE_BYTES=1Gi \
    "$nexus" cache warm --handlers "$work/$name/handlers" >/dev/null 2>&1
  bytecode=$(ls "$work/$name/cache/v1/bytecode/"*.qjsc)
  snapshot=$(ls "$work/$name/cache/v1/components/"*.cwasm | grep -v "$guest")
  echo "| $name | $(size "$file") | $(size "$bytecode") | $(blocks "$bytecode") | $(size "$snapshot") | $(blocks "$snapshot") |"
done
guest="$work/seed/v1/components/$guest"
echo "| (the guest, once per cache) | | | | $(size "$guest") | $(blocks "$guest") |"
