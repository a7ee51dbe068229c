// Builds the native backend from source: the workspace's `nexus-node`
// crate, with cargo, into dist/native/nexus.<platform>.node, the file
// src/native.js loads. The cargo profile is $NEXUS_NATIVE_PROFILE, else
// `release`; `dev` shares the test build's compiled dependencies.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativePath } from '../src/native.js';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
export const workspace = resolve(root, '..');

/** Whether this package sits in its workspace, so the addon can be built. */
export function buildable() {
  return existsSync(join(workspace, 'Cargo.toml')) && existsSync(join(workspace, 'node', 'native', 'Cargo.toml'));
}

export function buildNative(profile = process.env.NEXUS_NATIVE_PROFILE || 'release') {
  // In the dev profile, built as `cargo test -p nexus-host -p nexus-node`
  // builds (the same packages and targets, so the same features): it then
  // shares every compiled dependency with the tests, wasmtime included.
  const args =
    profile === 'dev'
      ? ['build', '--locked', '-p', 'nexus-host', '-p', 'nexus-node', '--lib', '--bins', '--tests']
      : ['build', '--locked', '-p', 'nexus-node', '--profile', profile];
  execFileSync('cargo', args, { cwd: workspace, stdio: ['ignore', 'inherit', 'inherit'] });
  // Cargo reads a relative CARGO_TARGET_DIR from where it runs: the workspace.
  const target = resolve(workspace, process.env.CARGO_TARGET_DIR || 'target');
  const built = join(target, profile === 'dev' ? 'debug' : profile, 'libnexus_node.so');
  const path = nativePath();
  mkdirSync(dirname(path), { recursive: true });
  copyFileSync(built, path);
  // The workspace's own crates carry debug info in the dev profile (over
  // 100 MB): not worth shipping.
  try {
    execFileSync('strip', ['--strip-debug', path]);
  } catch {
    // no strip here: the binary works as it is
  }
  return path;
}
