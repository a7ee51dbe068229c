// The package's API, once per backend (native, then jco): the same vectors,
// errors, isolation, timeouts, limits and cache cross-hits with the `nexus`
// binary. Both must pass; the native one must be built (npm run build).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { createRuntime, nativeBackend, NexusError } from '../src/index.js';
import { bytecodeOrigin, nexus, tempDir } from './helpers.js';

const BACKENDS = ['native', 'jco'];
const INDEX = new URL('../src/index.js', import.meta.url).href;
const VECTORS = new URL('../../tests/vectors/', import.meta.url);
const vectors = readdirSync(VECTORS)
  .filter((f) => f.endsWith('.js'))
  .map((f) => f.slice(0, -3))
  .sort();
const HELLO = readFileSync(new URL('../../examples/hello.js', import.meta.url), 'utf8');

const LOOP = 'export default () => { for (;;) {} }';
const BOMB = 'export default () => { const a = []; for (;;) a.push(new ArrayBuffer(1 << 20)); }';
// Recursion in C that QuickJS's own stack check cannot see: the wasm stack
// runs out, and wasmtime traps.
const DEEP = "export default () => JSON.parse('['.repeat(1e6))";
const GOOD = 'export default (ctx) => ({ twice: ctx.n * 2 })';

test('the native backend is built here, so both backends are tested', () => {
  const native = nativeBackend();
  assert.ok(native.available, `the native backend does not load: ${native.reason}`);
});

test('backend: an unknown one is refused by name', async () => {
  await assert.rejects(createRuntime({ backend: 'wasm3' }), (e) => {
    assert.ok(e instanceof NexusError);
    assert.equal(e.kind, 'config');
    assert.match(e.message, /backend = "wasm3": expected 'native' or 'jco'/);
    return true;
  });
});

/** The host's answer for a vector: `{json}` from stdout, or `{kind}` from `error[kind]:`. */
function hostVector(name, cacheDir) {
  const file = new URL(`${name}.js`, VECTORS).pathname;
  const input = new URL(`${name}.input.json`, VECTORS).pathname;
  const out = nexus(['run', file, '--input-file', input, '--cache-dir', cacheDir]);
  if (out.status === 0) return { json: out.stdout.trimEnd() };
  const m = /error\[(\w+)\]/.exec(out.stderr);
  assert.ok(m, `${name}: the host failed without an error kind: ${out.stderr}`);
  return { kind: m[1] };
}

/** A handler file named hello.js, as `nexus run` is given it. */
function helloFile() {
  const file = join(tempDir('nexus-handler-'), 'hello.js');
  writeFileSync(file, HELLO);
  return file;
}

function hostRun(file, cacheDir) {
  const out = nexus(['run', file, '--input', '{"name":"Ada"}', '--cache-dir', cacheDir]);
  assert.equal(out.status, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout), { message: 'Hello, Ada!', length: 3 });
  return bytecodeOrigin(out.stderr);
}

/** `node -e script` (a module) in a child process, within `seconds`. */
function script(source, seconds = 60) {
  return spawnSync(process.execPath, ['--input-type=module', '-e', source], {
    encoding: 'utf8',
    timeout: seconds * 1000,
  });
}

