//! The call queue. Invocations and compiles run on a few threads (one per
//! core and one more); a call waits here, on the async side, for one of
//! them, so that what bounds concurrency is what admission counts:
//!
//! - a call gets a thread at once, or joins the queue;
//! - past `max_queued` waiting calls, it is answered 503 `busy` at once;
//! - a call that waited `queue_timeout_ms` for a thread gets 503 `busy`,
//!   naming the time it really waited;
//! - a caller that goes away leaves the queue (its future is dropped).
//!
//! Compiles take a thread from the same pool of permits, after a compile
//! slot (one fewer than the threads), so they never take every thread.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::errors::ApiError;

pub(crate) struct CallQueue {
    threads: usize,
    permits: Arc<Semaphore>,
    compiles: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queued: usize,
    wait: Duration,
}

/// A thread (and, for a compile, a compile slot) held until dropped.
pub(crate) struct Held {
    _thread: OwnedSemaphorePermit,
    _compile: Option<OwnedSemaphorePermit>,
}

impl CallQueue {
    pub fn new(threads: usize, max_queued: u32, wait: Duration) -> Self {
        Self {
            threads,
            permits: Arc::new(Semaphore::new(threads)),
            compiles: Arc::new(Semaphore::new(threads.saturating_sub(1).max(1))),
            waiting: AtomicUsize::new(0),
            max_queued: max_queued as usize,
            wait,
        }
    }

    /// A thread for one invocation.
    ///
    /// # Errors
    ///
    /// 503 `busy` when the queue is full, or no thread frees up within
    /// `queue_timeout_ms`.
    pub async fn call(&self) -> Result<Held, ApiError> {
        Ok(Held {
            _thread: self.thread().await?,
            _compile: None,
        })
    }

    /// A compile slot, then a thread: for one registration. A compile
    /// waits for its slot as long as it takes (its client may go).
    ///
    /// # Errors
    ///
    /// As [`call`](Self::call), once it has its slot.
    pub async fn compile(&self) -> Result<Held, ApiError> {
        let slot = self.compiles.clone().acquire_owned().await;
        let slot = slot.expect("the semaphore is never closed");
        Ok(Held {
            _thread: self.thread().await?,
            _compile: Some(slot),
        })
    }

    async fn thread(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let queued = self.waiting.fetch_add(1, Relaxed) + 1;
        let _leave = Leave(&self.waiting);
        if queued > self.max_queued {
            return Err(ApiError::busy(format!(
                "all {} call threads are busy and {} calls already wait (max_queued); retry later",
                self.threads, self.max_queued
            )));
        }
        let start = Instant::now();
        match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned()).await {
            Ok(permit) => Ok(permit.expect("the semaphore is never closed")),
            Err(_) => Err(ApiError::busy(format!(
                "all {} call threads stayed busy; waited {} ms (queue_timeout_ms); retry later",
                self.threads,
                start.elapsed().as_millis()
            ))),
        }
    }
}

/// One caller in the queue; dropping it (the call got a thread, gave up,
/// or its client went) leaves the queue.
struct Leave<'a>(&'a AtomicUsize);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}
