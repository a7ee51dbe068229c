// Settings, merged in this order: the argument to createRuntime, then the
// environment (the host's variables), then the defaults. Sizes take the
// host's forms: bytes, or a Kubernetes quantity (64Mi, 128M, 1Gi). A bad
// value is refused with its name, the value and what is accepted.
import { availableParallelism } from 'node:os';
import { NexusError } from './errors.js';

const UNITS = {
  '': 1, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40,
};

/** Bytes from a number or a quantity (`64Mi`), or undefined if malformed. */
export function parseSize(value) {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^\s*(\d+)\s*([kKMGT]i?|)\s*$/.exec(value);
  if (!m || !(m[2] in UNITS)) return undefined;
  const bytes = Number(m[1]) * UNITS[m[2]];
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

function parseCount(value) {
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

function parseBool(value) {
  if (typeof value === 'boolean') return value;
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  return undefined;
}

/** name, environment variable, parser, what it accepts, [min, max], default. */
export const SETTINGS = [
  ['cacheDir', 'NEXUS_CACHE_DIR', (v) => (typeof v === 'string' && v !== '' ? v : undefined), 'a directory path', null, () => '/tmp/nexus-cache'],
  ['maxCacheSizeBytes', 'NEXUS_MAX_CACHE_SIZE_BYTES', parseSize, 'bytes, or a quantity like 64Mi', [0, 2 ** 40], () => 64 * 2 ** 20],
  ['timeoutMs', 'NEXUS_TIMEOUT_MS', parseCount, 'a whole number of milliseconds', [1, 3_600_000], () => 1000],
  ['maxOutputBytes', 'NEXUS_MAX_OUTPUT_BYTES', parseSize, 'bytes, or a quantity like 8Mi', [1, 2 ** 30], () => 8 * 2 ** 20],
  ['maxInstances', 'NEXUS_MAX_INSTANCES', parseCount, 'a whole number', [1, 256], () => availableParallelism()],
  ['stripSource', 'NEXUS_STRIP_SOURCE', parseBool, 'true or false', null, () => true],
  ['stripDebug', 'NEXUS_STRIP_DEBUG', parseBool, 'true or false', null, () => false],
];

/**
 * @param {Record<string, unknown>} [given]
 * @param {Record<string, string | undefined>} [env]
 */
export function resolveConfig(given = {}, env = process.env) {
  const known = new Set(SETTINGS.map(([name]) => name).concat(['onLog']));
  for (const name of Object.keys(given)) {
    if (!known.has(name)) {
      throw new NexusError('config', `unknown setting ${name}; known: ${[...known].join(', ')}`, { name });
    }
  }
  const config = { onLog: given.onLog };
  for (const [name, variable, parse, accepts, range, fallback] of SETTINGS) {
    let raw = given[name];
    let source = name;
    if (raw === undefined && env[variable] !== undefined && env[variable] !== '') {
      raw = env[variable];
      source = `${name} (${variable})`;
    }
    if (raw === undefined) {
      config[name] = fallback();
      continue;
    }
    const value = parse(raw);
    const inRange = value !== undefined && (!range || (value >= range[0] && value <= range[1]));
    if (!inRange) {
      const bounds = range ? `, from ${range[0]} to ${range[1]}` : '';
      throw new NexusError('config', `${source} = ${JSON.stringify(raw)}: expected ${accepts}${bounds}`, {
        name,
        value: String(raw),
      });
    }
    config[name] = value;
  }
  return config;
}
