// Build step: writes the guest component exactly as the host runs it
// (`nexus component`), then transpiles it with jco into dist/guest (the
// jco backend); then builds the native backend with cargo
// (scripts/native.mjs) into dist/native. Nothing generated is checked in.
//
// The `nexus` binary: $NEXUS_BIN, else the workspace's newest build
// (release or debug, in $CARGO_TARGET_DIR if set, else target/).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blake3, bytesToHex, ready } from '../src/cache.js';
import { buildNative } from './native.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const dist = join(root, 'dist');

export function nexusBinary() {
  if (process.env.NEXUS_BIN) return resolve(process.env.NEXUS_BIN);
  // Cargo reads a relative CARGO_TARGET_DIR from where it runs: the workspace.
  const target = resolve(join(root, '..'), process.env.CARGO_TARGET_DIR || 'target');
  const builds = ['release', 'debug']
    .map((profile) => join(target, profile, 'nexus'))
    .filter((path) => existsSync(path))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (builds.length === 0) {
    throw new Error('no nexus binary: build it (cargo build --bin nexus) or set NEXUS_BIN');
  }
  return builds[0];
}

function run(file, args, env = {}) {
  execFileSync(file, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const nexus = nexusBinary();
  for (const generated of ['guest', 'guest.json', 'settings.json', 'nexus_guest.wasm', 'nexus_guest.pre.wasm']) {
    rmSync(join(dist, generated), { recursive: true, force: true });
  }
  mkdirSync(dist, { recursive: true });
  const plain = join(dist, 'nexus_guest.wasm');
  const pre = join(dist, 'nexus_guest.pre.wasm');
  // Pre-initializing compiles nothing into a cache; keep its directory out
  // of the user's.
  const cache = mkdtempSync(join(tmpdir(), 'nexus-build-'));
  try {
    run(nexus, ['component', '-o', plain]);
    run(nexus, ['component', '--pre-initialized', '-o', pre], { NEXUS_CACHE_DIR: cache });
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
  // Bytecode keys name the guest build by the plain component's BLAKE3,
  // as the host's GUEST_FINGERPRINT does.
  await ready();
  const fingerprint = bytesToHex(blake3(readFileSync(plain)));
  const jco = join(root, 'node_modules', '.bin', 'jco');
  run(jco, ['transpile', pre, '-o', join(dist, 'guest'), '--name', 'guest', '--instantiation', 'sync', '--quiet']);
  writeFileSync(join(dist, 'guest.json'), JSON.stringify({ fingerprint, nexus }, null, 2) + '\n');
  // The host's settings table: src/config.js takes the shared settings'
  // variables, ranges and defaults from it, so the two cannot drift.
  const table = execFileSync(nexus, ['settings', '--format', 'json'], { encoding: 'utf8' });
  writeFileSync(join(dist, 'settings.json'), table);
  console.log(`dist/guest: the pre-initialized guest ${fingerprint}, from ${nexus}`);
  console.log(`${buildNative()}: the native backend`);
}