for (const backend of BACKENDS) {
  describe(`${backend} backend`, () => {
    const open = (config = {}) => createRuntime({ backend, cacheDir: tempDir(), ...config });

    describe('vectors', () => {
      let runtime;
      const cacheDir = tempDir();
      before(async () => {
        runtime = await createRuntime({ backend, cacheDir, timeoutMs: 20_000 });
      });
      after(() => runtime.close());

      test('there are vectors to compare, and this is the backend asked for', () => {
        assert.ok(vectors.length >= 15, `${vectors.length} vectors`);
        assert.equal(runtime.backend, backend);
      });

      for (const name of vectors) {
        test(`vector ${name}: answers as the Rust host`, async () => {
          const expected = JSON.parse(readFileSync(new URL(`${name}.expected.json`, VECTORS), 'utf8'));
          const source = readFileSync(new URL(`${name}.js`, VECTORS), 'utf8');
          const input = readFileSync(new URL(`${name}.input.json`, VECTORS), 'utf8');
          let ours;
          try {
            const handler = await runtime.compile(`${name}.js`, source);
            ours = await runtime.invoke(handler, input);
          } catch (e) {
            if (!e.kind) throw e;
            ours = { kind: e.kind, error: e };
          }
          const theirs = hostVector(name, cacheDir);
          if (theirs.json !== undefined) {
            assert.equal(ours.kind, undefined, `${name}: failed (${ours.error?.message}) where the host answered`);
            assert.equal(ours.json, theirs.json, `${name}: the same JSON`);
            assert.deepEqual(JSON.parse(ours.json), expected.output, `${name}: the expected output`);
            if (expected.logs) assert.deepEqual(ours.logs, expected.logs, `${name}: the console lines`);
            return;
          }
          assert.equal(ours.kind, theirs.kind, `${name}: the same error kind`);
          const want = expected.error;
          for (const [field, value] of Object.entries(want)) {
            if (field === 'kind') continue;
            if (field === 'message_contains') assert.ok(ours.error.message.includes(value), `${name}: ${ours.error.message}`);
            else if (field === 'stack_contains') for (const frame of value) assert.ok(ours.error.stack.includes(frame), `${name}: stack`);
            else assert.deepEqual(ours.error[field], value, `${name}: field ${field}`);
          }
        });
      }
    });

    test('errors carry the host kinds, fields and Node codes', async () => {
      const runtime = await open({ maxOutputBytes: 1024 });
      try {
        await assert.rejects(runtime.compile('bad.js', 'export default (\n'), (e) => {
          assert.ok(e instanceof NexusError);
          assert.deepEqual([e.kind, e.code, e.file, e.line], ['compile_error', 'ERR_NEXUS_COMPILE_ERROR', 'bad.js', 2]);
          assert.equal(typeof e.column, 'number');
          return true;
        });
        const thrower = await runtime.compile('t.js', 'export default () => { throw new TypeError("nope") }');
        await assert.rejects(runtime.invoke(thrower, {}), (e) => {
          assert.deepEqual([e.kind, e.name, e.message], ['runtime_error', 'TypeError', 'nope']);
          assert.match(e.stack, /t\.js/);
          assert.equal(e.toJSON().kind, 'runtime_error');
          return true;
        });
        const echo = await runtime.compile('echo.js', 'export default (ctx) => ctx');
        await assert.rejects(runtime.invoke(echo, '{"broken'), { kind: 'invalid_input' });
        await assert.rejects(runtime.invoke({ name: 'x.js' }, {}), { kind: 'invalid_input' });
        await assert.rejects(runtime.invoke(echo, {}, { timeoutMs: 0 }), (e) => {
          assert.equal(e.kind, 'config');
          assert.match(e.message, /timeoutMs = 0: expected .* from 1 to 3600000/);
          return true;
        });
        const big = await runtime.compile('big.js', 'export default () => "x".repeat(4096)');
        await assert.rejects(runtime.invoke(big, {}), (e) => {
          assert.equal(e.kind, 'output_too_large');
          assert.deepEqual([e.sizeBytes, e.limitBytes], [4098, 1024]);
          assert.equal(e.toJSON().size_bytes, 4098, "toJSON is the host's wire form");
          return true;
        });
        assert.deepEqual((await runtime.invoke(echo, { still: 'serving' })).output, { still: 'serving' });
      } finally {
        await runtime.close();
      }
      await assert.rejects(open({ timeoutMs: 0 }), (e) => {
        assert.equal(e.kind, 'config');
        assert.equal(e.code, 'ERR_NEXUS_CONFIG');
        assert.match(e.message, /timeoutMs = "?0"?: expected .* from 1 to 3600000/);
        return true;
      });
      await assert.rejects(open({ cacheDirectory: '/x' }), /unknown setting cacheDirectory/);
    });

    test('state never leaks between invocations, sequential or concurrent', async () => {
      const runtime = await open({ maxInstances: 2 });
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
        for (const handler of [counter, await runtime.prepare(counter)]) {
          for (let n = 0; n < 5; n++) {
            assert.deepEqual((await runtime.invoke(handler, { n })).output, { calls: 1, seen: 1, id: n, before: true });
          }
          const answers = await Promise.all(Array.from({ length: 20 }, (_, n) => runtime.invoke(handler, { n })));
          answers.forEach(({ output }, n) => assert.deepEqual(output, { calls: 1, seen: 1, id: n, before: true }));
        }
      } finally {
        await runtime.close();
      }
    });

    test('prepare: the host snapshot on native, the plain path on jco; the same answers', async () => {
      const runtime = await open();
      try {
        const handler = await runtime.compile('hello.js', HELLO);
        const prepared = await runtime.prepare(handler);
        const plain = await runtime.invoke(handler, { name: 'Ada' });
        const fast = await runtime.invoke(prepared, { name: 'Ada' });
        assert.equal(plain.path, 'plain');
        assert.equal(fast.path, backend === 'native' ? 'prepared' : 'plain');
        assert.equal(fast.json, plain.json);
        assert.deepEqual(fast.logs, plain.logs);
      } finally {
        await runtime.close();
      }
    });

    test('a timeout, an out-of-memory and a wasm stack overflow each end only their own call; 10,000 calls follow', async () => {
      // Under jco an instance's memory has no cap of its own (V8's wasm
      // memory grows to 4 GiB): only the native backend has max_memory_bytes.
      const native = backend === 'native';
      const runtime = await open(native ? { maxMemoryBytes: '32Mi', timeoutMs: 20_000 } : { timeoutMs: 20_000 });
      try {
        const good = await runtime.compile('good.js', GOOD);
        const cases = [
          ['loop.js', LOOP, 'timeout', { timeoutMs: 300 }],
          ['bomb.js', BOMB, 'out_of_memory', {}],
          // Under jco, V8 gives the guest a deeper stack than the host's
          // wasm stack, and QuickJS's own check stops the recursion first:
          // a catchable RangeError.
          ['deep.js', DEEP, native ? 'stack_overflow' : 'runtime_error', {}],
          ['throws.js', 'export default () => { throw new Error("no") }', 'runtime_error', {}],
        ].filter(([name]) => native || name !== 'bomb.js');
        for (const [name, source, kind, options] of cases) {
          const handler = await runtime.compile(name, source);
          // Beside a good call in flight, which the failure must not touch.
          const [failed, fine] = await Promise.allSettled([runtime.invoke(handler, {}, options), runtime.invoke(good, { n: 1 })]);
          assert.equal(failed.status, 'rejected', name);
          assert.equal(failed.reason.kind, kind, `${name}: ${failed.reason.message}`);
          assert.deepEqual(fine.value?.output, { twice: 2 }, `${name}: the call beside it`);
        }
        assert.equal(runtime.stats().timeouts, 1);
        let done = 0;
        for (let batch = 0; batch < 10_000 / 100; batch++) {
          const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => runtime.invoke(good, { n: batch * 100 + i })));
          answers.forEach(({ output }, i) => assert.equal(output.twice, 2 * (batch * 100 + i)));
          done += answers.length;
        }
        assert.equal(done, 10_000);
      } finally {
        await runtime.close();
      }
    });

    test('a handler Node compiled is a disk hit for nexus run, and the reverse', async () => {
      const ours = tempDir();
      const runtime = await createRuntime({ backend, cacheDir: ours });
      try {
        const handler = await runtime.compile('hello.js', HELLO);
        assert.equal(handler.origin, 'compiled');
        assert.equal(hostRun(helloFile(), ours), 'disk', 'the host read the file Node wrote');
      } finally {
        await runtime.close();
      }
      const theirs = tempDir();
      assert.equal(hostRun(helloFile(), theirs), 'compiled');
      const [file] = readdirSync(join(theirs, 'v1', 'bytecode')).filter((f) => f.endsWith('.qjsc'));
      const again = await createRuntime({ backend, cacheDir: theirs });
      try {
        const handler = await again.compile('hello.js', HELLO);
        assert.equal(handler.origin, 'disk');
        assert.equal(`${handler.key}.qjsc`, file, 'the same key');
        assert.equal(again.stats().compiles, 0);
        assert.deepEqual((await again.invoke(handler, { name: 'Bo' })).output, { message: 'Hello, Bo!', length: 2 });
        assert.equal((await again.compile('hello.js', HELLO)).origin, 'memory');
      } finally {
        await again.close();
      }
    });

    test('a damaged cache file is refused and repaired, and the host trusts the repair', async () => {
      const cacheDir = tempDir();
      assert.equal(hostRun(helloFile(), cacheDir), 'compiled');
      const [file] = readdirSync(join(cacheDir, 'v1', 'bytecode')).filter((f) => f.endsWith('.qjsc'));
      const path = join(cacheDir, 'v1', 'bytecode', file);
      const bytes = readFileSync(path);
      bytes[bytes.length - 1] ^= 0x55;
      writeFileSync(path, bytes);
      const runtime = await createRuntime({ backend, cacheDir });
      try {
        const handler = await runtime.compile('hello.js', HELLO);
        assert.equal(handler.origin, 'compiled', 'refused, then recompiled');
        assert.deepEqual((await runtime.invoke(handler, { name: 'Cy' })).output.message, 'Hello, Cy!');
      } finally {
        await runtime.close();
      }
      assert.equal(hostRun(helloFile(), cacheDir), 'disk');
    });

    test('stats() is the runtime-stats record in camelCase; Nexus.stats() keeps the WIT names', async () => {
      const runtime = await open({ statsScope: 'host' });
      try {
        const reader = await runtime.compile('stats.js', 'export default () => Nexus.stats()');
        const { output } = await runtime.invoke(reader, {});
        const ours = runtime.stats();
        assert.deepEqual(Object.keys(ours).sort(), ['bytecode', 'compiles', 'components', 'executions', 'failures', 'hostWide', 'timeouts']);
        assert.deepEqual(Object.keys(ours.bytecode.memory).sort(), ['bytes', 'capacityBytes', 'entries', 'evictions', 'hits', 'misses']);
        assert.equal(typeof ours.bytecode.hitRate, 'number');
        assert.equal(typeof output.bytecode.hit_rate, 'number');
        assert.equal(output.host_wide, true);
        assert.equal(ours.executions, 1);
        assert.equal(output.executions, 0, 'as the invocation began');
      } finally {
        await runtime.close();
      }
    });

    test('close() rejects calls waiting for a slot with closed, and lets running ones finish', async () => {
      const runtime = await open({ maxInstances: 1, timeoutMs: 20_000 });
      const slow = await runtime.compile(
        'slow.js',
        'export default () => { const end = Date.now() + 500; while (Date.now() < end) {} return "done" }',
      );
      const running = runtime.invoke(slow, {});
      // The first call holds the only slot once it has started.
      await new Promise((r) => setTimeout(r, 200));
      // Settled into values at once: both reject while the test awaits.
      const queued = [runtime.invoke(slow, {}), runtime.invoke(slow, {})].map((call) =>
        call.then(
          () => assert.fail('a queued call ran after close()'),
          (e) => e,
        ),
      );
      const closed = runtime.close();
      for (const e of await Promise.all(queued)) {
        assert.equal(e.kind, 'closed');
        assert.equal(e.code, 'ERR_NEXUS_CLOSED');
      }
      assert.equal((await running).output, 'done', 'a running call finishes, it is not cut off');
      await closed;
      await assert.rejects(runtime.invoke(slow, {}), { kind: 'closed' });
    });

    test('the event loop stays free while 1,000 invocations are in flight', async (t) => {
      const runtime = await open({ timeoutMs: 60_000 });
      try {
        // A few milliseconds of work each: run on the JavaScript thread,
        // 1,000 of them would hold it for seconds.
        const busy = await runtime.compile(
          'busy.js',
          'export default (ctx) => { let s = 0; for (let i = 0; i < 20000; i++) s += i % 7; return { n: ctx.n, s } }',
        );
        const delay = monitorEventLoopDelay({ resolution: 5 });
        delay.enable();
        const started = performance.now();
        const answers = await Promise.all(Array.from({ length: 1000 }, (_, n) => runtime.invoke(busy, { n })));
        const took = performance.now() - started;
        delay.disable();
        answers.forEach(({ output }, n) => assert.equal(output.n, n));
        const p99 = delay.percentile(99) / 1e6;
        const max = delay.max / 1e6;
        // The bound: no stall of the loop longer than 250 ms (the calls
        // took `took` ms in all).
        t.diagnostic(`event loop delay: p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms over ${took.toFixed(0)} ms`);
        assert.ok(max < 250, `event loop delay: p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms over ${took.toFixed(0)} ms`);
      } finally {
        await runtime.close();
      }
    });

    test('a script that never calls close() still exits', () => {
      const cacheDir = tempDir();
      const out = script(`
        import { createRuntime } from ${JSON.stringify(INDEX)};
        const runtime = await createRuntime({ backend: ${JSON.stringify(backend)}, cacheDir: ${JSON.stringify(cacheDir)} });
        const handler = await runtime.compile('hello.js', 'export default (ctx) => ({ hi: ctx.name })');
        console.log(JSON.stringify((await runtime.invoke(handler, { name: 'Ada' })).output));`);
      assert.equal(out.signal, null, `killed at the time limit: it did not exit (${out.stderr})`);
      assert.equal(out.status, 0, out.stderr);
      assert.equal(out.stdout.trim(), '{"hi":"Ada"}');
    });
  });
}
