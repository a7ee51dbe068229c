// Settings, merged in this order: the argument to createRuntime, then the
// environment (the host's variables), then the defaults. The settings the
// host shares (the cache directory and its memory bound, the timeout, the
// output bound, the instances) come from the host's own table, as
// `nexus settings --format json` printed it at build time
// (dist/settings.json): the same variables, ranges, defaults and messages.
// Their names here are the host's in camelCase (`timeout_ms` → `timeoutMs`).
import { readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { camel, NexusError } from './errors.js';

const UNITS = {
  '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40,
};

/** Bytes from a number or a quantity (`64Mi`), or undefined if malformed: the host's forms. */
export function parseSize(value) {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+)(|k|M|G|T|Ki|Mi|Gi|Ti)\s*$/.exec(value);
  if (!m) return undefined;
  const bytes = Number(m[1]) * UNITS[m[2]];
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

function parseCount(value) {
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function parsePath(value) {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function parseBool(value) {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  return undefined;
}

function parseScope(value) {
  return value === 'handler' || value === 'host' ? value : undefined;
}

/** How each of the host's value kinds parses, by its placeholder in `--help`. */
const PARSERS = { SIZE: parseSize, MS: parseCount, N: parseCount, DIR: parsePath, SCOPE: parseScope };

/**
 * The host's default cache directory, by the host's own rule: per user and
 * absolute, `$XDG_CACHE_HOME/nexus`, else `$HOME/.cache/nexus`, else
 * `<temp dir>/nexus-cache-<uid>`. Both sides then share one cache.
 */
export function defaultCacheDir(env = process.env) {
  const absolute = (v) => (v && isAbsolute(v) ? v : undefined);
  const base = absolute(env.XDG_CACHE_HOME) ?? (absolute(env.HOME) && join(env.HOME, '.cache'));
  return base ? join(base, 'nexus') : join(tmpdir(), `nexus-cache-${process.getuid()}`);
}

/** The host's settings this package takes, and the default each has here where it differs. */
const SHARED = {
  cache_dir: (env) => defaultCacheDir(env),
  max_cache_size_bytes: null,
  timeout_ms: null,
  max_output_bytes: null,
  stats_scope: null,
  // A worker thread per instance: one per CPU, not the host's 256.
  max_instances: () => availableParallelism(),
};

/** The host's table, as `nexus settings --format json` wrote it at build time. */
export function hostSettings() {
  const path = new URL('../dist/settings.json', import.meta.url);
  return JSON.parse(readFileSync(path, 'utf8')).settings;
}

let table;

/**
 * The jco backend's settings, read from the host's table on first use:
 * name, environment variable, parser, what it accepts, [min, max], default
 * (given the environment), and the range as the host writes it.
 */
function settings() {
  table ??= hostSettings()
    .filter((s) => s.name in SHARED)
    .map((s) => {
      const parse = PARSERS[s.value_name];
      const range = s.range && s.range.map((bound) => parse(bound));
      const fallback = SHARED[s.name] ?? (() => parse(s.default));
      return [camel(s.name), s.env, parse, s.accepts, range, fallback, s.range];
    })
    .concat([
      ['stripSource', 'NEXUS_STRIP_SOURCE', parseBool, 'true or false', null, () => true],
      ['stripDebug', 'NEXUS_STRIP_DEBUG', parseBool, 'true or false', null, () => false],
    ]);
  return table;
}

/**
 * @param {Record<string, unknown>} [given]
 * @param {Record<string, string | undefined>} [env]
 */
export function resolveConfig(given = {}, env = process.env) {
  const known = new Set(settings().map(([name]) => name).concat(['onLog', 'backend']));
  for (const name of Object.keys(given)) {
    if (!known.has(name)) {
      throw new NexusError('config', `unknown setting ${name}; known: ${[...known].join(', ')}`, { name });
    }
  }
  const config = { onLog: given.onLog };
  for (const [name, variable, parse, accepts, range, fallback, rangeText] of settings()) {
    let raw = given[name];
    let source = name;
    if (raw === undefined && env[variable] !== undefined && env[variable] !== '') {
      raw = env[variable];
      source = `${name} (${variable})`;
    }
    if (raw === undefined) {
      config[name] = fallback(env);
      continue;
    }
    const value = parse(raw);
    const inRange = value !== undefined && (!range || (value >= range[0] && value <= range[1]));
    if (!inRange) {
      const [lo, hi] = rangeText ?? range ?? [];
      const bounds = range ? `, from ${lo} to ${hi}` : '';
      throw new NexusError('config', `${source} = ${JSON.stringify(raw)}: expected ${accepts}${bounds}`, {
        name,
        value: String(raw),
      });
    }
    config[name] = value;
  }
  return config;
}

/**
 * A call's own timeout (`invoke`'s `timeoutMs`), checked against
 * `timeout_ms`'s range; undefined when none is given.
 */
export function checkTimeout(value) {
  if (value === undefined) return undefined;
  const [name, , parse, accepts, range, , rangeText] = settings().find(([n]) => n === 'timeoutMs');
  const ms = parse(value);
  if (ms === undefined || ms < range[0] || ms > range[1]) {
    throw new NexusError('config', `${name} = ${JSON.stringify(value)}: expected ${accepts}, from ${rangeText[0]} to ${rangeText[1]}`, {
      name,
      value: String(value),
    });
  }
  return ms;
}
