//! The compile queue. Registrations compile on the blocking pool, one
//! fewer at once than there are call threads (one per core and one more),
//! so compiles never take every core from the calls; a compile waits for
//! its slot as long as it takes (its client may go). Calls queue on the
//! call threads themselves ([`super::threads`]).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub(crate) struct CompileQueue {
    slots: Arc<Semaphore>,
}

impl CompileQueue {
    /// Compiles beside `threads` call threads.
    pub fn new(threads: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(threads.saturating_sub(1).max(1))),
        }
    }

    /// A compile slot, held until dropped: for one registration.
    pub async fn slot(&self) -> OwnedSemaphorePermit {
        let slot = self.slots.clone().acquire_owned().await;
        slot.expect("the semaphore is never closed")
    }
}
