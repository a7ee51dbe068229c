// Nexus from Node. Two backends answer the same API:
//   - native: the Rust host's runtime in this process (an N-API addon),
//     with the host's snapshots, limits and caches;
//   - jco: the host's guest component under jco in worker threads, for
//     platforms without a native binary.
// Both share the host's cache directory: a handler compiled here is a disk
// hit for `nexus run` and `nexus serve`, and the other way round.
//
//   import { createRuntime } from 'nexus-runtime';
//   const runtime = await createRuntime({ cacheDir: '/tmp/nexus-cache' });
//   const handler = await runtime.compile('hello.js', source);
//   const { output } = await runtime.invoke(handler, { name: 'Ada' });
import { NexusError } from './errors.js';
import { openJco } from './jco.js';
import { loadNative, openNative } from './native.js';

export { NexusError } from './errors.js';
export { defaultCacheDir, parseSize } from './config.js';

/**
 * Whether the native backend can load here, and if not, why.
 *
 * @returns {{available: boolean, reason?: string}}
 */
export function nativeBackend() {
  const { addon, reason } = loadNative();
  return addon ? { available: true } : { available: false, reason };
}

/**
 * A runtime. `config.backend` chooses `native` or `jco`; by default the
 * native one where it loads, else jco. The rest of `config` are the
 * host's settings in camelCase (`cacheDir`, `maxCacheSizeBytes`,
 * `timeoutMs`, …), which beat the NEXUS_* environment, which beats the
 * defaults.
 *
 * @throws {NexusError} kind `config` for a bad setting or an unavailable backend.
 */
export async function createRuntime(config = {}) {
  const { backend, ...settings } = config;
  if (backend !== undefined && backend !== 'native' && backend !== 'jco') {
    throw new NexusError('config', `backend = ${JSON.stringify(backend)}: expected 'native' or 'jco'`, {
      name: 'backend',
      value: String(backend),
    });
  }
  if (backend === 'jco') return openJco(settings);
  const { addon, reason } = loadNative();
  if (addon) return openNative(addon, settings);
  if (backend === 'native') {
    throw new NexusError('config', `backend 'native' is not available: ${reason}; build it (npm run build) or choose 'jco'`, {
      name: 'backend',
      value: 'native',
    });
  }
  return openJco(settings);
}
