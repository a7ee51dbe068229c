// The native backend: the Rust host's runtime itself (nexus_host::Runtime),
// in this process, through the addon built from node/native (N-API). Calls
// run on the runtime's threads; the JavaScript thread only sends and
// settles them. The settings, caches, limits and errors are the host's.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { camel, camelKeys, inputJson, NexusError } from './errors.js';
import { checkTimeout, hostSettings } from './config.js';

const require = createRequire(import.meta.url);
/** The addon's own handle on a handler object. */
const HANDLE = Symbol('nexus.native');

/** The platform's name in the binary's file name, as napi-rs names them (`linux-x64-gnu`). */
export function nativeTarget() {
  const { platform, arch } = process;
  if (platform !== 'linux') return `${platform}-${arch}`;
  const glibc = process.report?.getReport?.().header?.glibcVersionRuntime;
  return `linux-${arch}-${glibc ? 'gnu' : 'musl'}`;
}

/** Where this platform's binary is, built or shipped. */
export function nativePath() {
  return fileURLToPath(new URL(`../dist/native/nexus.${nativeTarget()}.node`, import.meta.url));
}

let loaded;

/** `{addon}`, or `{reason}` it cannot be loaded here. */
export function loadNative() {
  if (!loaded) {
    const path = nativePath();
    try {
      loaded = { addon: require(path) };
    } catch (e) {
      loaded = {
        reason: e.code === 'MODULE_NOT_FOUND' ? `no native binary for ${nativeTarget()} at ${path}` : e.message,
      };
    }
  }
  return loaded;
}

/** A failure from the addon (its reason is `{kind, message, fields}` as JSON) as a NexusError. */
function fromNative(e) {
  let body;
  try {
    body = JSON.parse(e.message);
  } catch {
    return e; // not the runtime's (a bad argument napi-rs refused)
  }
  const { kind, fields } = body;
  let message = fields.message ?? body.message;
  if (kind === 'config' && fields.expected) {
    message = `${camel(fields.name)} = ${JSON.stringify(fields.value)}: expected ${fields.expected}`;
  }
  const { expected: _, ...own } = fields;
  return new NexusError(kind, message, kind === 'config' ? { ...own, name: camel(own.name) } : own);
}

async function settled(promise) {
  try {
    return await promise;
  } catch (e) {
    throw fromNative(e);
  }
}

// Compile options are part of the cache key; the host has one set.
const HOST_COMPILE_OPTIONS = { stripSource: true, stripDebug: false };

/** The given settings under the host's names, as text; the addon resolves them against its table. */
function hostNames(config) {
  const names = new Map(hostSettings().map((s) => [camel(s.name), s.name]));
  const settings = {};
  for (const [key, value] of Object.entries(config)) {
    if (value === undefined || key === 'onLog') continue;
    if (key in HOST_COMPILE_OPTIONS) {
      if (String(value) !== String(HOST_COMPILE_OPTIONS[key])) {
        throw new NexusError('config', `${key} = ${JSON.stringify(value)}: the native backend compiles as the host does (${key} ${HOST_COMPILE_OPTIONS[key]}); choose backend 'jco' for other compile options`, { name: key, value: String(value) });
      }
      continue;
    }
    const name = names.get(key);
    if (!name) {
      throw new NexusError('config', `unknown setting ${key}; known: ${[...names.keys(), 'onLog', 'backend'].join(', ')}`, { name: key });
    }
    settings[name] = String(value);
  }
  return settings;
}

/** A handler as this package shows it, holding the addon's own. */
function handlerOf(handle) {
  const handler = { name: handle.name, key: handle.key, origin: handle.origin, path: handle.path };
  Object.defineProperty(handler, 'bytecode', { enumerable: true, get: () => new Uint8Array(handle.bytecode) });
  Object.defineProperty(handler, HANDLE, { value: handle });
  return handler;
}

function handleOf(handler, call) {
  const handle = handler?.[HANDLE];
  if (!handle) throw new NexusError('invalid_input', `${call}(handler) takes what this runtime's compile() answered`);
  return handle;
}

class NativeRuntime {
  constructor(native, onLog) {
    this.backend = 'native';
    this.native = native;
    this.onLog = onLog;
    // Calls settle through one function, by id. The addon's end of it
    // never keeps Node alive; `alive` does, while a call is pending.
    this.pending = new Map();
    this.nextId = 0;
    this.alive = setInterval(() => {}, 2 ** 30);
    this.alive.unref();
    native.settleWith((id, json, path, logs, error) => this.settle(id, json, path, logs, error));
  }

  /** Call `id` ended: its result (JSON text), path and `[level, message]` pairs (null: none), or its error. */
  settle(id, json, path, logs, error) {
    const call = this.pending.get(id);
    this.pending.delete(id);
    if (this.pending.size === 0) this.alive.unref();
    if (error != null) call.reject(fromNative({ message: error }));
    else call.resolve({ json, path, logs: logs ?? [] });
  }

  start(handle, json, timeoutMs) {
    return new Promise((resolve, reject) => {
      const id = this.nextId;
      this.nextId = (this.nextId + 1) >>> 0;
      if (this.pending.size === 0) this.alive.ref();
      this.pending.set(id, { resolve, reject });
      try {
        this.native.start(id, handle, json, timeoutMs);
      } catch (e) {
        this.pending.delete(id);
        if (this.pending.size === 0) this.alive.unref();
        reject(fromNative(e));
      }
    });
  }

  /** `source`'s bytecode under `name`, from the host's caches or compiled. */
  async compile(name, source) {
    if (typeof name !== 'string' || typeof source !== 'string') {
      throw new NexusError('invalid_input', 'compile(name, source) takes two strings');
    }
    return handlerOf(await settled(this.native.compile(name, source)));
  }

  /** `handler` with its own pre-initialized component (the host's snapshot). */
  async prepare(handler) {
    return handlerOf(await settled(this.native.prepare(handleOf(handler, 'prepare'))));
  }

  /** The handler's default export, called with `input` in a fresh instance. */
  async invoke(handler, input = {}, options = {}) {
    const handle = handleOf(handler, 'invoke');
    const json = inputJson(input);
    const answer = await this.start(handle, json, checkTimeout(options.timeoutMs));
    if (this.onLog) for (const [level, message] of answer.logs) this.onLog(level, message, handler.name);
    return { output: JSON.parse(answer.json), json: answer.json, logs: answer.logs, path: answer.path };
  }

  /** The host's `runtime-stats` record, in camelCase. */
  stats() {
    return camelKeys(JSON.parse(this.native.stats()));
  }

  /** Calls waiting for a slot reject with `closed`; running ones finish. */
  close() {
    this.closing ??= settled(this.native.close());
    return this.closing;
  }
}

/**
 * A native runtime: `config` (camelCase names of the host's settings) beats
 * the NEXUS_* environment, which beats the host's defaults.
 *
 * @throws {NexusError} kind `config` for a bad setting, naming it.
 */
export async function openNative(addon, config = {}) {
  const { onLog, ...rest } = config;
  const native = await settled(addon.open(hostNames(rest)));
  return new NativeRuntime(native, onLog);
}
