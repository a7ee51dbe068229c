// The Node peer for `just bench`: the same trivial handler (bench/trivial.js),
// a fresh `vm` context per call (compiled once, like Nexus's bytecode).
// usage: node bench/node-vm-peer.mjs ITERATIONS SECONDS_FOR_THROUGHPUT
// prints JSON: {"median_us", "p90_us", "p99_us", "per_second_2_threads"}
import vm from "node:vm";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { readFileSync } from "node:fs";

// `vm.Script` runs scripts: the module's default export becomes a global.
const HANDLER = readFileSync(new URL("trivial.js", import.meta.url), "utf8").replace(
  "export default function",
  "globalThis.handler = function",
);
const INPUT = '{"name":"bench"}';
const script = new vm.Script(HANDLER);

function invoke() {
  const context = vm.createContext({});
  script.runInContext(context);
  return JSON.stringify(context.handler(JSON.parse(INPUT)));
}

if (isMainThread) {
  const iterations = Number(process.argv[2] ?? 2000);
  const seconds = Number(process.argv[3] ?? 2);
  for (let i = 0; i < Math.max(100, iterations / 10); i++) invoke();
  const samples = [];
  for (let i = 0; i < iterations; i++) {
    const t = process.hrtime.bigint();
    invoke();
    samples.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  samples.sort((a, b) => a - b);
  const at = (q) => samples[Math.round((samples.length - 1) * q)];
  const me = fileURLToPath(import.meta.url);
  const counts = await Promise.all(
    [0, 1].map(
      () =>
        new Promise((resolve, reject) => {
          const w = new Worker(me, { workerData: { seconds } });
          w.on("message", resolve);
          w.on("error", reject);
        }),
    ),
  );
  console.log(JSON.stringify({
    median_us: at(0.5), p90_us: at(0.9), p99_us: at(0.99),
    per_second_2_threads: counts.reduce((a, b) => a + b, 0) / seconds,
  }));
} else {
  const end = Date.now() + workerData.seconds * 1000;
  let n = 0;
  while (Date.now() < end) {
    invoke();
    n++;
  }
  parentPort.postMessage(n);
}
