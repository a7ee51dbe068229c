//! One handler's series: its calls by outcome, how long they took and how
//! its console lines fared, in atomics.
//!
//! Invariant: a call adds to its handler's series (and, for a handler
//! folded past `max_handler_series`, to the shared `_other` series) without
//! taking a lock: calls of other handlers never wait on it.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use super::histogram::{Durations, Histogram, HANDLER_BUCKETS};
use super::{outcome, outcomes, OUTCOMES};
use crate::engine::{ConsoleCounts, ConsoleSink};
use crate::error::Result;

/// One handler's counters.
pub(crate) struct HandlerSeries {
    /// By outcome: `ok` first, then [`crate::Error::KINDS`].
    outcomes: [AtomicU64; OUTCOMES],
    seconds: Histogram,
    lines: AtomicU64,
    suppressed: AtomicU64,
    dropped: AtomicU64,
    /// The series this handler's calls count in too, when it is folded.
    fold: Option<Arc<HandlerSeries>>,
}

impl HandlerSeries {
    /// A series of its own.
    pub fn new() -> Self {
        Self {
            outcomes: Default::default(),
            seconds: Histogram::new(HANDLER_BUCKETS),
            lines: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            fold: None,
        }
    }

    /// A handler's own series that also counts in `shared` (`_other`).
    pub fn folded_into(shared: Arc<HandlerSeries>) -> Self {
        Self {
            fold: Some(shared),
            ..Self::new()
        }
    }

    /// Whether its calls count in a shared series too.
    pub fn is_folded(&self) -> bool {
        self.fold.is_some()
    }

    /// Counts one call, how it ended and how long it took in its instance.
    pub fn invoked<T>(&self, result: &Result<T>, took: Duration) {
        self.outcomes[outcome(result)].fetch_add(1, Relaxed);
        self.seconds.observe(took);
        if let Some(shared) = &self.fold {
            shared.invoked(result, took);
        }
    }

    /// The counters as read now.
    pub fn figures(&self) -> HandlerFigures {
        HandlerFigures {
            invocations: outcomes()
                .zip(&self.outcomes)
                .map(|(kind, n)| (kind, n.load(Relaxed)))
                .collect(),
            seconds: self.seconds.read(),
            console: ConsoleCounts {
                lines: self.lines.load(Relaxed),
                suppressed: self.suppressed.load(Relaxed),
                dropped: self.dropped.load(Relaxed),
            },
        }
    }
}

impl ConsoleSink for HandlerSeries {
    fn count(&self, counts: ConsoleCounts) {
        // Most calls write nothing: no shared cache line is touched then.
        if counts == ConsoleCounts::default() {
            return;
        }
        self.lines.fetch_add(counts.lines, Relaxed);
        self.suppressed.fetch_add(counts.suppressed, Relaxed);
        self.dropped.fetch_add(counts.dropped, Relaxed);
        if let Some(shared) = &self.fold {
            shared.count(counts);
        }
    }
}

/// A handler's figures, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerFigures {
    /// Calls by outcome: `ok`, then each [`crate::Error::kind`], zeros
    /// included.
    pub invocations: Vec<(&'static str, u64)>,
    /// How long calls took in their instance, whatever their outcome.
    pub seconds: Durations,
    /// Its console lines: written, suppressed, dropped.
    pub console: ConsoleCounts,
}

impl HandlerFigures {
    /// Calls that ended with an error.
    pub fn errors(&self) -> u64 {
        self.invocations
            .iter()
            .filter(|(kind, _)| *kind != "ok")
            .map(|(_, n)| n)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn a_folded_series_counts_in_the_shared_one_too() {
        let shared = Arc::new(HandlerSeries::new());
        let a = HandlerSeries::folded_into(shared.clone());
        let b = HandlerSeries::folded_into(shared.clone());
        let own = HandlerSeries::new();
        a.invoked(&Ok(()), Duration::from_micros(20));
        b.invoked::<()>(
            &Err(Error::Timeout {
                limit: Duration::ZERO,
            }),
            Duration::from_secs(1),
        );
        own.invoked(&Ok(()), Duration::ZERO);
        let lines = ConsoleCounts {
            lines: 3,
            suppressed: 1,
            dropped: 0,
        };
        a.count(lines);
        let count = |f: &HandlerFigures, kind: &str| {
            f.invocations.iter().find(|(k, _)| *k == kind).unwrap().1
        };
        let total = shared.figures();
        assert_eq!((count(&total, "ok"), count(&total, "timeout")), (1, 1));
        assert_eq!((total.errors(), total.seconds.count), (1, 2));
        assert_eq!(total.console, lines);
        let a = a.figures();
        assert_eq!((count(&a, "ok"), a.errors(), a.console.lines), (1, 0, 3));
        assert_eq!(own.figures().seconds.count, 1);
        assert!(!own.is_folded() && !shared.is_folded());
    }
}
