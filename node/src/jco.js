// The jco backend: the host's guest component under jco in worker threads,
// with a bytecode cache shared with the Rust host (the same keys, files and
// directory). The portable fallback where there is no native binary.
import { statSync } from 'node:fs';
import { bytecodeKey, bytesToHex, DiskTier, MemoryTier, ready, tierStats } from './cache.js';
import { checkTimeout, resolveConfig } from './config.js';
import { camelKeys, inputJson, NexusError } from './errors.js';
import { buildInfo, compileModules } from './guest.js';
import { Pool } from './pool.js';


// Compiling is not the handler's code running, but a large bundle takes a
// while: it gets at least this long.
const MIN_COMPILE_TIMEOUT_MS = 30_000;
/** Handler names whose own figures are kept, as the host keeps them. */
const MAX_OWN = 10_000;

class JcoRuntime {
  constructor(config, modules, fingerprint, guestBytes) {
    this.backend = 'jco';
    this.config = config;
    this.fingerprint = fingerprint;
    this.pool = new Pool(config.maxInstances, modules);
    this.memory = new MemoryTier(config.maxCacheSizeBytes);
    this.disk = new DiskTier(config.cacheDir, (line) => this.log('warn', line, 'nexus'));
    this.inflight = new Map();
    this.counts = { compiles: 0, executions: 0, failures: 0, timeouts: 0, instances: 0 };
    // Each handler's own figures, by name (the most recent MAX_OWN).
    this.own = new Map();
    this.guestBytes = guestBytes;
  }

  log(level, message, handler) {
    if (this.config.onLog) this.config.onLog(level, message, handler);
  }

  /**
   * `source`'s bytecode under `name`: from memory, else a verified file in
   * the cache directory, else compiled in a fresh instance (and stored in
   * both). `name` is what stack traces show, and part of the key:
   * `nexus run hello.js` names its handler `hello.js`.
   *
   * @returns {Promise<{name: string, key: string, origin: 'memory'|'disk'|'compiled', bytecode: Uint8Array}>}
   */
  async compile(name, source) {
    if (typeof name !== 'string' || typeof source !== 'string') {
      throw new NexusError('invalid_input', 'compile(name, source) takes two strings');
    }
    const options = { stripSource: this.config.stripSource, stripDebug: this.config.stripDebug };
    const key = bytecodeKey(this.fingerprint, name, source, options);
    const hex = bytesToHex(key);
    const held = this.memory.get(hex);
    if (held) return { name, key: hex, origin: 'memory', bytecode: held };
    // One compile per key, however many callers ask at once.
    let pending = this.inflight.get(hex);
    if (!pending) {
      pending = this.lookUpOrCompile(name, source, options, key, hex).finally(() => this.inflight.delete(hex));
      this.inflight.set(hex, pending);
    }
    const { bytecode, origin } = await pending;
    return { name, key: hex, origin, bytecode };
  }

  async lookUpOrCompile(name, source, options, key, hex) {
    const payload = this.disk.read(key);
    if (payload) {
      this.memory.insert(hex, payload);
      return { bytecode: payload, origin: 'disk' };
    }
    this.counts.instances++;
    const timeout = Math.max(this.config.timeoutMs, MIN_COMPILE_TIMEOUT_MS);
    const start = performance.now();
    const { value } = await this.pool.run({ op: 'compile', name, source, options, stats: this.record() }, timeout);
    const costMs = performance.now() - start;
    this.counts.compiles++;
    this.ownCounts(name).compiles++;
    this.memory.insert(hex, value);
    this.disk.write(key, value, costMs);
    return { bytecode: value, origin: 'compiled' };
  }

