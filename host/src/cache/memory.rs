//! The memory tier: one LRU for every artifact kind, bounded by bytes, with
//! exact accounting.
//!
//! Invariant: the budget holds the sum of the weights of the entries held,
//! never more than its capacity (see [`super::budget`]).

use lru::LruCache;

use super::budget::Budget;
use super::{Artifact, Key, TierStats};

pub(super) struct MemoryTier<V> {
    entries: LruCache<Key, (V, u64, Artifact)>,
    budget: Budget,
    stats: [TierStats; 2],
}

impl<V: Clone> MemoryTier<V> {
    pub fn new(capacity: u64) -> Self {
        Self {
            entries: LruCache::unbounded(),
            budget: Budget::new(capacity),
            stats: Default::default(),
        }
    }

    /// The entry, now the most recently used; counts a hit or a miss.
    pub fn get(&mut self, kind: Artifact, key: &Key) -> Option<V> {
        let found = self.peek(key);
        let stats = &mut self.stats[kind.index()];
        match found {
            Some(_) => stats.hits += 1,
            None => stats.misses += 1,
        }
        found
    }

    /// As [`get`](Self::get), without counting: a second look by the same
    /// lookup.
    pub fn peek(&mut self, key: &Key) -> Option<V> {
        self.entries.get(key).map(|(value, _, _)| value.clone())
    }

    /// Holds `value` (weighing `weight` bytes), evicting least recently used
    /// entries until it fits. Returns whether it is held.
    pub fn insert(&mut self, kind: Artifact, key: Key, value: V, weight: u64) -> bool {
        if let Some((_, old, _)) = self.entries.pop(&key) {
            self.budget.refund(old);
        }
        if !self.budget.can_hold(weight) {
            return false;
        }
        self.evict_until_admitted(weight);
        self.budget.charge(weight);
        self.entries.put(key, (value, weight, kind));
        true
    }

    /// Evicts least recently used entries until `incoming` bytes fit.
    fn evict_until_admitted(&mut self, incoming: u64) {
        while !self.budget.admits(incoming) {
            let Some((_, (_, weight, kind))) = self.entries.pop_lru() else {
                break;
            };
            self.budget.refund(weight);
            self.stats[kind.index()].evictions += 1;
        }
    }

    /// Figures for `kind`; the capacity is shared by every kind.
    pub fn stats(&self, kind: Artifact) -> TierStats {
        let (entries, bytes) = self
            .entries
            .iter()
            .filter(|(_, (_, _, k))| *k == kind)
            .fold((0, 0), |(n, b), (_, (_, w, _))| (n + 1, b + w));
        TierStats {
            entries,
            bytes,
            capacity_bytes: self.budget.capacity(),
            ..self.stats[kind.index()]
        }
    }

    #[cfg(test)]
    fn bytes(&self) -> u64 {
        self.budget.held()
    }

    #[cfg(test)]
    fn keys_lru_first(&self) -> Vec<Key> {
        self.entries.iter().rev().map(|(k, _)| *k).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const B: Artifact = Artifact::Bytecode;

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut tier = MemoryTier::new(30);
        tier.insert(B, key(1), 1, 10);
        tier.insert(B, key(2), 2, 10);
        tier.insert(B, key(3), 3, 10);
        assert_eq!(tier.get(B, &key(1)), Some(1)); // 1 is now the most recent
        tier.insert(B, key(4), 4, 10); // evicts 2
        assert_eq!(tier.keys_lru_first(), [key(3), key(1), key(4)]);
        tier.insert(B, key(5), 5, 20); // evicts 3 and 1
        assert_eq!(tier.keys_lru_first(), [key(4), key(5)]);
        let stats = tier.stats(B);
        assert_eq!((stats.entries, stats.bytes, stats.evictions), (2, 30, 3));
        assert_eq!((stats.hits, stats.misses), (1, 0));
    }

    #[test]
    fn an_entry_larger_than_the_budget_skips_memory() {
        let mut tier = MemoryTier::new(10);
        tier.insert(B, key(1), 1, 5);
        assert!(!tier.insert(B, key(2), 2, 11));
        assert_eq!(tier.get(B, &key(1)), Some(1));
        assert_eq!(tier.get(B, &key(2)), None);
        assert_eq!(tier.stats(B).bytes, 5);
    }

    #[test]
    fn replacing_a_key_reweighs_it() {
        let mut tier = MemoryTier::new(10);
        tier.insert(B, key(1), 1, 8);
        tier.insert(B, key(1), 2, 3);
        assert_eq!((tier.stats(B).bytes, tier.stats(B).entries), (3, 1));
    }

    proptest! {
        #[test]
        fn the_byte_bound_always_holds(
            capacity in 1u64..10_000,
            ops in prop::collection::vec((0u8..40, 0u64..4_000, any::<bool>()), 1..300),
        ) {
            let mut tier = MemoryTier::new(capacity);
            for (k, weight, read) in ops {
                if read {
                    tier.get(B, &key(k));
                } else {
                    let held = tier.insert(B, key(k), k, weight);
                    prop_assert_eq!(held, weight <= capacity);
                }
                let sum: u64 = tier.entries.iter().map(|(_, (_, w, _))| *w).sum();
                prop_assert_eq!(sum, tier.bytes());
                prop_assert!(tier.bytes() <= capacity);
            }
        }
    }
}
