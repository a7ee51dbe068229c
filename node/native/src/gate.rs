//! The slots a runtime's calls run in: at most `slots` at once; the rest
//! wait on their own thread, and [`Gate::shut`] turns them away (kind
//! `closed`) while the running ones finish.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

#[derive(Default)]
struct State {
    running: u32,
    closed: bool,
}

pub(crate) struct Gate {
    slots: u32,
    state: Mutex<State>,
    /// A slot came free (one waiter may take it), or the gate closed.
    freed: Condvar,
    /// The last running call finished after the gate closed.
    drained: Condvar,
}

/// A slot, given back when dropped.
pub(crate) struct Slot<'a>(&'a Gate);

/// The gate is closed: the call never started.
pub(crate) struct Closed;

impl Gate {
    pub fn new(slots: u32) -> Self {
        Self {
            slots,
            state: Mutex::default(),
            freed: Condvar::new(),
            drained: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is two plain fields, valid whoever panicked.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a slot; `Closed` if the gate is or becomes closed first.
    pub fn enter(&self) -> Result<Slot<'_>, Closed> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(Closed);
            }
            if state.running < self.slots {
                state.running += 1;
                return Ok(Slot(self));
            }
            state = self
                .freed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Closes the gate: waiters get `Closed` now, and so does every later
    /// call. Never blocks, so the JavaScript thread may call it.
    pub fn shut(&self) {
        self.lock().closed = true;
        self.freed.notify_all();
    }

    /// Waits until no call is running (after [`shut`](Self::shut)).
    pub fn drained(&self) {
        let mut state = self.lock();
        while state.running > 0 {
            state = self
                .drained
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.running -= 1;
        if state.closed {
            if state.running == 0 {
                self.0.drained.notify_all();
            }
        } else {
            self.0.freed.notify_one();
        }
    }
}
