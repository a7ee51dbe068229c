//! The runtime's own counters, and what is built from them and the cache's
//! figures: the one `runtime-stats` record that [`crate::Runtime::stats`]
//! answers and a handler reads through the `stats` import (`Nexus.stats()`,
//! served by the engine's host state from [`Stats::record`]), and the
//! [`Counters`] a Prometheus scrape reads.
//!
//! Each registered handler's own series (calls by outcome, durations,
//! console lines) is in [`handler`]; the registry decides which handlers
//! the metrics name.
//!
//! Layer: imports `cache`, `engine` (its record types), `config` and
//! `error`. Only figures the runtime really measures are reported, each
//! counted once, here. Invariant: a call counts with atomic adds, and
//! takes no lock but its handler's shard of the `Nexus.stats()` figures.

mod handler;
mod histogram;

pub use handler::HandlerFigures;
pub(crate) use handler::HandlerSeries;
pub use histogram::Durations;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::cache::{Artifact, Cache, Origin, TierStats};
use crate::config::StatsScope;
use crate::engine::{CacheStats, RuntimeStats, Tier};
use crate::error::{Error, Result};
use histogram::{Histogram, RUNTIME_BUCKETS};

/// Handler names whose own figures are kept; past it, the least recently
/// counted is forgotten (and starts again from zero).
const MAX_HANDLERS: usize = 10_000;

/// The handlers' own figures are split by name over this many locks, so
/// calls of different handlers seldom wait for each other.
const SHARDS: usize = 16;

/// Outcomes a call may have: `ok`, then each error kind.
const OUTCOMES: usize = Error::KINDS.len() + 1;

/// The outcomes' names, in their counters' order.
fn outcomes() -> impl Iterator<Item = &'static str> {
    std::iter::once("ok").chain(Error::KINDS)
}

/// `result`'s index among [`outcomes`].
fn outcome<T>(result: &Result<T>) -> usize {
    match result {
        Ok(_) => 0,
        Err(e) => 1 + e.index(),
    }
}

