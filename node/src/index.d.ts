// Types for nexus-runtime: the Rust host's runtime in-process (native), or
// its guest under jco, sharing the host's cache directory.

/**
 * Settings; each beats its environment variable, which beats the default.
 * The native backend takes every setting of the host's table in camelCase
 * (`maxMemoryBytes`, `seedDir`, `slotReset`, …); jco takes those below.
 */
export interface Config {
  /** `native` (the Rust runtime in this process) or `jco`; default: native where its binary loads, else jco. */
  backend?: 'native' | 'jco';
  /** NEXUS_CACHE_DIR; default the host's: `$XDG_CACHE_HOME/nexus`, else `~/.cache/nexus`. */
  cacheDir?: string;
  /** NEXUS_MAX_CACHE_SIZE_BYTES: the memory LRU's bound; bytes or `64Mi`; default 64Mi. */
  maxCacheSizeBytes?: number | string;
  /** NEXUS_TIMEOUT_MS: how long one invocation may run; default 1000. */
  timeoutMs?: number | string;
  /** NEXUS_MAX_OUTPUT_BYTES: the largest result; default 8Mi. */
  maxOutputBytes?: number | string;
  /** NEXUS_MAX_INSTANCES: calls running at once; native: the host's default (256); jco: worker threads, default the CPUs. */
  maxInstances?: number | string;
  /** NEXUS_STATS_SCOPE: whose figures a handler's `Nexus.stats()` shows: `handler`, its own (the default), or `host`, every handler's and the caches'. */
  statsScope?: 'handler' | 'host';
  /** NEXUS_STRIP_SOURCE: drop functions' source text from bytecode; default true. */
  stripSource?: boolean | string;
  /** NEXUS_STRIP_DEBUG: drop line and column tables; default false. */
  stripDebug?: boolean | string;
  /** Console lines and the runtime's warnings; `handler` is `nexus` for the runtime's own. */
  onLog?: (level: 'debug' | 'info' | 'warn' | 'error', message: string, handler: string) => void;
  /** The host's other settings (native backend only), by their camelCase names. */
  [hostSetting: string]: unknown;
}

export interface Handler {
  name: string;
  /** The cache key, 64 hex digits: the same as the Rust host's for the same name and source. */
  key: string;
  /** Where its artifact came from (a prepared handler's: its component's). */
  origin: 'memory' | 'disk' | 'compiled';
  /** `prepared` once `prepare()` gave it its own snapshot (native only). */
  path: 'plain' | 'prepared';
  bytecode: Uint8Array;
}

export interface InvokeOptions {
  /** This call's timeout, within `timeout_ms`'s range; default the runtime's `timeoutMs`. */
  timeoutMs?: number;
}

export interface Invocation {
  /** The handler's result, parsed. */
  output: unknown;
  /** The result as JSON text, byte for byte as the host answers. */
  json: string;
  logs: Array<[level: string, message: string]>;
  /** Which component ran it. */
  path: 'plain' | 'prepared';
}

export interface Tier {
  hits: number;
  misses: number;
  entries: number;
  bytes: number;
  capacityBytes: number;
  evictions: number;
}

export interface CacheStats {
  memory: Tier;
  disk: Tier;
  hitRate: number;
}

/** The host's `runtime-stats` record, its names in camelCase (a handler's `Nexus.stats()` has the WIT's: `hit_rate`). */
export interface RuntimeStats {
  bytecode: CacheStats;
  components: CacheStats;
  compiles: number;
  executions: number;
  failures: number;
  timeouts: number;
  /** True for the host's figures (`stats()`), false for a handler's own. */
  hostWide: boolean;
}

export interface Runtime {
  /** Which backend runs the calls. */
  readonly backend: 'native' | 'jco';
  compile(name: string, source: string): Promise<Handler>;
  /** Native: the handler with its own pre-initialized component (the host's snapshot). jco: the handler as it is. */
  prepare(handler: Handler): Promise<Handler>;
  /** `input`: a JSON-able value, or JSON text as a string. */
  invoke(handler: Handler, input?: unknown, options?: InvokeOptions): Promise<Invocation>;
  stats(): RuntimeStats;
  /** Calls not started reject with kind `closed`; running calls finish; then the runtime's threads are idle. */
  close(): Promise<void>;
}

/** The host's error kinds and fields, camelCase: `compile_error` (file, line, column), `runtime_error` (name, stack), `timeout` (limitMs), `output_too_large` (sizeBytes, limitBytes), `invalid_input`, `invalid_output`, `invalid_bytecode`, `invalid_module`, `stack_overflow`, `out_of_memory` (limitBytes, native only), `busy`, `trap`, `config` (name, value); and `closed` (the runtime closed before the call started). `toJSON()` gives the host's own form (`limit_ms`). */
export class NexusError extends Error {
  kind: string;
  /** Node-style: `ERR_NEXUS_` and the kind in capitals (`ERR_NEXUS_TIMEOUT`). */
  code: string;
  fields: Record<string, unknown>;
  [field: string]: unknown;
  toJSON(): Record<string, unknown>;
}

/** @throws {NexusError} kind `config`, naming a bad setting, or a `native` backend that cannot load here. */
export function createRuntime(config?: Config): Promise<Runtime>;

/** Whether the native backend loads on this platform, and if not, why. */
export function nativeBackend(): { available: boolean; reason?: string };

/** Bytes from a number or a quantity (`64Mi`, `128M`, `1Gi`); undefined if malformed. */
export function parseSize(value: number | string): number | undefined;

/** The host's default cache directory for this user (`$XDG_CACHE_HOME/nexus`, else `~/.cache/nexus`). */
export function defaultCacheDir(env?: Record<string, string | undefined>): string;
