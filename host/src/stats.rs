//! The runtime's own counters, and the one `runtime-stats` record built from
//! them and the cache's figures: what [`crate::Runtime::stats`] answers and
//! what a handler reads through the `stats` import (`Nexus.stats()`, served
//! by the engine's host state from [`Stats::record`]).
//!
//! Layer: imports `cache` and `bindings`. Only figures the runtime really
//! measures are reported.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use crate::bindings::{CacheStats, RuntimeStats, Tier};
use crate::cache::{Cache, Kind, TierStats};
use crate::error::{Error, Result};

/// Counters shared by every invocation of one runtime.
pub(crate) struct Stats {
    cache: Arc<Cache>,
    executions: AtomicU64,
    failures: AtomicU64,
    timeouts: AtomicU64,
}

impl Stats {
    pub fn new(cache: Arc<Cache>) -> Self {
        Self {
            cache,
            executions: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
        }
    }

    /// Counts one invocation and how it ended.
    pub fn executed<T>(&self, result: &Result<T>) {
        self.executions.fetch_add(1, Relaxed);
        match result {
            Ok(_) => {}
            Err(Error::Timeout { .. }) => {
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
    pub fn record(&self) -> RuntimeStats {
        RuntimeStats {
            bytecode: self.cache_stats(Kind::Bytecode),
            components: self.cache_stats(Kind::Component),
            compiles: self.cache.compiles(Kind::Bytecode),
            executions: self.executions.load(Relaxed),
            failures: self.failures.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
        }
    }

    fn cache_stats(&self, kind: Kind) -> CacheStats {
        CacheStats {
            memory: tier(self.cache.memory_stats(kind)),
            disk: tier(self.cache.disk_stats(kind)),
            hit_rate: self.cache.hit_rate(kind),
        }
    }
}

fn tier(t: TierStats) -> Tier {
    Tier {
        hits: t.hits,
        misses: t.misses,
        entries: t.entries,
        bytes: t.bytes,
        capacity_bytes: t.capacity_bytes,
        evictions: t.evictions,
    }
}
