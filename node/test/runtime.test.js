// The jco backend's own: its worker pool (a looping call ends its worker,
// which is replaced), its settings from the host's table, and stats.
// (test/backends.test.js covers what both backends share.)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join } from 'node:path';
import { createRuntime, defaultCacheDir, parseSize } from '../src/index.js';
import { camelKeys } from '../src/errors.js';
import { hostSettings, resolveConfig } from '../src/config.js';
import { nexus, tempDir } from './helpers.js';

test('a handler that loops gets timeout near its limit, and the runtime keeps serving', async () => {
  const runtime = await createRuntime({ backend: 'jco', cacheDir: tempDir(), timeoutMs: 300, maxInstances: 1 });
  try {
    const loop = await runtime.compile('loop.js', 'export default () => { for (;;) {} }');
    const hello = await runtime.compile('hello.js', 'export default (ctx) => ({ hi: ctx.name })');
    for (let round = 0; round < 3; round++) {
      const start = performance.now();
      await assert.rejects(runtime.invoke(loop, {}), (e) => {
        assert.equal(e.kind, 'timeout');
        assert.equal(e.code, 'ERR_NEXUS_TIMEOUT');
        assert.equal(e.limitMs, 300);
        assert.equal(e.toJSON().limit_ms, 300, "toJSON is the host's wire form");
        return true;
      });
      // A correctness bound, not a benchmark: the worker is ended, not
      // waited for. Generous for a loaded machine.
      assert.ok(performance.now() - start < 300 + 5_000, `${performance.now() - start} ms`);
      const { output } = await runtime.invoke(hello, { name: `after ${round}` });
      assert.deepEqual(output, { hi: `after ${round}` });
    }
    const stats = runtime.stats();
    assert.equal(stats.timeouts, 3);
    assert.equal(stats.executions, 6);
    assert.equal(stats.failures, 3);
  } finally {
    await runtime.close();
  }
});

test('stats() is the host runtime-stats shape, and handlers read it through Nexus.stats()', async () => {
  const runtime = await createRuntime({ backend: 'jco', cacheDir: tempDir(), statsScope: 'host' });
  try {
    const reader = await runtime.compile('stats.js', 'export default () => Nexus.stats()');
    await runtime.compile('stats.js', 'export default () => Nexus.stats()');
    const { output } = await runtime.invoke(reader, {});
    const ours = runtime.stats();
    const shape = (value) =>
      value && typeof value === 'object'
        ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v)]))
        : typeof value;
    assert.deepEqual(shape(camelKeys(output)), shape(ours), 'the same record, in camelCase');
    assert.equal(typeof ours.bytecode.hitRate, 'number');
    assert.equal(typeof ours.bytecode.memory.capacityBytes, 'number');
    assert.equal(typeof output.bytecode.hit_rate, 'number', "Nexus.stats() keeps the WIT's names");
    assert.deepEqual(Object.keys(ours).sort(), ['bytecode', 'compiles', 'components', 'executions', 'failures', 'hostWide', 'timeouts']);
    assert.equal(output.host_wide, true);
    assert.equal(output.compiles, 1);
    assert.equal(output.bytecode.memory.hits, 1, 'the second compile was a memory hit');
    assert.equal(ours.executions, 1);
    assert.equal(output.executions, 0, 'as the invocation began');
  } finally {
    await runtime.close();
  }
});

test("by default a handler's Nexus.stats() shows its own figures, as the host's do", async () => {
  const runtime = await createRuntime({ backend: 'jco', cacheDir: tempDir() });
  try {
    const reader = await runtime.compile('stats.js', 'export default () => Nexus.stats()');
    const other = await runtime.compile('other.js', 'export default () => { throw 1 }');
    for (let i = 0; i < 3; i++) await assert.rejects(runtime.invoke(other, {}));
    await runtime.invoke(reader, {});
    const { output } = await runtime.invoke(reader, {});
    assert.equal(output.executions, 1, 'its own call before this one');
    assert.equal(output.failures, 0, "not the other handler's");
    assert.equal(output.host_wide, false);
    assert.equal(output.bytecode.memory.entries, 0, 'the caches are every tenant’s');
    assert.equal(runtime.stats().executions, 5);
  } finally {
    await runtime.close();
  }
});

