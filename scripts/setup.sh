#!/usr/bin/env bash
# Installs what building and testing Nexus needs, only where it is missing:
#   - the Rust target wasm32-wasip2, and rustfmt and clippy (`just lint`);
#   - clang-19 with a wasm32 backend, llvm-ar-19 and WASI libc headers
#     (Debian packages), unless WASI_SDK_PATH points at a WASI SDK;
#   - `just`, the task runner (from PyPI, else crates.io);
#   - for the deploy tests: kubectl (on this machine image), Debian's
#     `prometheus` (the server and promtool), PyYAML and
#     `kubernetes-validate` (PyPI);
#   - for `just bench-serve`: Debian's `wrk`.
# Safe to run again: each step checks first.
set -euo pipefail

say() { printf 'setup: %s\n' "$*" >&2; }

# Installs Debian packages as root; otherwise says how (and $HINT, if
# set), and stops.
apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    say "missing: $*; install them as root: apt-get install -y $*"
    [ -z "${HINT:-}" ] || say "($HINT)"
    exit 1
  fi
  say "installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
  say "adding the Rust target wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    say "adding the Rust component $component"
    rustup component add "$component"
  fi
done

if [ -n "${WASI_SDK_PATH:-}" ]; then
  [ -x "$WASI_SDK_PATH/bin/clang" ] || { say "WASI_SDK_PATH=$WASI_SDK_PATH has no bin/clang"; exit 1; }
  say "using the WASI SDK at $WASI_SDK_PATH"
else
  pkgs=()
  command -v clang-19 >/dev/null || pkgs+=(clang-19)
  command -v llvm-ar-19 >/dev/null || pkgs+=(llvm-19)
  command -v wasm-ld-19 >/dev/null || pkgs+=(lld-19)
  [ -f /usr/include/wasm32-wasi/stdlib.h ] || pkgs+=(wasi-libc)
  [ -d /usr/lib/llvm-19/lib/clang/19/lib/wasi ] || pkgs+=(libclang-rt-19-dev-wasm32)
  [ ${#pkgs[@]} -eq 0 ] || HINT="or set WASI_SDK_PATH to a WASI SDK" apt_install "${pkgs[@]}"
fi

if ! command -v just >/dev/null; then
  say "installing just"
  if command -v pip3 >/dev/null && pip3 install -q rust-just 2>/dev/null; then
    command -v pyenv >/dev/null && pyenv rehash || true
  fi
  if ! command -v just >/dev/null; then
    cargo install -q just --locked
  fi
fi

# The deploy tests: a real Prometheus and promtool, and the Kubernetes
# API schemas. kubectl comes with this machine image.
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  apt_install prometheus
fi
# The serve benchmark's load generator: only the benchmark needs it, so a
# user who is not root is told, not stopped.
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    apt_install wrk
  else
    say "wrk not found: just bench-serve needs it (apt-get install -y wrk, as root)"
  fi
fi
if ! python3 -c 'import yaml, kubernetes_validate' 2>/dev/null; then
  say "installing kubernetes-validate and PyYAML"
  pip3 install -q kubernetes-validate pyyaml
  command -v pyenv >/dev/null && pyenv rehash || true
fi
command -v kubectl >/dev/null || say "kubectl not found: the deploy tests need it (kubectl with kustomize, v1.32)"
