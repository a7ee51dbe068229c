//! Teardown after the answer. A call's fresh instance must be torn down
//! (its pool slot's memory and tables reset) before the slot serves
//! another, but not before its caller has the answer: a thread that holds a
//! [`DeferTeardown`] parks each of its calls' instances, and tears them down
//! when the guard drops, after it has sent the answer.
//!
//! Invariants:
//! - A parked instance keeps its call's admission permit until it is torn
//!   down, so `max_instances` bounds the instances alive, parked ones
//!   included, and no call can find the pool exhausted.
//! - Parking is per thread, and only under a guard: a thread that never
//!   takes one tears each instance down in its call, as before.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use super::admission::Permit;
use crate::engine::Teardown;

thread_local! {
    static DEFERRING: Cell<bool> = const { Cell::new(false) };
    // Kept between guards, so that parking allocates only once a thread.
    static PARKED: RefCell<Vec<(Teardown, Permit)>> = const { RefCell::new(Vec::new()) };
}

/// While it lives, the calls this thread runs through a
/// [`Runtime`](crate::Runtime) leave their instance's teardown to it: its
/// drop tears them down, in order. Hold one around a call and whatever
/// sends its answer, then drop it: the answer goes out without waiting for
/// the reset (about 5 µs for a small handler, tens of µs for one that
/// dirtied a large heap). Nested guards defer to the outermost.
///
/// ```
/// # fn answer(_: nexus_host::Result<nexus_host::Invocation>) {}
/// # fn main() -> nexus_host::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let config = nexus_host::Config { cache_dir: dir.path().into(), ..Default::default() };
/// let runtime = nexus_host::Runtime::new(config)?;
/// let handler = runtime.compile("echo", "export default (ctx) => ctx")?;
/// let later = nexus_host::DeferTeardown::start();
/// answer(runtime.invoke(&handler, r#"{"a":1}"#));
/// drop(later); // the instance is torn down here, after the answer
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping it at once defers nothing"]
pub struct DeferTeardown {
    outermost: bool,
    // Tied to the thread whose calls it parks.
    _thread: PhantomData<*const ()>,
}

impl DeferTeardown {
    /// Starts deferring this thread's teardowns.
    pub fn start() -> Self {
        let outermost = !DEFERRING.replace(true);
        Self {
            outermost,
            _thread: PhantomData,
        }
    }
}

impl Drop for DeferTeardown {
    fn drop(&mut self) {
        if !self.outermost {
            return;
        }
        DEFERRING.set(false);
        // Taken out first: no borrow of the thread-local is held while the
        // stores and permits drop.
        let mut parked = PARKED.with_borrow_mut(std::mem::take);
        parked.clear();
        PARKED.with_borrow_mut(|slot| {
            if slot.capacity() == 0 {
                *slot = parked;
            }
        });
    }
}

impl std::fmt::Debug for DeferTeardown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeferTeardown")
            .field("outermost", &self.outermost)
            .finish()
    }
}

/// Tears `teardown` down now and then frees `permit`, answering the time
/// the teardown took; or, under a [`DeferTeardown`], parks both and answers
/// zero.
pub(super) fn tear_down(teardown: Teardown, permit: Permit) -> Duration {
    if DEFERRING.get() {
        PARKED.with_borrow_mut(|parked| parked.push((teardown, permit)));
        return Duration::ZERO;
    }
    let start = Instant::now();
    drop(teardown);
    let took = start.elapsed();
    drop(permit);
    took
}
