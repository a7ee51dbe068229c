// The Node section of `just bench`, side by side in one run, for the trivial
// handler and the lodash handler:
//   - per isolated call from Node (medians of ROUNDS rounds of ITERATIONS
//     sequential calls, every round printed): the native backend on the
//     plain and the prepared path, the jco backend, a fresh Node `vm`
//     context per call, and the Rust host itself (`nexus bench`, plain and
//     --prepared);
//   - throughput from one Node process with 1, 8 and 64 concurrent callers;
//   - a cold first compile against a disk hit, in a new process.
//   node bench/bench.mjs NEXUS TRIVIAL.js LODASH.js [ITERATIONS] [ROUNDS]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import vm from 'node:vm';
import { createRuntime } from '../src/index.js';

const [nexus, trivial, lodash, iterationsArg, roundsArg] = process.argv.slice(2);
const ITERATIONS = Number(iterationsArg ?? 300);
const ROUNDS = Number(roundsArg ?? 5);
const SECONDS = 2;
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

/** The median of `iterations` sequential calls, after a warm-up, in µs. */
async function round(iterations, call) {
  for (let i = 0; i < Math.max(10, iterations / 10); i++) await call();
  const samples = [];
  for (let i = 0; i < iterations; i++) {
    const start = process.hrtime.bigint();
    await call();
    samples.push(Number(process.hrtime.bigint() - start) / 1000);
  }
  return median(samples);
}

function vmCall(file, input) {
  const source = readFileSync(file, 'utf8').replace('export default ', 'globalThis.handler = ');
  const script = new vm.Script(source);
  return () => {
    const context = vm.createContext({});
    script.runInContext(context);
    return JSON.stringify(context.handler(JSON.parse(input)));
  };
}

function rust(file, input, cacheDir, prepared) {
  const args = ['bench', file, '--input', input, '--iterations', String(ITERATIONS), '--json', '--cache-dir', cacheDir];
  const out = spawnSync(nexus, prepared ? [...args, '--prepared'] : args, { encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`nexus bench failed: ${out.stderr}`);
  return JSON.parse(out.stdout).median_us;
}

/** Calls a second with `callers` concurrent callers, each awaiting its call before the next. */
async function throughput(call, callers) {
  let calls = 0;
  const end = performance.now() + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        await call();
        calls++;
      }
    }),
  );
  return calls / SECONDS;
}

