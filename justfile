# Nexus tasks. `./x RECIPE` runs setup first; `just RECIPE` assumes it is done.

# Where cargo builds: $CARGO_TARGET_DIR if set, as cargo itself reads it.
target := absolute_path(env_var_or_default("CARGO_TARGET_DIR", "target"))

# The main job: serve examples/*.js on 127.0.0.1:8080 until Ctrl-C, from an
# optimized build (the `serve` profile: release with thin LTO).
run:
    cargo build --locked --profile serve --bin nexus
    # The handlers directory is the registry (PUT writes into it): a copy of
    # examples/, made once, keeps registrations out of the checkout.
    test -d {{target}}/handlers || cp -r examples {{target}}/handlers
    {{target}}/serve/nexus serve --handlers {{target}}/handlers

# Every test: the real npm bundles some tests use (tests/compat, from its
# lockfile); the guest is built by host/build.rs on the way; then the Node
# package (node/), from its lockfile, against the nexus those tests built,
# with its native backend built in the same profile and with the same
# features (nexus-node is in the cargo test), so nothing compiles twice.
test:
    cd tests/compat && npm ci --no-audit --no-fund --loglevel=error
    cargo test --locked -p nexus-host -p nexus-node
    cd node && export NEXUS_NATIVE_PROFILE=dev && npm ci --no-audit --no-fund --loglevel=error && npm run build && npm test

build:
    cargo build --locked

# Formatting, the layer check, and clippy.
lint: lint-fast
    cargo clippy --locked -p nexus-host -p nexus-node --all-targets -- -D warnings

# Formatting and the layer check (host/layers.toml: every import goes down a
# layer, so there is no cycle either): what CI checks before the tests.
lint-fast:
    cargo fmt --all -- --check
    python3 scripts/layers.py host/src host/layers.toml

# Install the toolchain pieces (idempotent).
setup:
    bash scripts/setup.sh

# Benchmarks (release build), then bench-serve; markdown tables (bench/RESULTS.md).
bench: && bench-serve bench-floor
    cd tests/compat && npm install --no-audit --no-fund --silent
    node tests/compat/make-handlers.mjs {{target}}/bench-handlers
    cargo bench --locked --bench cache
    cargo bench --locked --bench invoke
    cargo bench --locked --bench snapshot
    cargo bench --locked --bench replay
    cargo build --release --locked --bin nexus
    bash bench/sizes.sh {{target}}/release/nexus examples/hello.js {{target}}/bench-handlers/*.js
    bash bench/startup.sh {{target}}/release/nexus examples
    cd node && export NEXUS_NATIVE_PROFILE=release && npm ci --no-audit --no-fund --loglevel=error && npm run build && node bench/bench.mjs {{target}}/release/nexus ../bench/trivial.js {{target}}/bench-handlers/lodash.js

# nexus serve against Node http peers (vm per request, and direct) with wrk, and where its time goes.
bench-serve:
    cd tests/compat && npm install --no-audit --no-fund --silent
    node tests/compat/make-handlers.mjs {{target}}/bench-handlers
    cargo build --release --locked --bin nexus
    bash bench/serve.sh {{target}}/release/nexus {{target}}/bench-handlers

# The trivial handler: nexus (per call, and reuse), Node direct, and the floor: hyper answering a constant.
bench-floor:
    cargo build --release --locked --bin nexus --example http_floor -p nexus-host
    bash bench/floor.sh {{target}}/release/nexus {{target}}/release/examples/http_floor

# Good traffic under a hostile mix (abandoned loops, slow headers, 15 MiB inputs, large PUTs), against its quiet self.
bench-hostile seconds="10":
    cargo build --release --locked --bin nexus
    python3 bench/hostile.py {{target}}/release/nexus {{seconds}}

# The guest's world, as wasm-tools reads it from the component nexus writes.
inspect:
    command -v wasm-tools >/dev/null || cargo install wasm-tools --locked
    cargo build --release --locked --bin nexus
    {{target}}/release/nexus component -o {{target}}/nexus_guest.wasm
    wasm-tools component wit {{target}}/nexus_guest.wasm

# Real-world npm bundles as handlers: same JSON as Node (needs npm).
compat:
    cargo build --release --locked --bin nexus
    bash scripts/compat.sh {{target}}/release/nexus
