//! The call queue. Invocations and compiles run on a few threads (one per
//! core and one more); a call waits here, on the async side, for one of
//! them, so that what bounds concurrency is what admission counts:
//!
//! - a call first takes a place in its handler's share
//!   (`max_instances_per_handler`, and never every thread), so one flooded
//!   handler leaves threads for the others;
//! - then a thread, at once, or it joins the queue;
//! - past `max_queued` waiting calls, it is answered 503 `busy` at once;
//! - a call that waited `queue_timeout_ms` in all (for its share and a
//!   thread) gets 503 `busy`, naming the time it really waited;
//! - a caller that goes away leaves the queue (its future is dropped).
//!
//! Compiles take a thread from the same pool of permits, after a compile
//! slot (one fewer than the threads), so they never take every thread.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::errors::ApiError;

/// Handlers' shares kept while idle, before the idle ones are dropped.
const IDLE_SHARES: usize = 1024;

pub(crate) struct CallQueue {
    threads: usize,
    permits: Arc<Semaphore>,
    compiles: Arc<Semaphore>,
    /// Each handler's share of the threads, by name.
    shares: Mutex<HashMap<String, Arc<Semaphore>>>,
    share: usize,
    waiting: AtomicUsize,
    max_queued: usize,
    wait: Duration,
}

/// A thread (and, for a compile, a compile slot; for a call, a place in
/// its handler's share) held until dropped.
pub(crate) struct Held {
    _thread: OwnedSemaphorePermit,
    _other: Option<OwnedSemaphorePermit>,
}

impl CallQueue {
    /// `share` is `max_instances_per_handler` (0: half the threads, rounded
    /// up); it never reaches every thread.
    pub fn new(threads: usize, share: u32, max_queued: u32, wait: Duration) -> Self {
        let share = match share as usize {
            0 => threads.div_ceil(2),
            n => n,
        };
        Self {
            threads,
            permits: Arc::new(Semaphore::new(threads)),
            compiles: Arc::new(Semaphore::new(threads.saturating_sub(1).max(1))),
            shares: Mutex::new(HashMap::new()),
            share: share.min(threads.saturating_sub(1)).max(1),
            waiting: AtomicUsize::new(0),
            max_queued: max_queued as usize,
            wait,
        }
    }

    /// A place in `handler`'s share, then a thread: for one invocation.
    ///
    /// # Errors
    ///
    /// 503 `busy` when the queue is full, or the share and a thread were not
    /// both had within `queue_timeout_ms`.
    pub async fn call(&self, handler: &str) -> Result<Held, ApiError> {
        let start = Instant::now();
        let share = self.share_of(handler);
        let share = match share.clone().try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                let _queued = self.join()?;
                match tokio::time::timeout(self.wait, share.acquire_owned()).await {
                    Ok(place) => place.expect("the semaphore is never closed"),
                    Err(_) => {
                        return Err(ApiError::busy(format!(
                            "{handler:?} already runs its share of the call threads ({}, max_instances_per_handler); waited {} ms (queue_timeout_ms); retry later",
                            self.share,
                            start.elapsed().as_millis()
                        )))
                    }
                }
            }
        };
        Ok(Held {
            _thread: self.thread(start).await?,
            _other: Some(share),
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
            _thread: self.thread(Instant::now()).await?,
            _other: Some(slot),
        })
    }

    /// A thread, waiting at most what is left of `queue_timeout_ms` since
    /// `start`.
    async fn thread(&self, start: Instant) -> Result<OwnedSemaphorePermit, ApiError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let _queued = self.join()?;
        let left = self.wait.saturating_sub(start.elapsed());
        match tokio::time::timeout(left, self.permits.clone().acquire_owned()).await {
            Ok(permit) => Ok(permit.expect("the semaphore is never closed")),
            Err(_) => Err(ApiError::busy(format!(
                "all {} call threads stayed busy; waited {} ms (queue_timeout_ms); retry later",
                self.threads,
                start.elapsed().as_millis()
            ))),
        }
    }

    /// A place in the queue, or 503 `busy` when `max_queued` wait already.
    fn join(&self) -> Result<Leave<'_>, ApiError> {
        let queued = self.waiting.fetch_add(1, Relaxed) + 1;
        let leave = Leave(&self.waiting);
        if queued > self.max_queued {
            return Err(ApiError::busy(format!(
                "all {} call threads are busy and {} calls already wait (max_queued); retry later",
                self.threads, self.max_queued
            )));
        }
        Ok(leave)
    }

    /// `handler`'s share; the shares of idle handlers are forgotten once
    /// there are many.
    fn share_of(&self, handler: &str) -> Arc<Semaphore> {
        let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(share) = shares.get(handler) {
            return share.clone();
        }
        if shares.len() >= IDLE_SHARES {
            // Held by nobody but the map: no call has or awaits a place.
            shares.retain(|_, share| Arc::strong_count(share) > 1);
        }
        let share = Arc::new(Semaphore::new(self.share));
        shares.insert(handler.to_owned(), share.clone());
        share
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
