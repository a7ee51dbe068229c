// The guest as jco transpiled it (dist/guest, made by `npm run build`): its
// core modules compiled once, and a fresh instance per call with the
// imports supplied from JavaScript.
import { readFileSync } from 'node:fs';
import { clocks, random } from '@bytecodealliance/preview2-shim';

export const DIST = new URL('../dist/', import.meta.url);

/** The build's facts: the guest's fingerprint, the nexus that wrote it. */
export function buildInfo() {
  try {
    return JSON.parse(readFileSync(new URL('guest.json', DIST), 'utf8'));
  } catch (e) {
    throw new Error(`the guest is not built (${e.message}): run \`npm run build\` in node/ first`);
  }
}

/** Every core module of the transpiled guest, compiled: name → Module. */
export async function compileModules() {
  const names = ['guest.core.wasm', 'guest.core2.wasm', 'guest.core3.wasm'];
  const modules = {};
  for (const name of names) {
    modules[name] = await WebAssembly.compile(readFileSync(new URL(`guest/${name}`, DIST)));
  }
  return modules;
}

/** The `runtime-stats` record (snake_case numbers) as the WIT import gives it to jco. */
function toWit(stats) {
  const tier = (t) => ({
    hits: BigInt(t.hits),
    misses: BigInt(t.misses),
    entries: BigInt(t.entries),
    bytes: BigInt(t.bytes),
    capacityBytes: BigInt(t.capacity_bytes),
    evictions: BigInt(t.evictions),
  });
  const cache = (c) => ({ memory: tier(c.memory), disk: tier(c.disk), hitRate: c.hit_rate });
  return {
    bytecode: cache(stats.bytecode),
    components: cache(stats.components),
    compiles: BigInt(stats.compiles),
    executions: BigInt(stats.executions),
    failures: BigInt(stats.failures),
    timeouts: BigInt(stats.timeouts),
    hostWide: stats.host_wide,
  };
}

/** The imports of one instance: console lines into `logs`, `stats` as given. */
export function imports(logs, stats) {
  return {
    'nexus:handler/log': { log: (level, message) => logs.push([level, message]) },
    'nexus:handler/stats': { get: () => toWit(stats) },
    'nexus:handler/types': {},
    'wasi:clocks/monotonic-clock': clocks.monotonicClock,
    'wasi:clocks/wall-clock': clocks.wallClock,
    'wasi:random/insecure-seed': random.insecureSeed,
    'wasi:random/random': random.random,
  };
}
