// Isolation, timeouts, errors, stats and settings, through the public API.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRuntime, NexusError, parseSize } from '../src/index.js';
import { resolveConfig } from '../src/config.js';
import { tempDir } from './helpers.js';

test('a handler that loops gets timeout near its limit, and the runtime keeps serving', async () => {
  const runtime = await createRuntime({ cacheDir: tempDir(), timeoutMs: 300, maxInstances: 1 });
  try {
    const loop = await runtime.compile('loop.js', 'export default () => { for (;;) {} }');
    const hello = await runtime.compile('hello.js', 'export default (ctx) => ({ hi: ctx.name })');
    for (let round = 0; round < 3; round++) {
      const start = performance.now();
      await assert.rejects(runtime.invoke(loop, {}), (e) => {
        assert.equal(e.kind, 'timeout');
        assert.equal(e.limit_ms, 300);
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

test('state never leaks between invocations, sequential or concurrent', async () => {
  const runtime = await createRuntime({ cacheDir: tempDir(), maxInstances: 2 });
  try {
    const counter = await runtime.compile(
      'counter.js',
      `let calls = 0;
       export default (ctx) => {
         calls += 1;
         globalThis.seen = (globalThis.seen ?? 0) + 1;
         Object.prototype.polluted = ctx.n;
         return { calls, seen: globalThis.seen, id: ctx.n, before: ({}).polluted === ctx.n };
       }`,
    );
    for (let n = 0; n < 5; n++) {
      const { output } = await runtime.invoke(counter, { n });
      assert.deepEqual(output, { calls: 1, seen: 1, id: n, before: true });
    }
    const answers = await Promise.all(Array.from({ length: 20 }, (_, n) => runtime.invoke(counter, { n })));
    answers.forEach(({ output }, n) => assert.deepEqual(output, { calls: 1, seen: 1, id: n, before: true }));
  } finally {
    await runtime.close();
  }
});

test('errors carry the host kinds and fields', async () => {
  const runtime = await createRuntime({ cacheDir: tempDir(), maxOutputBytes: 1024 });
  try {
    await assert.rejects(runtime.compile('bad.js', 'export default (\n'), (e) => {
      assert.ok(e instanceof NexusError);
      assert.deepEqual([e.kind, e.file, e.line], ['compile_error', 'bad.js', 2]);
      assert.equal(typeof e.column, 'number');
      return true;
    });
    const thrower = await runtime.compile('t.js', 'export default () => { throw new TypeError("nope") }');
    await assert.rejects(runtime.invoke(thrower, {}), (e) => {
      assert.deepEqual([e.kind, e.name, e.message], ['runtime_error', 'TypeError', 'nope']);
      assert.match(e.stack, /t\.js/);
      assert.deepEqual(e.toJSON().kind, 'runtime_error');
      return true;
    });
    const echo = await runtime.compile('echo.js', 'export default (ctx) => ctx');
    await assert.rejects(runtime.invoke(echo, '{"broken'), { kind: 'invalid_input' });
    const big = await runtime.compile('big.js', 'export default () => "x".repeat(4096)');
    await assert.rejects(runtime.invoke(big, {}), (e) => {
      assert.equal(e.kind, 'output_too_large');
      assert.deepEqual([e.size_bytes, e.limit_bytes], [4098, 1024]);
      return true;
    });
    const recursion = await runtime.compile(
      'rec.js',
      'export default () => { const f = (n) => n === 0 ? 0 : 1 + f(n - 1); try { return f(1e7) } catch (e) { return e.name } }',
    );
    assert.equal((await runtime.invoke(recursion, {})).output, 'RangeError', 'deep recursion is catchable, as in the host');
    assert.equal((await runtime.invoke(echo, { still: 'serving' })).output.still, 'serving');
  } finally {
    await runtime.close();
  }
});

test('stats() is the host runtime-stats shape, and handlers read it through Nexus.stats()', async () => {
  const runtime = await createRuntime({ cacheDir: tempDir() });
  try {
    const reader = await runtime.compile('stats.js', 'export default () => Nexus.stats()');
    await runtime.compile('stats.js', 'export default () => Nexus.stats()');
    const { output } = await runtime.invoke(reader, {});
    const ours = runtime.stats();
    const shape = (value) =>
      value && typeof value === 'object'
        ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v)]))
        : typeof value;
    assert.deepEqual(shape(output), shape(ours), 'the same record, the same names');
    assert.deepEqual(Object.keys(ours).sort(), ['bytecode', 'compiles', 'components', 'executions', 'failures', 'timeouts']);
    assert.equal(output.compiles, 1);
    assert.equal(output.bytecode.memory.hits, 1, 'the second compile was a memory hit');
    assert.equal(ours.executions, 1);
    assert.equal(output.executions, 0, 'as the invocation began');
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
  const defaults = resolveConfig({}, {});
  assert.equal(defaults.cacheDir, '/tmp/nexus-cache');
  assert.equal(defaults.maxCacheSizeBytes, 64 * 2 ** 20);
  assert.equal(defaults.timeoutMs, 1000);
  assert.equal(parseSize('64Mi'), 64 * 2 ** 20);
  assert.equal(parseSize('128M'), 128e6);
  assert.equal(parseSize('1Gi'), 2 ** 30);
  assert.equal(parseSize('12 apples'), undefined);
  assert.throws(() => resolveConfig({}, { NEXUS_MAX_CACHE_SIZE_BYTES: 'lots' }), (e) => {
    assert.equal(e.kind, 'config');
    assert.match(e.message, /maxCacheSizeBytes \(NEXUS_MAX_CACHE_SIZE_BYTES\) = "lots": expected bytes, or a quantity like 64Mi/);
    return true;
  });
  assert.throws(() => resolveConfig({ timeoutMs: 0 }, {}), /timeoutMs = 0: expected .* from 1 to 3600000/);
  assert.throws(() => resolveConfig({ cacheDirectory: '/x' }, {}), /unknown setting cacheDirectory/);
});
