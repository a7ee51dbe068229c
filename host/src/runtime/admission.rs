//! The bound on concurrent invocations: at most `max` at once; past it, a
//! caller waits up to `wait`, then gets [`Error::Busy`].

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

pub(crate) struct Admission {
    max: u32,
    wait: Duration,
    active: Mutex<u32>,
    freed: Condvar,
}

/// One admitted call; dropping it frees the slot.
pub(crate) struct Permit<'a>(&'a Admission);

impl Admission {
    pub fn new(max: u32, wait: Duration) -> Self {
        Self {
            max,
            wait,
            active: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    pub fn enter(&self) -> Result<Permit<'_>> {
        let start = Instant::now();
        let mut active = self.active.lock().unwrap();
        while *active >= self.max {
            let left = self.wait.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(Error::Busy {
                    max_instances: self.max,
                    waited: start.elapsed(),
                });
            }
            active = self.freed.wait_timeout(active, left).unwrap().0;
        }
        *active += 1;
        Ok(Permit(self))
    }

    /// Invocations running now.
    pub fn active(&self) -> u32 {
        *self.active.lock().unwrap()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.active.lock().unwrap() -= 1;
        self.0.freed.notify_one();
    }
}
