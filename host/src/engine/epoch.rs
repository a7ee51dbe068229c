//! Epoch interruption: a ticker thread advances the engine's epoch every
//! [`TICK`], and a timeout is a deadline counted in ticks.
//!
//! Invariants:
//! - A deadline of `n` ticks traps within `n + 1` ticks of the call
//!   starting.
//! - The ticker holds only a weak reference and a stop flag: it ends when
//!   the [`Ticker`] is dropped (with the runtime), never keeping the engine
//!   alive.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

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
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
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
