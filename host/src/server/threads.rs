//! The call threads and their queue: where invocations wait, and run, off
//! the async side. A few threads (one per core and one more) take calls
//! from one queue, in order, so that what bounds concurrency is what
//! admission counts:
//!
//! - a call runs only while its handler runs fewer than its share of the
//!   threads (`max_instances_per_handler`, and never every thread), so one
//!   flooded handler leaves threads for the others: a thread takes the
//!   first call in the queue whose handler has room;
//! - past `max_queued` calls waiting (beyond the threads free now), a call
//!   is answered 503 `busy` at once;
//! - a call not started within `queue_timeout_ms` gets 503 `busy`, naming
//!   the time it waited;
//! - a caller that goes away leaves the queue: its call never starts.
//!
//! The queue is the threads' own: a thread that finishes a call takes the
//! next one at once, with no round trip through the async side. One that
//! finds none looks again for a moment ([`LINGER`], yielding the core; one
//! thread at a time) before it sleeps: waking a sleeping thread (a futex,
//! and a context switch on each side) costs more than a trivial handler's
//! whole call.
//!
//! A call's fresh instance is torn down after its answer is sent
//! ([`DeferTeardown`]), before its thread looks for the next call.
//!
//! Invariants: a call is either taken by exactly one thread or abandoned by
//! its caller, never both (its ticket changes once); a thread sleeps only
//! under the queue's lock after finding no call it may take, and a call is
//! queued under that lock and wakes a sleeper, so no call waits while a
//! thread that could take it sleeps. A call that panics is answered as the
//! host's failure; its thread goes on.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use nexus_host::DeferTeardown;

use super::errors::ApiError;
use super::log_batch;

/// How long a thread that found no call looks again before it sleeps.
const LINGER: Duration = Duration::from_micros(50);

/// A call's ticket: waiting, then taken by a thread or abandoned by its
/// caller, once.
const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const ABANDONED: u8 = 2;

struct Job {
    handler: Arc<str>,
    ticket: Arc<AtomicU8>,
    /// Runs the call; calls its argument (the thread's place is free
    /// again) before the caller is answered, so that a caller's next call
    /// finds the thread free.
    run: Run,
}

/// A call, and what it calls once its thread is free again.
type Run = Box<dyn FnOnce(&dyn Fn()) + Send>;

#[derive(Default)]
struct Queue {
    waiting: VecDeque<Job>,
    /// Calls running now, by handler.
    running: HashMap<Arc<str>, usize>,
    running_total: usize,
    sleeping: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Calls waiting: read without the lock by the lingering thread.
    queued: AtomicUsize,
    /// Threads lingering now: at most one, so idle threads never crowd the
    /// cores the async side needs.
    lingering: AtomicUsize,
    threads: usize,
    share: usize,
    max_queued: usize,
    wait: Duration,
}

/// The call threads, and the calls waiting for them.
pub(crate) struct CallThreads {
    shared: Arc<Shared>,
}

impl CallThreads {
    /// `threads` threads, each with a `stack`-byte stack; `share` is
    /// `max_instances_per_handler` (0: half the threads, rounded up), never
    /// every thread.
    ///
    /// # Errors
    ///
    /// When a thread cannot be started.
    pub fn start(
        threads: usize,
        stack: usize,
        share: u32,
        max_queued: u32,
        wait: Duration,
    ) -> std::io::Result<Self> {
        let share = match share as usize {
            0 => threads.div_ceil(2),
            n => n,
        };
        let shared = Arc::new(Shared {
            queue: Mutex::default(),
            ready: Condvar::new(),
            queued: AtomicUsize::new(0),
            lingering: AtomicUsize::new(0),
            threads,
            share: share.min(threads.saturating_sub(1)).max(1),
            max_queued: max_queued as usize,
            wait,
        });
        for n in 0..threads {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("nexus-call-{n}"))
                .stack_size(stack)
                .spawn(move || {
                    // A call's log lines are written together.
                    log_batch::flush_and_batch();
                    shared.work()
                })?;
        }
        Ok(Self { shared })
    }

    /// Runs `work`, a call of `handler`, on a call thread once the queue
    /// lets it, in the current span; answers what it returned.
    ///
    /// # Errors
    ///
    /// 503 `busy` when the queue is full, or the call did not start within
    /// `queue_timeout_ms`; 500 `internal` if `work` panicked.
    pub async fn call<T: Send + 'static>(
        &self,
        handler: &str,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let start = Instant::now();
        let (answer, mut answered) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let ticket = Arc::new(AtomicU8::new(WAITING));
        let job = Job {
            handler: handler.into(),
            ticket: ticket.clone(),
            run: Box::new(move |finished| {
                let done = std::panic::catch_unwind(AssertUnwindSafe(|| span.in_scope(work)));
                finished();
                // The request may have gone; its answer is then dropped.
                let _ = answer.send(done);
            }),
        };
        self.shared.push(job)?;
        // A caller that goes away (this future dropped) leaves the queue.
        let _leave = Leave(ticket.clone());
        let done = match tokio::time::timeout(self.shared.wait, &mut answered).await {
            Ok(done) => done,
            Err(_) if abandon(&ticket) => return Err(self.shared.timed_out(handler, start)),
            // Taken just as its time ran out: it runs, and answers.
            Err(_) => answered.await,
        };
        match done {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) | Err(_) => Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the call's worker failed",
            )),
        }
    }
}

