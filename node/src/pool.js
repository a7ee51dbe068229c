// Worker threads that run jobs, at most `size` at once; the rest queue.
// A job past its timeout ends its worker (terminate), which is replaced:
// a handler that loops costs one worker, never the runtime.
import { Worker } from 'node:worker_threads';
import { fromWire, NexusError } from './errors.js';

const WORKER = new URL('./worker.js', import.meta.url);
// QuickJS stops deep JavaScript recursion at 2 MiB of its own stack (a
// catchable RangeError, as in the host); the thread's stack must outlast it.
const STACK_MB = 32;

export class Pool {
  constructor(size, modules) {
    this.size = size;
    this.modules = modules;
    this.idle = [];
    this.busy = new Set();
    this.queue = [];
    this.nextId = 0;
    this.closed = false;
  }

  /**
   * Runs `job` on a worker. Resolves `{value, logs}`; rejects with the
   * job's NexusError (with `.logs`), or `timeout` after `timeoutMs`.
   */
  run(job, timeoutMs) {
    if (this.closed) return Promise.reject(new NexusError('engine', 'the runtime is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { ...job, id: this.nextId++ }, timeoutMs, resolve, reject });
      this.pump();
    });
  }

  pump() {
    while (this.queue.length > 0) {
      let worker = this.idle.pop();
      if (!worker) {
        if (this.busy.size >= this.size) return;
        worker = this.spawn();
      }
      this.dispatch(worker, this.queue.shift());
    }
  }

  spawn() {
    const worker = new Worker(WORKER, {
      workerData: { modules: this.modules },
      // Not the parent's flags: `node --input-type=module -e` would break
      // a worker started from a file.
      execArgv: [],
      resourceLimits: { stackSizeMb: STACK_MB },
    });
    worker.unref();
    worker.on('message', (msg) => {
      const task = worker.task;
      if (!task || msg.id !== task.job.id) return;
      this.finish(worker, task);
      this.idle.push(worker);
      if (msg.ok) task.resolve({ value: msg.value, logs: msg.logs });
      else task.reject(Object.assign(fromWire(msg.error), { logs: msg.logs }));
      this.pump();
    });
    worker.on('error', (e) => {
      const task = worker.task;
      this.retire(worker);
      if (task) {
        this.finish(worker, task);
        task.reject(new NexusError('trap', `the worker running the guest failed: ${e.message}`));
      }
      this.pump();
    });
    return worker;
  }

  dispatch(worker, task) {
    worker.task = task;
    this.busy.add(worker);
    task.timer = setTimeout(() => {
      this.retire(worker);
      this.finish(worker, task);
      task.reject(
        new NexusError('timeout', `the handler ran past its ${task.timeoutMs} ms timeout`, {
          limit_ms: task.timeoutMs,
        }),
      );
      this.pump();
    }, task.timeoutMs);
    worker.postMessage(task.job);
  }

  finish(worker, task) {
    clearTimeout(task.timer);
    worker.task = undefined;
    this.busy.delete(worker);
  }

  retire(worker) {
    worker.removeAllListeners('message');
    worker.terminate();
    this.busy.delete(worker);
    this.idle = this.idle.filter((w) => w !== worker);
  }

  async close() {
    this.closed = true;
    const all = [...this.idle, ...this.busy];
    this.idle = [];
    await Promise.all(all.map((w) => w.terminate()));
  }
}
