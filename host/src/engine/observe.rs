//! What a handler's top-level code observed of the world while it was
//! prepared: the clocks, randomness, or the runtime's figures.
//!
//! A wasm instance sees the world only through its imports, so watching the
//! imports is complete by construction: `Date.now()`, `new Date()` and
//! `performance.now()` reach WASI's clocks, `Math.random()` seeds itself
//! from WASI's randomness, and `Nexus.stats()` is the `stats` import. A
//! module whose top level touched none of them computes the same thing in
//! every instance, so a snapshot of it changes nothing a call can see.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx};

const CLOCK: u8 = 1;
const RANDOM: u8 = 2;
const STATS: u8 = 4;

/// What top-level code read that differs from one instance to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// A clock: `Date.now()`, `new Date()`, `performance.now()`.
    pub clock: bool,
    /// Randomness: `Math.random()`.
    pub random: bool,
    /// The runtime's figures: `Nexus.stats()`.
    pub stats: bool,
}

impl Observed {
    /// Nothing: a snapshot freezes only what every instance would compute.
    pub fn is_nothing(&self) -> bool {
        *self == Observed::default()
    }

    /// Why a snapshot would change what calls see, in words; `None` if it
    /// would not.
    pub fn reason(&self) -> Option<String> {
        let read: Vec<&str> = [
            (self.clock, "the clock (Date.now(), new Date())"),
            (self.random, "Math.random()"),
            (self.stats, "Nexus.stats()"),
        ]
        .iter()
        .filter(|(read, _)| *read)
        .map(|(_, what)| *what)
        .collect();
        (!read.is_empty()).then(|| {
            format!(
                "its top-level code read {}: a snapshot would freeze the value for every call",
                read.join(" and ")
            )
        })
    }

    /// One byte, for the cache.
    pub(crate) fn to_byte(self) -> u8 {
        (self.clock as u8 * CLOCK) | (self.random as u8 * RANDOM) | (self.stats as u8 * STATS)
    }

    /// The byte [`to_byte`](Self::to_byte) wrote; `None` for any other.
    pub(crate) fn from_byte(byte: u8) -> Option<Observed> {
        (byte & !(CLOCK | RANDOM | STATS) == 0).then_some(Observed {
            clock: byte & CLOCK != 0,
            random: byte & RANDOM != 0,
            stats: byte & STATS != 0,
        })
    }
}

/// Where a store's imports record what was read. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Watch(Arc<AtomicU8>);

impl Watch {
    fn mark(&self, bit: u8) {
        self.0.fetch_or(bit, Relaxed);
    }

    pub fn stats_read(&self) {
        self.mark(STATS);
    }

    pub fn observed(&self) -> Observed {
        Observed::from_byte(self.0.load(Relaxed)).expect("only known bits are set")
    }

    /// A WASI context whose clocks and randomness are the real ones, and
    /// record each read here.
    pub fn wasi(&self) -> WasiCtx {
        let wall = wasmtime_wasi::clocks::WallClock::new();
        let monotonic = wasmtime_wasi::clocks::MonotonicClock::new();
        WasiCtx::builder()
            .wall_clock(Recorded(wall, self.clone()))
            .monotonic_clock(Recorded(monotonic, self.clone()))
            .secure_random(Recorded(wasmtime_wasi::thread_rng(), self.clone()))
            .insecure_random(Recorded(wasmtime_wasi::thread_rng(), self.clone()))
            .build()
    }
}

/// A clock or a generator that marks its reads on a [`Watch`].
struct Recorded<T>(T, Watch);

impl<T: HostWallClock> HostWallClock for Recorded<T> {
    fn resolution(&self) -> Duration {
        self.0.resolution()
    }
    fn now(&self) -> Duration {
        self.1.mark(CLOCK);
        self.0.now()
    }
}

impl<T: HostMonotonicClock> HostMonotonicClock for Recorded<T> {
    fn resolution(&self) -> u64 {
        self.0.resolution()
    }
    fn now(&self) -> u64 {
        self.1.mark(CLOCK);
        self.0.now()
    }
}

impl<T: rand_core::Rng + ?Sized> rand_core::TryRng for Recorded<Box<T>> {
    type Error = std::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.1.mark(RANDOM);
        Ok(self.0.next_u32())
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.1.mark(RANDOM);
        Ok(self.0.next_u64())
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.1.mark(RANDOM);
        self.0.fill_bytes(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_byte_round_trips_and_unknown_bits_are_refused() {
        for byte in 0..8 {
            assert_eq!(Observed::from_byte(byte).unwrap().to_byte(), byte);
        }
        assert_eq!(Observed::from_byte(8), None);
        assert_eq!(Observed::default().reason(), None);
        let both = Observed {
            clock: true,
            stats: true,
            random: false,
        };
        let reason = both.reason().unwrap();
        assert!(reason.contains("Date.now()") && reason.contains("Nexus.stats()"));
        assert!(!reason.contains("Math.random"), "{reason}");
    }

    #[test]
    fn reads_are_recorded() {
        let watch = Watch::default();
        let clock = Recorded(wasmtime_wasi::clocks::WallClock::new(), watch.clone());
        assert!(watch.observed().is_nothing());
        let _ = clock.resolution();
        assert!(watch.observed().is_nothing(), "a resolution is no reading");
        let _ = clock.now();
        let mut rng = Recorded(wasmtime_wasi::thread_rng(), watch.clone());
        let _ = rand_core::Rng::next_u64(&mut rng);
        let seen = watch.observed();
        assert!(seen.clock && seen.random && !seen.stats, "{seen:?}");
    }
}