  /**
   * Calls the handler's default export with `input` in a fresh instance,
   * within the timeout (`options.timeoutMs`, else the runtime's). `input`
   * is a JSON-able value, or JSON text (a string is taken as JSON text as
   * it is).
   *
   * @returns {Promise<{output: unknown, json: string, logs: Array<[string, string]>, path: 'plain'}>}
   */
  async invoke(handler, input = {}, options = {}) {
    if (!handler || !(handler.bytecode instanceof Uint8Array) || typeof handler.name !== 'string') {
      throw new NexusError('invalid_input', 'invoke(handler, input) takes what compile() answered');
    }
    const json = inputJson(input);
    const timeoutMs = checkTimeout(options.timeoutMs) ?? this.config.timeoutMs;
    this.counts.instances++;
    // Counted when it ends, as the host counts: a handler's Nexus.stats()
    // sees the calls before its own.
    const stats = this.config.statsScope === 'host' ? this.record() : this.ownRecord(handler.name);
    const own = this.ownCounts(handler.name);
    const job = { op: 'invoke', name: handler.name, bytecode: handler.bytecode, input: json, stats };
    let answer;
    try {
      answer = await this.pool.run(job, timeoutMs);
    } catch (e) {
      this.counts.executions++;
      this.counts.failures++;
      own.executions++;
      own.failures++;
      if (e.kind === 'timeout') {
        this.counts.timeouts++;
        own.timeouts++;
      }
      for (const [level, message] of e.logs ?? []) this.log(level, message, handler.name);
      throw e;
    }
    this.counts.executions++;
    own.executions++;
    const { value, logs } = answer;
    for (const [level, message] of logs) this.log(level, message, handler.name);
    const size = Buffer.byteLength(value);
    if (size > this.config.maxOutputBytes) {
      this.counts.failures++;
      own.failures++;
      throw new NexusError('output_too_large', `the result is ${size} bytes, over max_output_bytes`, {
        size_bytes: size,
        limit_bytes: this.config.maxOutputBytes,
      });
    }
    return { output: JSON.parse(value), json: value, logs, path: 'plain' };
  }

  /**
   * The jco backend has no snapshots: a prepared handler is the handler,
   * and runs on the plain path.
   */
  async prepare(handler) {
    if (!handler || !(handler.bytecode instanceof Uint8Array)) {
      throw new NexusError('invalid_input', 'prepare(handler) takes what compile() answered');
    }
    return handler;
  }

  /**
   * The `runtime-stats` record, its keys in camelCase like the rest of
   * this API (`hitRate`, `capacityBytes`); a handler's `Nexus.stats()`
   * reads the same figures under the WIT record's names (`hit_rate`), as
   * in the host.
   */
  stats() {
    return camelKeys(this.record());
  }

  /** The record with the host's (WIT) names, for the guest's `stats` import. */
  record() {
    const rate = (memory, compiles) => {
      const lookups = memory.hits + memory.misses;
      return lookups === 0 ? 0 : (lookups - compiles) / lookups;
    };
    // Components: the guest's core modules, compiled once and kept in
    // memory; each instance is a hit on them.
    const componentMemory = {
      ...tierStats(),
      hits: this.counts.instances,
      misses: 1,
      entries: 1,
      bytes: this.guestBytes,
    };
    return {
      bytecode: {
        memory: { ...this.memory.stats },
        disk: { ...this.disk.stats },
        hit_rate: rate(this.memory.stats, this.counts.compiles),
      },
      components: {
        memory: componentMemory,
        disk: tierStats(),
        hit_rate: rate(componentMemory, 1),
      },
      compiles: this.counts.compiles,
      executions: this.counts.executions,
      failures: this.counts.failures,
      timeouts: this.counts.timeouts,
      host_wide: true,
    };
  }

  /** `name`'s own figures, counted from zero the first time it is seen. */
  ownCounts(name) {
    let own = this.own.get(name);
    if (!own) {
      if (this.own.size >= MAX_OWN) this.own.delete(this.own.keys().next().value);
      own = { compiles: 0, executions: 0, failures: 0, timeouts: 0 };
      this.own.set(name, own);
    }
    return own;
  }

  /**
   * What `name`'s Nexus.stats() shows under `statsScope: 'handler'`, as
   * the host shows it: its own calls and compiles, the caches (every
   * tenant's) as zeros.
   */
  ownRecord(name) {
    const own = this.own.get(name) ?? { compiles: 0, executions: 0, failures: 0, timeouts: 0 };
    const cache = () => ({ memory: tierStats(), disk: tierStats(), hit_rate: 0 });
    return { bytecode: cache(), components: cache(), ...own, host_wide: false };
  }

  /**
   * Stops: calls not started yet reject with kind `closed`; calls running
   * finish as they would have; then the worker threads end.
   */
  close() {
    return this.pool.close();
  }
}

/**
 * A jco runtime. `config` beats the environment (NEXUS_CACHE_DIR,
 * NEXUS_MAX_CACHE_SIZE_BYTES, NEXUS_TIMEOUT_MS, NEXUS_MAX_OUTPUT_BYTES,
 * NEXUS_MAX_INSTANCES: the host's settings, from its table), which beats
 * the defaults (the host's, but a worker thread per CPU).
 *
 * @throws {NexusError} kind `config` for a bad setting, naming it.
 */
export async function openJco(config = {}) {
  const resolved = resolveConfig(config);
  await ready();
  const { fingerprint } = buildInfo();
  const modules = await compileModules();
  const guestBytes = statSync(new URL('../dist/guest/guest.core.wasm', import.meta.url)).size;
  return new JcoRuntime(resolved, modules, fingerprint, guestBytes);
}
