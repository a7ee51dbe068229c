#!/usr/bin/env bash
# Real-world npm bundles as handlers: same JSON under Nexus as under Node.
# usage: scripts/compat.sh [NEXUS_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
nexus=${1:-target/release/nexus}
[ -x "$nexus" ] || cargo build --release --locked --bin nexus
(cd tests/compat && npm install --no-audit --no-fund --silent)
node tests/compat/run.mjs "$(realpath "$nexus")"
