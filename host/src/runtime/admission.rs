//! The bound on concurrent invocations: at most `max` at once; past it, a
//! caller waits up to `wait`, then gets [`Error::Busy`].

use std::sync::{Arc, Condvar, Mutex};
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

/// One admitted call; dropping it frees the slot. It owns its share of the
/// admission, so that it can outlive its call's frame (`super::later`).
pub(crate) struct Permit(Arc<Admission>);

impl Admission {
    pub fn new(max: u32, wait: Duration) -> Self {
        Self {
            max,
            wait,
            slots: Mutex::default(),
            freed: Condvar::new(),
        }
    }

    pub fn enter(self: &Arc<Self>) -> Result<Permit> {
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
        Ok(Permit(self.clone()))
    }

    /// Invocations running now.
    pub fn active(&self) -> u32 {
        self.slots.lock().unwrap().active
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut slots = self.0.slots.lock().unwrap();
        slots.active -= 1;
        if slots.waiting > 0 {
            self.0.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn past_the_bound_a_caller_waits_then_is_refused_as_busy() {
        let admission = Arc::new(Admission::new(2, Duration::from_millis(20)));
        let first = admission.enter().unwrap();
        let _second = admission.enter().unwrap();
        assert_eq!(admission.active(), 2);
        match admission.enter() {
            Err(Error::Busy {
                max_instances,
                waited,
            }) => {
                assert_eq!(max_instances, 2);
                assert!(waited >= Duration::from_millis(20), "{waited:?}");
            }
            other => panic!("expected busy, got {:?}", other.map(|_| ())),
        }
        drop(first);
        assert_eq!(admission.active(), 1);
        let _third = admission.enter().unwrap();
        assert_eq!(admission.active(), 2);
    }

    #[test]
    fn a_freed_slot_wakes_a_waiting_caller() {
        let admission = Arc::new(Admission::new(1, Duration::from_secs(60)));
        let held = admission.enter().unwrap();
        let (entered, waiting) = mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let _permit = admission.enter().unwrap();
                entered.send(()).unwrap();
            });
            // The waiter cannot get in while the slot is held.
            while admission.slots.lock().unwrap().waiting == 0 {
                std::thread::yield_now();
            }
            assert!(waiting.try_recv().is_err());
            drop(held);
            waiting.recv().unwrap();
        });
        assert_eq!(admission.active(), 0);
    }
}
