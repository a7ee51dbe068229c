// The package as a user gets it: `npm pack` carries the linux-x64-gnu
// binary, and the tarball, installed into an empty project with no
// workspace beside it, runs the README's example on the native backend.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers.js';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));
const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

function npm(args, cwd) {
  const out = spawnSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, encoding: 'utf8' });
  assert.equal(out.status, 0, `npm ${args.join(' ')}: ${out.stderr}`);
  return out.stdout;
}

test('the packed tarball installs into an empty project and runs the README example natively', () => {
  const packed = tempDir('nexus-pack-');
  const [{ filename, files }] = JSON.parse(npm(['pack', '--json', '--pack-destination', packed], PACKAGE));
  const paths = files.map((f) => f.path);
  assert.ok(paths.includes('dist/native/nexus.linux-x64-gnu.node'), `the binary is in the tarball: ${paths.join(', ')}`);
  assert.ok(paths.includes('dist/guest/guest.js'), 'and the jco build, the fallback');

  const project = tempDir('nexus-empty-project-');
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'empty', private: true }));
  npm(['install', join(packed, filename)], project);

  const example = /```js\n(\/\/ example\.mjs\n[\s\S]*?)```/.exec(README);
  assert.ok(example, "the README's Node example");
  writeFileSync(join(project, 'example.mjs'), example[1]);
  const run = spawnSync(process.execPath, ['example.mjs'], {
    cwd: project,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, NEXUS_CACHE_DIR: tempDir() },
  });
  assert.equal(run.signal, null, `it did not exit: ${run.stderr}`);
  assert.equal(run.status, 0, run.stderr);
  assert.equal(run.stdout.trim(), "native { hi: 'Ada' }");
});
