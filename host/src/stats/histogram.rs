//! Duration histograms in atomics: each observation is one bucket's
//! increment and one add to the sum, lock-free; a scrape reads them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the runtime-wide histograms' buckets, in seconds: 50 µs
/// (a prepared call) to 30 s (compiling a large bundle).
pub(crate) const RUNTIME_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds of a handler's call-duration buckets, in seconds: 10 µs to
/// 10 s (the longest `timeout_ms` allows is longer; those land in `+Inf`).
pub(crate) const HANDLER_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram of durations, over one of the bucket sets above.
pub(crate) struct Histogram {
    bounds: &'static [f64],
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// Empty, with buckets bounded by `bounds` (ascending, in seconds).
    pub fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let seconds = d.as_secs_f64();
        // Bounds ascend: the first at or above `seconds`, else `+Inf`.
        let bucket = self.bounds.partition_point(|&bound| bound < seconds);
        self.buckets[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    pub fn read(&self) -> Durations {
        let mut count = 0;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, n) in self.bounds.iter().zip(self.buckets.iter()) {
            count += n.load(Relaxed);
            buckets.push((*bound, count));
        }
        count += self.buckets[self.bounds.len()].load(Relaxed);
        Durations {
            buckets,
            count,
            sum_seconds: self.sum_nanos.load(Relaxed) as f64 / 1e9,
        }
    }
}

/// A duration histogram as read: cumulative counts per upper bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Durations {
    /// `(upper bound in seconds, observations at or below it)`, ascending;
    /// `+Inf` is [`count`](Self::count).
    pub buckets: Vec<(f64, u64)>,
    /// Every observation.
    pub count: u64,
    /// Their sum, in seconds.
    pub sum_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_counts_each_observation_once_in_its_bucket() {
        let h = Histogram::new(RUNTIME_BUCKETS);
        for ms in [0.01, 0.05, 0.3, 0.3, 7.0, 60_000.0] {
            h.observe(Duration::from_secs_f64(ms / 1000.0));
        }
        let read = h.read();
        assert_eq!(read.count, 6);
        let at = |bound: f64| read.buckets.iter().find(|(b, _)| *b == bound).unwrap().1;
        assert_eq!(at(0.000_05), 2, "a bound is inclusive");
        assert_eq!(at(0.000_5), 4);
        assert_eq!(at(0.01), 5);
        assert_eq!(at(30.0), 5, "a minute is only in +Inf");
        assert!(
            (read.sum_seconds - 60.007_66).abs() < 1e-6,
            "{}",
            read.sum_seconds
        );
    }

    #[test]
    fn the_bucket_sets_ascend_and_the_handlers_span_10_us_to_10_s() {
        for bounds in [RUNTIME_BUCKETS, HANDLER_BUCKETS] {
            assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{bounds:?}");
        }
        assert_eq!(HANDLER_BUCKETS.first(), Some(&0.000_01));
        assert_eq!(HANDLER_BUCKETS.last(), Some(&10.0));
    }
}
