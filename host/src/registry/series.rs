//! Which handlers the metrics name: the first `max_handler_series`
//! registered get series of their own; later ones are folded, their calls
//! counted under `_other` as well as in their own figures (which
//! `GET /handlers/{name}` shows), and each fold is counted.
//!
//! Invariant: at most `max_handler_series` registered handlers have series
//! of their own; with `_other`, a scrape names at most one more. Slots are
//! given out and taken back under the registry's write lock, never on the
//! call path.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use crate::stats::{HandlerFigures, HandlerSeries};

/// The label the folded handlers share.
pub const OTHER: &str = "_other";

pub(crate) struct SeriesSlots {
    max: usize,
    /// Registered handlers with series of their own.
    taken: AtomicUsize,
    other: Arc<HandlerSeries>,
    folded: AtomicU64,
}

impl SeriesSlots {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            taken: AtomicUsize::new(0),
            other: Arc::new(HandlerSeries::new()),
            folded: AtomicU64::new(0),
        }
    }

    /// A series for a newly registered name: its own while slots are
    /// left, else folded into `_other`. Called under the registry's write
    /// lock.
    pub fn take(&self) -> Arc<HandlerSeries> {
        if self.taken.load(Relaxed) < self.max {
            self.taken.fetch_add(1, Relaxed);
            Arc::new(HandlerSeries::new())
        } else {
            self.folded.fetch_add(1, Relaxed);
            Arc::new(HandlerSeries::folded_into(self.other.clone()))
        }
    }

    /// Gives back an unregistered handler's slot, if it had one. Called
    /// under the registry's write lock.
    pub fn give_back(&self, series: &HandlerSeries) {
        if !series.is_folded() {
            self.taken.fetch_sub(1, Relaxed);
        }
    }

    /// The folded handlers' calls, together.
    pub fn other(&self) -> HandlerFigures {
        self.other.figures()
    }

    /// Handlers folded into `_other` so far.
    pub fn folded(&self) -> u64 {
        self.folded.load(Relaxed)
    }
}