/// Marks a waiting call abandoned; answers whether it was still waiting.
fn abandon(ticket: &AtomicU8) -> bool {
    ticket
        .compare_exchange(WAITING, ABANDONED, SeqCst, SeqCst)
        .is_ok()
}

struct Leave(Arc<AtomicU8>);

impl Drop for Leave {
    fn drop(&mut self) {
        abandon(&self.0);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, job: Job) -> Result<(), ApiError> {
        let mut queue = self.lock();
        // Calls that will get a thread at once do not count as waiting.
        let free = self.threads.saturating_sub(queue.running_total);
        if queue.waiting.len() >= self.max_queued + free {
            return Err(ApiError::busy(format!(
                "all {} call threads are busy and {} calls already wait (max_queued); retry later",
                self.threads, self.max_queued
            )));
        }
        queue.waiting.push_back(job);
        self.queued.fetch_add(1, Relaxed);
        if queue.sleeping > 0 {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// Why a call did not start in time: its handler's share was full, or
    /// every thread was.
    fn timed_out(&self, handler: &str, start: Instant) -> ApiError {
        let running = self.lock().running.get(handler).copied().unwrap_or(0);
        let waited = start.elapsed().as_millis();
        ApiError::busy(match running >= self.share {
            true => format!(
                "{handler:?} already runs its share of the call threads ({}, max_instances_per_handler); waited {waited} ms (queue_timeout_ms); retry later",
                self.share
            ),
            false => format!(
                "all {} call threads stayed busy; waited {waited} ms (queue_timeout_ms); retry later",
                self.threads
            ),
        })
    }

    /// The first call whose handler has room, taken; abandoned calls met
    /// on the way are dropped.
    fn take(&self, queue: &mut Queue) -> Option<Job> {
        let mut at = 0;
        while at < queue.waiting.len() {
            let job = &queue.waiting[at];
            if job.ticket.load(SeqCst) == ABANDONED {
                queue.waiting.remove(at);
                self.queued.fetch_sub(1, Relaxed);
                continue;
            }
            if queue.running.get(&job.handler).copied().unwrap_or(0) < self.share {
                let job = queue.waiting.remove(at).expect("in range");
                self.queued.fetch_sub(1, Relaxed);
                let taken = job
                    .ticket
                    .compare_exchange(WAITING, TAKEN, SeqCst, SeqCst)
                    .is_ok();
                if !taken {
                    continue;
                }
                *queue.running.entry(job.handler.clone()).or_default() += 1;
                queue.running_total += 1;
                return Some(job);
            }
            at += 1;
        }
        None
    }

    fn work(&self) {
        loop {
            let mut queue = self.lock();
            let mut lingered = false;
            let job = loop {
                if let Some(job) = self.take(&mut queue) {
                    break job;
                }
                if !lingered {
                    drop(queue);
                    self.linger();
                    lingered = true;
                    queue = self.lock();
                    continue;
                }
                queue.sleeping += 1;
                queue = self.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
                queue.sleeping -= 1;
            };
            drop(queue);
            let handler = job.handler.clone();
            // The call's instance is torn down after its answer is sent.
            let later = DeferTeardown::start();
            // The call's own lines are written before its answer is sent,
            // and so before its access line.
            (job.run)(&|| {
                self.finished(&handler);
                log_batch::flush();
            });
            drop(later);
            log_batch::flush();
        }
    }

    /// Looks for a call a moment before sleeping, if no other thread does.
    fn linger(&self) {
        if self.lingering.fetch_add(1, Relaxed) == 0 {
            let since = Instant::now();
            while self.queued.load(Relaxed) == 0 && since.elapsed() < LINGER {
                std::thread::yield_now();
            }
        }
        self.lingering.fetch_sub(1, Relaxed);
    }

    /// A call of `handler` ended: its place in the share is free, and a call
    /// that waited for it may now run on a thread that sleeps.
    fn finished(&self, handler: &str) {
        let mut queue = self.lock();
        queue.running_total -= 1;
        if let Some(n) = queue.running.get_mut(handler) {
            *n -= 1;
            if *n == 0 {
                queue.running.remove(handler);
            }
        }
        if queue.sleeping > 0 && !queue.waiting.is_empty() {
            self.ready.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;

    use super::*;

    fn threads(n: usize, share: u32, max_queued: u32) -> CallThreads {
        CallThreads::start(n, 256 << 10, share, max_queued, Duration::from_secs(30)).unwrap()
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// A call that holds its thread until told to end.
    fn held(
        pool: &Arc<CallThreads>,
        handler: &'static str,
    ) -> (mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (release, released) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        let pool = pool.clone();
        let caller = std::thread::spawn(move || {
            block_on(pool.call(handler, move || {
                started.send(()).unwrap();
                released.recv().unwrap();
            }))
            .map_err(|_| ())
            .unwrap();
        });
        running.recv().unwrap();
        (release, caller)
    }

    #[test]
    fn a_call_whose_caller_went_away_never_starts() {
        let pool = Arc::new(threads(1, 1, 10));
        let (release, caller) = held(&pool, "slow");
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        // Queued behind the held call, then given up on.
        let gave_up = block_on(async {
            let call = pool.call("other", move || flag.store(true, SeqCst));
            tokio::time::timeout(Duration::from_millis(50), call).await
        });
        assert!(gave_up.is_err(), "it waited for the only thread");
        release.send(()).unwrap();
        caller.join().unwrap();
        // The thread is free again, and took the next call, not that one.
        assert_eq!(block_on(pool.call("other", || 7)).map_err(|_| ()), Ok(7));
        assert!(!ran.load(SeqCst), "an abandoned call ran");
    }

    #[test]
    fn a_handler_runs_its_share_of_the_threads_and_others_pass_it() {
        // Two threads, a share of one: a second call of `slow` waits while
        // `quick` runs beside the first.
        let pool = Arc::new(threads(2, 1, 10));
        let (release, caller) = held(&pool, "slow");
        let second = {
            let pool = pool.clone();
            std::thread::spawn(move || block_on(pool.call("slow", || 2)).map_err(|_| ()))
        };
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(block_on(pool.call("quick", || 1)).map_err(|_| ()), Ok(1));
        assert!(
            !second.is_finished(),
            "slow's second call ran past its share"
        );
        release.send(()).unwrap();
        caller.join().unwrap();
        assert_eq!(second.join().unwrap(), Ok(2));
    }

    #[test]
    fn past_max_queued_a_call_is_refused_at_once() {
        let pool = Arc::new(threads(1, 1, 0));
        let (release, caller) = held(&pool, "slow");
        let refused = block_on(pool.call("other", || ()));
        assert!(refused.is_err(), "no thread free and no place to wait");
        release.send(()).unwrap();
        caller.join().unwrap();
        assert!(block_on(pool.call("other", || ())).is_ok());
    }

    #[test]
    fn a_call_that_panics_is_answered_and_its_thread_goes_on() {
        let pool = threads(1, 1, 10);
        assert!(block_on(pool.call("bad", || panic!("handler host bug"))).is_err());
        assert_eq!(block_on(pool.call("good", || 3)).map_err(|_| ()), Ok(3));
    }
}
