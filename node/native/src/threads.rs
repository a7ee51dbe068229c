//! The threads invocations run on ([`nexus_host::call_threads`] of them),
//! started with the first call, shared by every runtime in the process.
//!
//! A caller awaiting each call in turn is the common case from Node, and
//! on it every call wakes a sleeping thread. So:
//!
//! - the thread that went idle last is woken first: it ran the last call,
//!   and its caches still hold the instance's slot and the wasm code;
//! - a call is queued, and its thread chosen, under the lock, but woken
//!   after it is released: the woken thread does not stall on a lock the
//!   JavaScript thread still holds.
//!
//! Invariants: a thread parks only after finding the queue empty under the
//! lock and listing itself idle there; a call is queued under the same
//! lock and unparks an idle thread if there is one, so no call waits while
//! a thread sleeps. A thread is listed at most once. A job that panics
//! leaves its thread running.

use std::collections::VecDeque;
use std::io;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::Thread;

type Job = Box<dyn FnOnce() + Send>;

struct Queue {
    jobs: VecDeque<Job>,
    /// Idle threads, the last to go idle on top.
    idle: Vec<(usize, Thread)>,
    /// Whether each thread is in `idle`.
    listed: Vec<bool>,
}

static QUEUE: Mutex<Queue> = Mutex::new(Queue {
    jobs: VecDeque::new(),
    idle: Vec::new(),
    listed: Vec::new(),
});

static STARTED: OnceLock<Result<(), String>> = OnceLock::new();

fn lock() -> MutexGuard<'static, Queue> {
    // The queue holds no invariant a panic could break mid-way.
    QUEUE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `job` on a call thread: an idle one now, else the first to finish
/// its call. The threads, each with `stack` bytes of stack, start with the
/// first job.
///
/// # Errors
///
/// When the threads could not be started (then, on every call).
pub(crate) fn run(stack: usize, job: impl FnOnce() + Send + 'static) -> io::Result<()> {
    if let Err(e) = STARTED.get_or_init(|| start(stack).map_err(|e| e.to_string())) {
        return Err(io::Error::other(format!(
            "starting the call threads failed: {e}"
        )));
    }
    let woken = {
        let mut queue = lock();
        queue.jobs.push_back(Box::new(job));
        let woken = queue.idle.pop();
        if let Some((n, _)) = &woken {
            queue.listed[*n] = false;
        }
        woken
    };
    if let Some((_, thread)) = woken {
        thread.unpark();
    }
    Ok(())
}

fn start(stack: usize) -> io::Result<()> {
    let count = nexus_host::call_threads();
    lock().listed = vec![false; count];
    for n in 0..count {
        std::thread::Builder::new()
            .name(format!("nexus-call-{n}"))
            .stack_size(stack)
            .spawn(move || work(n))?;
    }
    Ok(())
}

fn work(n: usize) -> ! {
    loop {
        let job = {
            let mut queue = lock();
            match queue.jobs.pop_front() {
                Some(job) => job,
                None => {
                    // Listed once: a spurious wake leaves it listed; a
                    // thread woken for a call another took lists itself
                    // again here.
                    if !queue.listed[n] {
                        queue.listed[n] = true;
                        queue.idle.push((n, std::thread::current()));
                    }
                    drop(queue);
                    std::thread::park();
                    continue;
                }
            }
        };
        // The job answers its own panics; this keeps the thread.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}
