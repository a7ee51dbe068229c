//! The call threads: where invocations run, off the async side. The call
//! queue ([`super::queue`]) decides when a call may run; this pool only
//! runs it, on a thread with the stack a wasm call needs, in the request's
//! span, and hands the answer back to the waiting request.
//!
//! A thread that finishes a call looks for the next one a moment longer
//! ([`LINGER`], yielding the core meanwhile; one thread at a time) before
//! it sleeps. Under load
//! the next call is usually there within microseconds, and waking a
//! sleeping thread (a futex, and a context switch on each side) costs more
//! than a trivial handler's whole call. Idle, the threads sleep.
//!
//! Invariants: a job is taken by exactly one thread; a thread goes to
//! sleep only under the jobs' lock after finding none, and a job is pushed
//! under that lock and wakes a sleeper if there is one, so no job waits
//! while a thread sleeps. A job that panics is answered as the host's
//! failure; its thread goes on.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use super::errors::ApiError;

/// How long a thread that found no call looks again before it sleeps.
const LINGER: Duration = Duration::from_micros(50);

type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Jobs {
    queue: VecDeque<Job>,
    sleeping: usize,
}

#[derive(Default)]
struct Shared {
    jobs: Mutex<Jobs>,
    ready: Condvar,
    /// Jobs queued: read without the lock by the lingering thread.
    queued: AtomicUsize,
    /// Threads lingering now: at most one, so idle threads never crowd the
    /// cores the async side needs.
    lingering: AtomicUsize,
}

/// A fixed set of threads that run calls.
pub(crate) struct CallThreads {
    shared: Arc<Shared>,
}

impl CallThreads {
    /// `threads` threads, each with a `stack`-byte stack.
    ///
    /// # Errors
    ///
    /// When a thread cannot be started.
    pub fn start(threads: usize, stack: usize) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        for n in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("nexus-call-{n}"))
                .stack_size(stack)
                .spawn(move || shared.work())?;
        }
        Ok(Self { shared })
    }

    /// Runs `work` on a call thread, in the current span; answers what it
    /// returned.
    ///
    /// # Errors
    ///
    /// 500 `internal` if `work` panicked.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        self.shared.push(Box::new(move || {
            let done = std::panic::catch_unwind(AssertUnwindSafe(|| span.in_scope(work)));
            // The request may have gone; its answer is then dropped.
            let _ = answer.send(done);
        }));
        match answered.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) | Err(_) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the call's worker failed",
            )),
        }
    }
}

impl Shared {
    fn push(&self, job: Job) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.queue.push_back(job);
        self.queued.fetch_add(1, Relaxed);
        if jobs.sleeping > 0 {
            self.ready.notify_one();
        }
    }

    fn take(&self) -> Option<Job> {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let job = jobs.queue.pop_front()?;
        self.queued.fetch_sub(1, Relaxed);
        Some(job)
    }

    fn work(&self) {
        loop {
            if let Some(job) = self.take() {
                job();
                continue;
            }
            if self.lingering.fetch_add(1, Relaxed) == 0 {
                let since = Instant::now();
                while self.queued.load(Relaxed) == 0 && since.elapsed() < LINGER {
                    std::thread::yield_now();
                }
            }
            self.lingering.fetch_sub(1, Relaxed);
            if self.queued.load(Relaxed) > 0 {
                continue;
            }
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            while jobs.queue.is_empty() {
                jobs.sleeping += 1;
                jobs = self.ready.wait(jobs).unwrap_or_else(|e| e.into_inner());
                jobs.sleeping -= 1;
            }
        }
    }
}
