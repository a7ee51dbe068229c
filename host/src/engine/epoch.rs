//! Epoch interruption: a ticker thread advances the engine's epoch once
//! per [`TICK`] of elapsed time, and a timeout is a deadline counted in
//! ticks, checked against the clock when it comes (`store::on_deadline`).
//!
//! Invariants:
//! - The epoch follows the monotonic clock: a sleep that overslept is made
//!   up with several ticks at once, so a loaded machine does not stretch
//!   deadlines.
//! - A call is never interrupted before its timeout by the clock, and is
//!   interrupted within about a tick after it (plus the time its thread
//!   waits for a core).
//! - The ticker holds only a weak reference and a stop flag: it ends when
//!   the [`Ticker`] is dropped (with the runtime), never keeping the engine
//!   alive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wasmtime::Engine;

/// The epoch ticker's period: the resolution of timeouts.
pub(crate) const TICK: Duration = Duration::from_millis(1);

/// A deadline no call reaches: about 35 years of ticks. Far below
/// `u64::MAX`, since wasmtime adds the deadline to the current epoch.
pub(crate) const NEVER: u64 = 1 << 40;

/// `timeout` in ticks, at least one, at most [`NEVER`].
pub(crate) fn ticks(timeout: Duration) -> u64 {
    let ticks = timeout.as_nanos().div_ceil(TICK.as_nanos()).max(1);
    u64::try_from(ticks).unwrap_or(NEVER).min(NEVER)
}

/// Advances the engine's epoch every [`TICK`] until dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts ticking `engine`'s epoch.
    pub fn start(engine: &Engine) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = engine.weak();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("nexus-epoch".into())
            .spawn(move || {
                let start = Instant::now();
                let mut ticked: u64 = 0;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    let Some(engine) = weak.upgrade() else { break };
                    // Ticks count elapsed time, not sleeps: a sleep that ran
                    // long (a loaded machine) is made up at once.
                    let due = start.elapsed().as_nanos() / TICK.as_nanos();
                    let due = u64::try_from(due).unwrap_or(u64::MAX);
                    while ticked < due {
                        engine.increment_epoch();
                        ticked += 1;
                    }
                }
            })
            .expect("spawn the epoch ticker");
        Ticker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_round_up_and_saturate() {
        assert_eq!(ticks(Duration::ZERO), 1);
        assert_eq!(ticks(Duration::from_micros(1)), 1);
        assert_eq!(ticks(Duration::from_millis(1)), 1);
        assert_eq!(ticks(Duration::from_micros(1500)), 2);
        assert_eq!(ticks(Duration::from_secs(30)), 30_000);
        assert_eq!(ticks(Duration::MAX), NEVER);
    }
}
