// One worker thread: runs each job (a compile or an invocation) in a fresh
// instance of the guest, from core modules compiled once in the main
// thread. The main thread terminates a worker whose job runs past its
// timeout, and starts another.
import { parentPort, workerData } from 'node:worker_threads';
import { instantiate } from '../dist/guest/guest.js';
import { fromGuest, NexusError, toWire } from './errors.js';
import { imports } from './guest.js';

const { modules } = workerData;

// jco's glue wraps five exports with `WebAssembly.promising` (JSPI) in a
// try, and keeps the export itself when that throws, as it does on Node 20.
// Throwing there cost about 5 ms of every instantiation (measured: 9 ms →
// 3.6 ms per fresh instance); answering the catch's own result directly
// changes nothing else. This worker's global, no one else's.
WebAssembly.promising ??= (f) => f;

/** What the guest threw, as the host's error kinds. */
function classify(e) {
  if (e && e.payload && typeof e.payload.tag === 'string') return fromGuest(e.payload);
  if (e instanceof RangeError && /call stack/i.test(e.message)) {
    return new NexusError('stack_overflow', 'the wasm stack overflowed');
  }
  if (e instanceof WebAssembly.RuntimeError) return new NexusError('trap', `the guest trapped: ${e.message}`);
  return new NexusError('trap', `the guest failed: ${e && e.message ? e.message : String(e)}`);
}

parentPort.on('message', (job) => {
  const logs = [];
  try {
    const guest = instantiate((path) => modules[path], imports(logs, job.stats));
    const value =
      job.op === 'compile'
        ? guest.compiler.compile(job.name, job.source, job.options)
        : guest.handler.invoke(job.bytecode, job.input);
    parentPort.postMessage({ id: job.id, ok: true, value, logs });
  } catch (e) {
    parentPort.postMessage({ id: job.id, ok: false, error: toWire(classify(e)), logs });
  }
});

// Loaded: the pool may give this worker a job, and start its clock.
parentPort.postMessage({ ready: true });
