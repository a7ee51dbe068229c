//! The runtime's own figures, and the `stats` import that shows them to
//! handlers as the WIT `runtime-stats` record.
//!
//! Only figures the runtime really measures are reported.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::bindings::RuntimeStats;
use crate::cache::{Cache, Kind};

/// Counters shared by every invocation of one [`crate::Runtime`].
pub struct Stats {
    cache: Arc<Cache>,
    executions: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
}

impl Stats {
    pub(crate) fn new(cache: Arc<Cache>) -> Self {
        Self {
            cache,
            executions: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        }
    }

    pub(crate) fn executed<T>(&self, result: &crate::Result<T>) {
        self.executions.fetch_add(1, Relaxed);
        match result {
            Ok(_) => {}
            Err(crate::Error::Timeout { .. }) => {
                self.failures.fetch_add(1, Relaxed);
                self.timeouts.fetch_add(1, Relaxed);
            }
            Err(_) => {
                self.failures.fetch_add(1, Relaxed);
            }
        }
    }

    /// The figures as the WIT record. `compiles` counts handler sources
    /// compiled to bytecode (cache misses), not lookups.
    pub fn snapshot(&self) -> RuntimeStats {
        RuntimeStats {
            bytecode: self.cache.stats(Kind::Bytecode),
            components: self.cache.stats(Kind::Component),
            compiles: self.cache.compiles(Kind::Bytecode),
            executions: self.executions.load(Relaxed),
            failures: self.failures.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
        }
    }
}
