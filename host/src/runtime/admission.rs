//! The bound on concurrent invocations: at most `max` at once; past it, a
//! caller waits up to `wait`, then gets [`Error::Busy`].

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

pub(crate) struct Admission {
    max: u32,
    wait: Duration,
    slots: Mutex<Slots>,
    freed: Condvar,
}

#[derive(Default)]
struct Slots {
    active: u32,
    // Callers blocked in `enter`: only then does a release need to wake
    // anyone (a `notify_one` is a syscall even with no waiter).
    waiting: u32,
}

/// One admitted call; dropping it frees the slot.
pub(crate) struct Permit<'a>(&'a Admission);

impl Admission {
    pub fn new(max: u32, wait: Duration) -> Self {
        Self {
            max,
            wait,
            slots: Mutex::default(),
            freed: Condvar::new(),
        }
    }

    pub fn enter(&self) -> Result<Permit<'_>> {
        let start = Instant::now();
        let mut slots = self.slots.lock().unwrap();
        while slots.active >= self.max {
            let left = self.wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(Error::Busy {
                    max_instances: self.max,
                    waited: start.elapsed(),
                });
            }
            slots.waiting += 1;
            slots = self.freed.wait_timeout(slots, left).unwrap().0;
            slots.waiting -= 1;
        }
        slots.active += 1;
        Ok(Permit(self))
    }

    /// Invocations running now.
    pub fn active(&self) -> u32 {
        self.slots.lock().unwrap().active
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut slots = self.0.slots.lock().unwrap();
        slots.active -= 1;
        if slots.waiting > 0 {
            self.0.freed.notify_one();
        }
    }
}