/** A new Node process's first compile of `file` into `cacheDir`, in ms. */
function compileInNewProcess(file, cacheDir, backend) {
  const script = `
    import { createRuntime } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
    import { readFileSync } from 'node:fs';
    const runtime = await createRuntime({ backend: '${backend}', cacheDir: ${JSON.stringify(cacheDir)} });
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
const ratio = (a, b) => `${(a / b).toFixed(a / b >= 10 ? 0 : 2)}×`;

const rows = [];
const rates = [];
const compiles = [];
for (const file of [trivial, lodash]) {
  const name = basename(file);
  const input = inputFor(file);
  const source = readFileSync(file, 'utf8');
  const cacheDir = mkdtempSync(join(tmpdir(), 'nexus-node-bench-'));
  try {
    for (const backend of ['native', 'jco']) {
      const dir = mkdtempSync(join(tmpdir(), 'nexus-node-bench-compile-'));
      const cold = compileInNewProcess(file, dir, backend);
      const warm = compileInNewProcess(file, dir, backend);
      if (cold.origin !== 'compiled' || warm.origin !== 'disk') throw new Error(`unexpected origins ${cold.origin}, ${warm.origin}`);
      compiles.push([name, backend, cold.ms, warm.ms]);
      rmSync(dir, { recursive: true, force: true });
    }
    const native = await createRuntime({ backend: 'native', cacheDir, timeoutMs: 60_000 });
    const jco = await createRuntime({ backend: 'jco', cacheDir, maxInstances: 1, timeoutMs: 60_000 });
    const plain = await native.compile(name, source);
    const prepared = await native.prepare(plain);
    if (prepared.path !== 'prepared') throw new Error('not prepared');
    const jcoHandler = await jco.compile(name, source);
    const calls = {
      'native plain': () => native.invoke(plain, input),
      'native prepared': () => native.invoke(prepared, input),
      jco: () => jco.invoke(jcoHandler, input),
      'Node vm': vmCall(file, input),
    };
    const rounds = Object.fromEntries(Object.keys(calls).map((k) => [k, []]));
    rounds['Rust plain'] = [];
    rounds['Rust prepared'] = [];
    // Interleaved, so that a noisy moment touches every column alike.
    for (let r = 0; r < ROUNDS; r++) {
      for (const [label, call] of Object.entries(calls)) rounds[label].push(await round(ITERATIONS, call));
      rounds['Rust plain'].push(rust(file, input, cacheDir, false));
      rounds['Rust prepared'].push(rust(file, input, cacheDir, true));
      console.error(
        `${name} round ${r + 1}: ${Object.entries(rounds)
          .map(([label, samples]) => `${label} ${fmt(samples[r])}`)
          .join(', ')}`,
      );
    }
    const m = Object.fromEntries(Object.entries(rounds).map(([label, samples]) => [label, median(samples)]));
    rows.push([name, m]);
    if (file === trivial) {
      for (const [label, call] of [
        ['native prepared', calls['native prepared']],
        ['native plain', calls['native plain']],
      ]) {
        const perSecond = [];
        for (const callers of [1, 8, 64]) perSecond.push(await throughput(call, callers));
        rates.push([`${name}, ${label}`, perSecond]);
      }
      const jcoWide = await createRuntime({ backend: 'jco', cacheDir, timeoutMs: 60_000 });
      const wide = await jcoWide.compile(name, source);
      const perSecond = [];
      for (const callers of [1, 8, 64]) perSecond.push(await throughput(() => jcoWide.invoke(wide, input), callers));
      rates.push([`${name}, jco (${availableParallelism()} workers)`, perSecond]);
      await jcoWide.close();
    }
    await native.close();
    await jco.close();
  } finally {
    rmSync(cacheDir, { recursive: true, force: true });
  }
}

console.log(`Per isolated call from Node: median of ${ROUNDS} rounds, each the median of ${ITERATIONS} sequential calls.`);
console.log('');
console.log('| handler | native prepared | native plain | jco | Node vm context | Rust host prepared | Rust host plain | vm / native prepared | native prepared / Rust prepared | vm / native plain | jco / native plain |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const [name, m] of rows) {
  console.log(
    `| ${name} | ${fmt(m['native prepared'])} | ${fmt(m['native plain'])} | ${fmt(m.jco)} | ${fmt(m['Node vm'])} | ${fmt(m['Rust prepared'])} | ${fmt(m['Rust plain'])} | ${ratio(m['Node vm'], m['native prepared'])} | ${ratio(m['native prepared'], m['Rust prepared'])} | ${ratio(m['Node vm'], m['native plain'])} | ${ratio(m.jco, m['native plain'])} |`,
  );
}
console.log('');
console.log(`Throughput from one Node process (${availableParallelism()} cores), calls a second over ${SECONDS} s:`);
console.log('');
console.log('| handler, backend | 1 caller | 8 callers | 64 callers | 8 / 1 | 64 / 1 |');
console.log('|---|---|---|---|---|---|');
for (const [label, [one, eight, many]] of rates) {
  console.log(`| ${label} | ${one.toFixed(0)} | ${eight.toFixed(0)} | ${many.toFixed(0)} | ${ratio(eight, one)} | ${ratio(many, one)} |`);
}
console.log('');
console.log('| handler, backend, in a new process | cold first compile | disk hit | cold / hit |');
console.log('|---|---|---|---|');
for (const [name, backend, cold, warm] of compiles) {
  console.log(`| ${name}, ${backend} | ${cold.toFixed(1)} ms | ${warm.toFixed(1)} ms | ${(cold / warm).toFixed(0)}× |`);
}
