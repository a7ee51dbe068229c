// The Node section of `just bench`: per-invocation medians, side by side in
// one run, for the trivial handler and the lodash handler:
//   - this package: a fresh instance per call (in a worker thread);
//   - a fresh Node `vm` context per call (the module's script compiled once);
//   - the Rust host: `nexus bench` (a fresh instance per call, plain path);
// and, for this package, a cold first compile against a disk hit in a new
// process.
//   node bench/bench.mjs NEXUS TRIVIAL.js LODASH.js [ITERATIONS]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import vm from 'node:vm';
import { createRuntime } from '../src/index.js';

const [nexus, trivial, lodash, iterationsArg] = process.argv.slice(2);
const ITERATIONS = Number(iterationsArg ?? 300);
const inputFor = (file) => {
  try {
    return readFileSync(file.replace(/\.js$/, '.input.json'), 'utf8');
  } catch {
    return '{"name":"bench"}';
  }
};

const median = (samples) => {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
};

async function measure(iterations, call) {
  for (let i = 0; i < Math.max(10, iterations / 10); i++) await call();
  const samples = [];
  for (let i = 0; i < iterations; i++) {
    const start = process.hrtime.bigint();
    await call();
    samples.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  return median(samples);
}

async function packageFresh(file, input, cacheDir) {
  const runtime = await createRuntime({ cacheDir, maxInstances: 1, timeoutMs: 60_000 });
  try {
    const handler = await runtime.compile(basename(file), readFileSync(file, 'utf8'));
    return await measure(ITERATIONS, () => runtime.invoke(handler, input));
  } finally {
    await runtime.close();
  }
}

async function vmFresh(file, input) {
  const source = readFileSync(file, 'utf8').replace('export default ', 'globalThis.handler = ');
  const script = new vm.Script(source);
  return measure(ITERATIONS, () => {
    const context = vm.createContext({});
    script.runInContext(context);
    return JSON.stringify(context.handler(JSON.parse(input)));
  });
}

function host(file, input, cacheDir) {
  const out = spawnSync(
    nexus,
    ['bench', file, '--input', input, '--iterations', String(ITERATIONS), '--json', '--cache-dir', cacheDir],
    { encoding: 'utf8' },
  );
  if (out.status !== 0) throw new Error(`nexus bench failed: ${out.stderr}`);
  return JSON.parse(out.stdout).median_us;
}

/** A new Node process's first compile of `file` into `cacheDir`, in ms. */
function compileInNewProcess(file, cacheDir) {
  const script = `
    import { createRuntime } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
    import { readFileSync } from 'node:fs';
    const runtime = await createRuntime({ cacheDir: ${JSON.stringify(cacheDir)} });
    const source = readFileSync(${JSON.stringify(file)}, 'utf8');
    const start = performance.now();
    const { origin } = await runtime.compile(${JSON.stringify(basename(file))}, source);
    console.log(JSON.stringify({ ms: performance.now() - start, origin }));
    await runtime.close();`;
  const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(out.stderr);
  return JSON.parse(out.stdout);
}

const fmt = (us) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(1)} µs`);
console.log(`| handler, median per call (${ITERATIONS} calls) | nexus-runtime (Node, fresh instance) | Node vm context | Rust host (nexus bench) | package / vm | package / host |`);
console.log('|---|---|---|---|---|---|');
const compiles = [];
for (const file of [trivial, lodash]) {
  const input = inputFor(file);
  const cacheDir = mkdtempSync(join(tmpdir(), 'nexus-node-bench-'));
  try {
    const cold = compileInNewProcess(file, cacheDir);
    const warm = compileInNewProcess(file, cacheDir);
    if (cold.origin !== 'compiled' || warm.origin !== 'disk') throw new Error(`unexpected origins ${cold.origin}, ${warm.origin}`);
    compiles.push([basename(file), cold.ms, warm.ms]);
    const ours = await packageFresh(file, input, cacheDir);
    const theirs = await vmFresh(file, input);
    const rust = host(file, input, cacheDir);
    console.log(`| ${basename(file)} | ${fmt(ours)} | ${fmt(theirs)} | ${fmt(rust)} | ${(ours / theirs).toFixed(2)}× | ${(ours / rust).toFixed(1)}× |`);
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}
console.log('');
console.log('| handler, nexus-runtime in a new process | cold first compile | disk hit | cold / hit |');
console.log('|---|---|---|---|');
for (const [name, cold, warm] of compiles) {
  console.log(`| ${name} | ${cold.toFixed(1)} ms | ${warm.toFixed(1)} ms | ${(cold / warm).toFixed(0)}× |`);
}
