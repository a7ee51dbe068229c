// The jco backend's own cache code (src/cache.js, a JavaScript reading of
// the host's format): a damaged file is repaired by whichever side reads it
// first, with a warning; the files, keys and permissions are the host's.
// (The native backend's cache is the host's own code.)
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createRuntime } from '../src/index.js';
import { decode, KIND_BYTECODE } from '../src/cache.js';
import { bytecodeOrigin, nexus, tempDir } from './helpers.js';

const HELLO = readFileSync(new URL('../../examples/hello.js', import.meta.url), 'utf8');

/** A handler file named hello.js, as `nexus run` is given it. */
function helloFile() {
  const dir = tempDir('nexus-handler-');
  const file = join(dir, 'hello.js');
  writeFileSync(file, HELLO);
  return file;
}

function bytecodeFiles(cacheDir) {
  return readdirSync(join(cacheDir, 'v1', 'bytecode')).filter((f) => f.endsWith('.qjsc'));
}

function hostRun(file, cacheDir) {
  const out = nexus(['run', file, '--input', '{"name":"Ada"}', '--cache-dir', cacheDir]);
  assert.equal(out.status, 0, out.stderr);
  assert.deepEqual(JSON.parse(out.stdout), { message: 'Hello, Ada!', length: 3 });
  return bytecodeOrigin(out.stderr);
}

/** Flips a byte of the payload of the one bytecode file in `cacheDir`. */
function damage(cacheDir) {
  const path = join(cacheDir, 'v1', 'bytecode', bytecodeFiles(cacheDir)[0]);
  const bytes = readFileSync(path);
  bytes[bytes.length - 1] ^= 0x55;
  writeFileSync(path, bytes);
  return path;
}

function valid(path, key) {
  return decode(KIND_BYTECODE, Buffer.from(key, 'hex'), readFileSync(path)).payload !== undefined;
}

test('a damaged file is repaired by Node when Node reads it first', async () => {
  const cacheDir = tempDir();
  assert.equal(hostRun(helloFile(), cacheDir), 'compiled');
  const path = damage(cacheDir);
  const warnings = [];
  const runtime = await createRuntime({ backend: 'jco', cacheDir, onLog: (level, line) => warnings.push([level, line]) });
  try {
    const handler = await runtime.compile('hello.js', HELLO);
    assert.equal(handler.origin, 'compiled', 'refused, then recompiled');
    assert.ok(warnings.some(([, line]) => line.includes('checksum')), JSON.stringify(warnings));
    assert.ok(valid(path, handler.key), 'rewritten whole');
    assert.equal(hostRun(helloFile(), cacheDir), 'disk', 'and the host trusts the repair');
  } finally {
    await runtime.close();
  }
});

test('a damaged file is repaired by the host when the host reads it first', async () => {
  const cacheDir = tempDir();
  const first = await createRuntime({ backend: 'jco', cacheDir });
  const { key } = await first.compile('hello.js', HELLO);
  await first.close();
  const path = damage(cacheDir);
  assert.equal(hostRun(helloFile(), cacheDir), 'compiled', 'refused, then recompiled');
  assert.ok(valid(path, key));
  const runtime = await createRuntime({ backend: 'jco', cacheDir });
  try {
    assert.equal((await runtime.compile('hello.js', HELLO)).origin, 'disk');
  } finally {
    await runtime.close();
  }
});

test('files Node writes are the host format, in directories only this user may write', async () => {
  const cacheDir = tempDir();
  const runtime = await createRuntime({ backend: 'jco', cacheDir });
  try {
    const { key, bytecode } = await runtime.compile('hello.js', HELLO);
    const path = join(cacheDir, 'v1', 'bytecode', `${key}.qjsc`);
    const file = readFileSync(path);
    assert.equal(file.subarray(0, 8).toString(), 'NXSCACHE');
    assert.deepEqual(decode(KIND_BYTECODE, Buffer.from(key, 'hex'), file).payload, bytecode);
    for (const dir of ['v1', 'v1/bytecode']) {
      assert.equal(statSync(join(cacheDir, dir)).mode & 0o077, 0, dir);
    }
    assert.deepEqual(
      readdirSync(join(cacheDir, 'v1', 'bytecode')).filter((f) => f.startsWith('.tmp-')),
      [],
      'no temporaries left',
    );
    const verify = nexus(['cache', 'verify', '--json', '--cache-dir', cacheDir]);
    assert.equal(verify.status, 0, `the host's verify passes: ${verify.stdout}${verify.stderr}`);
  } finally {
    await runtime.close();
  }
});

test('a cache directory others may write is not used: memory only, with a warning', async () => {
  const cacheDir = tempDir();
  mkdirSync(join(cacheDir, 'v1'), { mode: 0o777 });
  const { chmodSync } = await import('node:fs');
  chmodSync(join(cacheDir, 'v1'), 0o777);
  const warnings = [];
  const runtime = await createRuntime({ backend: 'jco', cacheDir, onLog: (_level, line) => warnings.push(line) });
  try {
    assert.ok(warnings.some((w) => w.includes('writable by group or others')), JSON.stringify(warnings));
    const handler = await runtime.compile('hello.js', HELLO);
    assert.equal(handler.origin, 'compiled');
    assert.equal((await runtime.compile('hello.js', HELLO)).origin, 'memory');
  } finally {
    await runtime.close();
  }
});
