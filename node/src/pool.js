// Worker threads that run jobs, at most `size` at once; the rest queue.
// A job past its timeout ends its worker (terminate), which is replaced at
// once: a handler that loops costs one worker, never the runtime.
//
// A job's timeout counts only its own run: a job is given to a worker that
// has already started (it says `ready`), and the clock starts then. Workers
// are started ahead, one spare beyond the jobs at hand (within `size`), so
// the next job seldom waits for one.
//
// Idle workers are unref'd: they never keep Node alive, so a script that
// never calls close() still exits.
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
    this.starting = new Set();
    // Every worker not yet ended, whatever it is doing.
    this.workers = new Set();
    this.queue = [];
    this.nextId = 0;
    this.closed = false;
    this.closing = undefined;
    this.warm();
  }

  /**
   * Runs `job` on a worker. Resolves `{value, logs}`; rejects with the
   * job's NexusError (with `.logs`), `timeout` after `timeoutMs` of its own
   * run, or `closed` if the pool closes before it starts.
   */
  run(job, timeoutMs) {
    if (this.closed) return Promise.reject(closedError());
    return new Promise((resolve, reject) => {
      this.queue.push({ job: { ...job, id: this.nextId++ }, timeoutMs, resolve, reject });
      this.pump();
    });
  }

  pump() {
    while (this.queue.length > 0 && this.idle.length > 0) {
      this.dispatch(this.idle.pop(), this.queue.shift());
    }
    this.warm();
    // Node stays alive for queued jobs (through the workers starting for
    // them) and running ones (through their timers), never for idle workers.
    for (const worker of this.starting) {
      if (this.queue.length > 0) worker.ref();
      else worker.unref();
    }
  }

  /** Starts workers until every queued job, and one spare, has one ready or starting, within `size`. */
  warm() {
    if (this.closed) return;
    const wanted = Math.min(this.size, this.busy.size + this.queue.length + 1);
    while (this.busy.size + this.idle.length + this.starting.size < wanted) this.spawn();
  }

  spawn() {
    const worker = new Worker(WORKER, {
      workerData: { modules: this.modules },
      // Not the parent's flags: `node --input-type=module -e` would break
      // a worker started from a file.
      execArgv: [],
      resourceLimits: { stackSizeMb: STACK_MB },
    });
    this.starting.add(worker);
    this.workers.add(worker);
    worker.on('message', (msg) => {
      if (msg.ready) {
        this.starting.delete(worker);
        worker.unref();
        if (this.closed) {
          this.retire(worker);
          return;
        }
        this.idle.push(worker);
        this.pump();
        return;
      }
      const task = worker.task;
      if (!task || msg.id !== task.job.id) return;
      this.finish(worker, task);
      if (!this.closed) this.idle.push(worker);
      if (msg.ok) task.resolve({ value: msg.value, logs: msg.logs });
      else task.reject(Object.assign(fromWire(msg.error), { logs: msg.logs }));
      this.pump();
    });
    worker.on('error', (e) => {
      const task = worker.task;
      const started = !this.starting.has(worker);
      this.retire(worker);
      if (task) {
        this.finish(worker, task);
        task.reject(new NexusError('trap', `the worker running the guest failed: ${e.message}`));
      }
      if (started) {
        this.pump();
        return;
      }
      // A worker that cannot even start: fail what waits, and try again
      // only when a new job comes, never in a loop.
      for (const queued of this.queue.splice(0)) {
        queued.reject(new NexusError('trap', `cannot start a worker for the guest: ${e.message}`));
      }
    });
    // After the listeners: adding one refs the worker's port again.
    worker.unref();
    return worker;
  }

  dispatch(worker, task) {
    worker.task = task;
    this.busy.add(worker);
    task.done = new Promise((settled) => (task.settled = settled));
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
    task.settled();
  }

  retire(worker) {
    worker.removeAllListeners('message');
    worker.terminate();
    this.workers.delete(worker);
    this.busy.delete(worker);
    this.starting.delete(worker);
    this.idle = this.idle.filter((w) => w !== worker);
  }

  /**
   * Stops taking jobs: queued ones reject with `closed` at once, running
   * ones finish (or time out) as they would have, then every worker ends.
   */
  close() {
    if (this.closing) return this.closing;
    this.closed = true;
    for (const task of this.queue.splice(0)) task.reject(closedError());
    const running = [...this.busy].map((worker) => worker.task.done);
    this.closing = Promise.allSettled(running).then(async () => {
      const workers = [...this.workers];
      this.workers.clear();
      this.idle = [];
      this.starting.clear();
      await Promise.all(workers.map((w) => w.terminate()));
    });
    return this.closing;
  }
}

function closedError() {
  return new NexusError('closed', 'the runtime was closed before this call started');
}