test('settings: the argument beats the environment, which beats the defaults; bad values are named', () => {
  const env = { NEXUS_CACHE_DIR: '/from/env', NEXUS_MAX_CACHE_SIZE_BYTES: '32Mi', NEXUS_TIMEOUT_MS: '250' };
  const config = resolveConfig({ timeoutMs: 50 }, env);
  assert.equal(config.cacheDir, '/from/env');
  assert.equal(config.maxCacheSizeBytes, 32 * 2 ** 20);
  assert.equal(config.timeoutMs, 50);
  const defaults = resolveConfig({}, { HOME: '/home/ada' });
  assert.equal(defaults.cacheDir, '/home/ada/.cache/nexus', "the host's per-user default");
  assert.equal(resolveConfig({}, { XDG_CACHE_HOME: '/xdg', HOME: '/home/ada' }).cacheDir, '/xdg/nexus');
  assert.equal(defaults.maxCacheSizeBytes, 64 * 2 ** 20);
  assert.equal(defaults.timeoutMs, 1000);
  assert.equal(parseSize('64Mi'), 64 * 2 ** 20);
  assert.equal(parseSize('128M'), 128e6);
  assert.equal(parseSize('1Gi'), 2 ** 30);
  assert.equal(parseSize('12 apples'), undefined);
  assert.equal(parseSize('2K'), undefined, 'K is not a unit the host takes (k and Ki are)');
  assert.equal(parseSize('2k'), 2000);
  assert.throws(() => resolveConfig({}, { NEXUS_MAX_CACHE_SIZE_BYTES: 'lots' }), (e) => {
    assert.equal(e.kind, 'config');
    assert.match(e.message, /maxCacheSizeBytes \(NEXUS_MAX_CACHE_SIZE_BYTES\) = "lots": expected a size in bytes .* or a Kubernetes quantity/);
    assert.equal(e.code, 'ERR_NEXUS_CONFIG');
    return true;
  });
  assert.throws(() => resolveConfig({ timeoutMs: 0 }, {}), /timeoutMs = 0: expected .* from 1 to 3600000/);
  assert.throws(() => resolveConfig({ cacheDirectory: '/x' }, {}), /unknown setting cacheDirectory/);
});

test("the shared settings are the host's: its variables, ranges and defaults", () => {
  const table = JSON.parse(nexus(['settings', '--format', 'json']).stdout).settings;
  assert.deepEqual(hostSettings(), table, 'dist/settings.json is what this nexus prints');
  const max = table.find((s) => s.name === 'max_instances');
  assert.deepEqual(max.range, ['1', '10000']);
  assert.equal(resolveConfig({ maxInstances: 10000 }, {}).maxInstances, 10000);
  assert.throws(() => resolveConfig({ maxInstances: 10001 }, {}), /maxInstances = 10001: expected .* from 1 to 10000/);
  assert.throws(() => resolveConfig({ maxCacheSizeBytes: '2Ti' }, {}), /from 0 to 1Ti/);
  assert.equal(resolveConfig({}, {}).timeoutMs, Number(table.find((s) => s.name === 'timeout_ms').default));

  // Out of the box, both sides use the same cache directory.
  const home = tempDir('nexus-node-home-');
  const env = { HOME: home, XDG_CACHE_HOME: '', NEXUS_CACHE_DIR: '' };
  nexus(['cache', 'warm'], env); // the host makes its default directory
  const hosts = JSON.parse(nexus(['cache', 'stats', '--json'], env).stdout || '{}');
  assert.equal(defaultCacheDir(env), join(home, '.cache', 'nexus'));
  assert.equal(hosts.dir, defaultCacheDir(env), JSON.stringify(hosts));
});

test("a call's timeout counts its own run, not the start of a worker", async () => {
  const runtime = await createRuntime({ backend: 'jco', cacheDir: tempDir(), maxInstances: 1, timeoutMs: 400 });
  try {
    const loop = await runtime.compile('loop.js', 'export default () => { for (;;) {} }');
    const hello = await runtime.compile('hello.js', 'export default () => "hi"');
    for (let round = 0; round < 3; round++) {
      await assert.rejects(runtime.invoke(loop, {}), { kind: 'timeout' });
      // The looping worker was ended and its replacement started at once.
      // A call made while it starts waits in the queue, its clock not yet
      // running (no worker is busy with it), however long the start takes.
      const pool = runtime.pool;
      const call = runtime.invoke(hello, {});
      assert.equal(pool.starting.size, 1, 'the replacement is starting');
      assert.deepEqual([pool.queue.length, pool.busy.size], [1, 0], 'queued, not given to a starting worker');
      assert.equal((await call).output, 'hi');
    }
  } finally {
    await runtime.close();
  }
});
