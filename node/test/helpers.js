// Shared by the tests: the Rust host's binary, run as users run it.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildInfo } from '../src/guest.js';

/** The `nexus` binary the guest was built from: the same guest build. */
export const NEXUS = buildInfo().nexus;

export function tempDir(prefix = 'nexus-node-test-') {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * A seed directory holding the guest compiled once for every test process
 * of this build (`nexus cache warm`), so that each fresh cache directory
 * does not compile it again: the host's own `seed_dir`.
 */
function seed() {
  const dir = join(tmpdir(), `nexus-node-test-seed-${buildInfo().fingerprint.slice(0, 16)}-${process.getuid()}`);
  if (!existsSync(join(dir, 'v1', 'components'))) {
    const made = mkdtempSync(`${dir}-`);
    spawnSync(NEXUS, ['cache', 'warm'], { env: { ...process.env, NEXUS_CACHE_DIR: made } });
    try {
      renameSync(made, dir);
    } catch {
      rmSync(made, { recursive: true, force: true }); // another test process made it first
    }
  }
  return dir;
}

const SEED = seed();

/** `nexus ARGS`, with the cache's debug lines on stderr; never throws. */
export function nexus(args, env = {}) {
  const out = spawnSync(NEXUS, args, {
    encoding: 'utf8',
    env: { ...process.env, NEXUS_LOG: 'warn,nexus::cache=debug', NEXUS_SEED_DIR: SEED, ...env },
  });
  if (out.error) throw out.error;
  return out;
}

/** What the host's log says about where a handler's bytecode came from. */
export function bytecodeOrigin(stderr) {
  const m = /handler bytecode artifact="bytecode" origin="(\w+)"/.exec(stderr);
  return m ? m[1] : undefined;
}
