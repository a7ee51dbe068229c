//! The runtime's own counters, and the `stats` import that shows them to
//! handlers as the WIT `runtime-stats` record.
//!
//! Only figures the runtime really measures are reported; the cache fields
//! stay zero until the caches exist.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::bindings::{CacheStats, RuntimeStats, Tier};

/// Counters shared by every invocation of one [`crate::Runtime`].
#[derive(Debug, Default)]
pub struct Counters {
    compiles: AtomicU64,
    executions: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
}

impl Counters {
    pub(crate) fn compiled(&self) {
        self.compiles.fetch_add(1, Relaxed);
    }

    pub(crate) fn executed(&self, ok: bool) {
        self.executions.fetch_add(1, Relaxed);
        if !ok {
            self.failures.fetch_add(1, Relaxed);
        }
    }

    /// The figures as the WIT record.
    pub fn snapshot(&self) -> RuntimeStats {
        RuntimeStats {
            bytecode: empty_cache(),
            components: empty_cache(),
            compiles: self.compiles.load(Relaxed),
            executions: self.executions.load(Relaxed),
            failures: self.failures.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
        }
    }
}

fn empty_cache() -> CacheStats {
    let tier = Tier {
        hits: 0,
        misses: 0,
        entries: 0,
        bytes: 0,
        capacity_bytes: 0,
        evictions: 0,
    };
    CacheStats {
        memory: tier,
        disk: tier,
        hit_rate: 0.0,
    }
}
