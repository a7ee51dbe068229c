// Every vector in tests/vectors answers in Node as in the Rust host: the
// same JSON, to the byte, or the same error kind (and the expected fields).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { createRuntime } from '../src/index.js';
import { nexus, tempDir } from './helpers.js';

const VECTORS = new URL('../../tests/vectors/', import.meta.url);
const vectors = readdirSync(VECTORS)
  .filter((f) => f.endsWith('.js'))
  .map((f) => f.slice(0, -3))
  .sort();

let runtime;
const cacheDir = tempDir();
before(async () => {
  runtime = await createRuntime({ cacheDir, timeoutMs: 20_000 });
});
after(() => runtime.close());

/** The host's answer: `{json}` from stdout, or `{kind}` from `error[kind]:`. */
function host(name) {
  const file = new URL(`${name}.js`, VECTORS).pathname;
  const input = new URL(`${name}.input.json`, VECTORS).pathname;
  const out = nexus(['run', file, '--input-file', input, '--cache-dir', cacheDir]);
  if (out.status === 0) return { json: out.stdout.trimEnd() };
  const m = /error\[(\w+)\]/.exec(out.stderr);
  assert.ok(m, `${name}: the host failed without an error kind: ${out.stderr}`);
  return { kind: m[1] };
}

async function node(name) {
  const source = readFileSync(new URL(`${name}.js`, VECTORS), 'utf8');
  const input = readFileSync(new URL(`${name}.input.json`, VECTORS), 'utf8');
  try {
    const handler = await runtime.compile(`${name}.js`, source);
    const { json, logs } = await runtime.invoke(handler, input);
    return { json, logs };
  } catch (e) {
    if (!e.kind) throw e;
    return { kind: e.kind, error: e };
  }
}

test('there are vectors to compare', () => {
  assert.ok(vectors.length >= 15, `${vectors.length} vectors`);
});

for (const name of vectors) {
  test(`vector ${name}: Node answers as the Rust host`, async () => {
    const expected = JSON.parse(readFileSync(new URL(`${name}.expected.json`, VECTORS), 'utf8'));
    const [ours, theirs] = [await node(name), host(name)];
    if (theirs.json !== undefined) {
      assert.equal(ours.kind, undefined, `${name}: Node failed (${ours.error?.message}) where the host answered`);
      assert.equal(ours.json, theirs.json, `${name}: the same JSON`);
      assert.deepEqual(JSON.parse(ours.json), expected.output, `${name}: the expected output`);
      if (expected.logs) assert.deepEqual(ours.logs, expected.logs, `${name}: the console lines`);
      return;
    }
    assert.equal(ours.kind, theirs.kind, `${name}: the same error kind`);
    const want = expected.error;
    assert.equal(ours.kind, want.kind);
    for (const [field, value] of Object.entries(want)) {
      if (field === 'kind') continue;
      if (field === 'message_contains') assert.ok(ours.error.message.includes(value), `${name}: ${ours.error.message}`);
      else if (field === 'stack_contains') for (const frame of value) assert.ok(ours.error.stack.includes(frame), `${name}: stack`);
      else assert.deepEqual(ours.error[field], value, `${name}: field ${field}`);
    }
  });
}