/// The runtime's counters beyond the `runtime-stats` record, for metrics.
#[derive(Debug, Clone)]
pub struct Counters {
    /// Invocations by outcome: `ok`, or an [`Error::kind`].
    pub invocations: Vec<(&'static str, u64)>,
    /// How long invocations took (the instance and the call; not the wait
    /// for a slot, nor the instance's teardown after the answer), whatever
    /// their outcome.
    pub invocation_seconds: Durations,
    /// How long compiling took, by artifact (`bytecode`, `component`): only
    /// real compiles, not cache hits.
    pub compile_seconds: Vec<(&'static str, Durations)>,
}

/// One handler's own figures.
#[derive(Debug, Default, Clone, Copy)]
struct Own {
    compiles: u64,
    executions: u64,
    failures: u64,
    timeouts: u64,
}

/// Counters shared by every invocation of one runtime.
pub(crate) struct Stats {
    cache: Arc<Cache>,
    /// Whose figures a handler's `Nexus.stats()` shows.
    scope: StatsScope,
    /// Each handler's own figures, by name, in shards.
    own: [Mutex<LruCache<String, Own>>; SHARDS],
    /// By outcome: `ok` first, then [`Error::KINDS`].
    outcomes: [AtomicU64; OUTCOMES],
    invocation_seconds: Histogram,
    compile_seconds: [Histogram; 2],
}

impl Stats {
    pub fn new(cache: Arc<Cache>, scope: StatsScope) -> Self {
        Self {
            cache,
            scope,
            own: [(); SHARDS].map(|()| {
                let per_shard = NonZeroUsize::new(MAX_HANDLERS / SHARDS).expect("not zero");
                Mutex::new(LruCache::new(per_shard))
            }),
            outcomes: Default::default(),
            invocation_seconds: Histogram::new(RUNTIME_BUCKETS),
            compile_seconds: [(); 2].map(|()| Histogram::new(RUNTIME_BUCKETS)),
        }
    }

    /// Counts one invocation of `handler`, how it ended and how long it
    /// took.
    pub fn invoked<T>(&self, handler: &str, result: &Result<T>, took: Duration) {
        let outcome = outcome(result);
        self.outcomes[outcome].fetch_add(1, Relaxed);
        self.invocation_seconds.observe(took);
        self.own(handler, |own| {
            own.executions += 1;
            own.failures += u64::from(outcome != 0);
            own.timeouts += u64::from(matches!(result, Err(Error::Timeout { .. })));
        });
    }

    /// Counts a real compile of `kind` and how long it took, if `origin`
    /// says it was compiled (not a cache hit); `start` is when its lookup
    /// began. A handler's bytecode is counted as its own too.
    pub fn compiled_if(
        &self,
        kind: Artifact,
        origin: Origin,
        start: Instant,
        handler: Option<&str>,
    ) {
        if origin == Origin::Compiled {
            if let Some(handler) = handler {
                self.own(handler, |own| own.compiles += 1);
            }
            let index = Artifact::ALL.iter().position(|k| *k == kind).unwrap_or(0);
            self.compile_seconds[index].observe(start.elapsed());
        }
    }

    /// The shard that holds `handler`'s own figures.
    fn shard(&self, handler: &str) -> std::sync::MutexGuard<'_, LruCache<String, Own>> {
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(handler, &mut hasher);
        let index = std::hash::Hasher::finish(&hasher) as usize % SHARDS;
        self.own[index].lock().unwrap_or_else(|e| e.into_inner())
    }

    fn own(&self, handler: &str, count: impl FnOnce(&mut Own)) {
        let mut own = self.shard(handler);
        match own.get_mut(handler) {
            Some(figures) => count(figures),
            None => count(own.get_or_insert_mut(handler.to_owned(), Own::default)),
        }
    }

    /// What `handler`'s `Nexus.stats()` shows: its own figures, or the
    /// host's, as `stats_scope` says.
    pub fn record_for(&self, handler: &str) -> RuntimeStats {
        if self.scope == StatsScope::Host {
            return self.record();
        }
        let own = self
            .shard(handler)
            .get(handler)
            .copied()
            .unwrap_or_default();
        let none = Tier {
            hits: 0,
            misses: 0,
            entries: 0,
            bytes: 0,
            capacity_bytes: 0,
            evictions: 0,
        };
        let cache = CacheStats {
            memory: none,
            disk: none,
            hit_rate: 0.0,
        };
        RuntimeStats {
            bytecode: cache,
            components: cache,
            compiles: own.compiles,
            executions: own.executions,
            failures: own.failures,
            timeouts: own.timeouts,
            host_wide: false,
        }
    }

    fn count(&self, outcome: usize) -> u64 {
        self.outcomes[outcome].load(Relaxed)
    }

    /// The figures as the WIT record. `compiles` counts handler sources
    /// compiled to bytecode (cache misses), not lookups.
    pub fn record(&self) -> RuntimeStats {
        let executions = (0..self.outcomes.len()).map(|i| self.count(i)).sum();
        let timeout = 1 + Error::Timeout {
            limit: Duration::ZERO,
        }
        .index();
        RuntimeStats {
            bytecode: self.cache_stats(Artifact::Bytecode),
            components: self.cache_stats(Artifact::Component),
            compiles: self.cache.compiles(Artifact::Bytecode),
            executions,
            failures: executions - self.count(0),
            timeouts: self.count(timeout),
            host_wide: true,
        }
    }

    /// The counters beyond the record.
    pub fn counters(&self) -> Counters {
        Counters {
            invocations: outcomes()
                .enumerate()
                .map(|(i, k)| (k, self.count(i)))
                .collect(),
            invocation_seconds: self.invocation_seconds.read(),
            compile_seconds: Artifact::ALL
                .iter()
                .zip(&self.compile_seconds)
                .map(|(kind, h)| (kind.as_str(), h.read()))
                .collect(),
        }
    }

    fn cache_stats(&self, kind: Artifact) -> CacheStats {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_is_counted_under_its_own_kind() {
        let dir = tempfile::tempdir().unwrap();
        let stats = Stats::new(
            Arc::new(Cache::open(dir.path(), 1 << 20, 1 << 20)),
            StatsScope::Handler,
        );
        let errors = crate::error::tests::every_variant();
        for e in errors {
            let kind = e.kind();
            stats.invoked::<()>("h", &Err(e), Duration::ZERO);
            let counters = stats.counters();
            let count = |k: &str| {
                counters
                    .invocations
                    .iter()
                    .find(|(o, _)| *o == k)
                    .unwrap()
                    .1
            };
            assert_eq!(count(kind), 1, "{kind}");
        }
        stats.invoked("h", &Ok(()), Duration::ZERO);
        let record = stats.record();
        assert_eq!(record.executions, Error::KINDS.len() as u64 + 1);
        assert_eq!(record.failures, Error::KINDS.len() as u64);
        assert_eq!(record.timeouts, 1);
        // The handler's own figures are the same, and another's are not.
        let own = stats.record_for("h");
        let counts = |r: &RuntimeStats| (r.executions, r.failures, r.timeouts, r.host_wide);
        assert_eq!(counts(&own), (record.executions, record.failures, 1, false));
        stats.invoked("other", &Ok(()), Duration::ZERO);
        assert_eq!(counts(&stats.record_for("other")), (1, 0, 0, false));
        assert_eq!(stats.record_for("h").executions, record.executions);
        assert_eq!(stats.record_for("h").bytecode.memory.hits, 0);
    }
}
