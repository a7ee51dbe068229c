//! The memory tier: one [`Ranking`] for every artifact kind, bounded by
//! bytes, with exact accounting.
//!
//! Invariant: the budget holds the sum of the weights of the entries held,
//! never more than its capacity (see [`super::budget`]); `entries` and
//! `ranking` hold the same keys.

use std::collections::HashMap;
use std::time::Duration;

use super::budget::Budget;
use super::policy::Ranking;
use super::{Artifact, Key, TierStats};
use crate::config::Eviction;

pub(super) struct MemoryTier<V> {
    entries: HashMap<Key, (V, Artifact)>,
    ranking: Ranking<Key>,
    budget: Budget,
    stats: [TierStats; 2],
}

impl<V: Clone> MemoryTier<V> {
    pub fn new(capacity: u64, eviction: Eviction) -> Self {
        Self {
            entries: HashMap::new(),
            ranking: Ranking::new(eviction),
            budget: Budget::new(capacity),
            stats: Default::default(),
        }
    }

    /// The entry, now used once more; counts a hit or a miss.
    pub fn get(&mut self, kind: Artifact, key: &Key) -> Option<V> {
        let found = self.entries.get(key).map(|(value, _)| value.clone());
        let stats = &mut self.stats[kind.index()];
        match found {
            Some(_) => {
                stats.hits += 1;
                // Memory ranks by the order of use: its clock is not needed.
                self.ranking.touch(key, 0.0);
            }
            None => stats.misses += 1,
        }
        found
    }

    /// Holds `value` (weighing `weight` bytes, built in `cost`), evicting
    /// until it fits, if the policy admits it. Returns whether it is held.
    pub fn insert(
        &mut self,
        kind: Artifact,
        key: Key,
        value: V,
        weight: u64,
        cost: Duration,
    ) -> bool {
        if let Some(old) = self.ranking.remove(&key) {
            self.entries.remove(&key);
            self.budget.refund(old.bytes);
        }
        if !self.budget.can_hold(weight) {
            return false;
        }
        let room = self.budget.shortfall(weight);
        if !self.ranking.admits(key, weight, cost, room, |_| false) {
            return false;
        }
        self.evict_until_admitted(weight);
        self.budget.charge(weight);
        self.entries.insert(key, (value, kind));
        self.ranking.insert(key, weight, cost, 1, 0.0);
        true
    }

    /// Evicts until `incoming` bytes fit.
    fn evict_until_admitted(&mut self, incoming: u64) {
        while !self.budget.admits(incoming) {
            let Some((key, rank)) = self.ranking.evict(|_| false) else {
                break;
            };
            if let Some((_, kind)) = self.entries.remove(&key) {
                self.stats[kind.index()].evictions += 1;
            }
            self.budget.refund(rank.bytes);
        }
    }

    /// Figures for `kind`; the capacity is shared by every kind.
    pub fn stats(&self, kind: Artifact) -> TierStats {
        let (entries, bytes) = self
            .ranking
            .iter()
            .filter(|(key, _)| self.entries.get(key).is_some_and(|(_, k)| *k == kind))
            .fold((0, 0), |(n, b), (_, rank)| (n + 1, b + rank.bytes));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const B: Artifact = Artifact::Bytecode;
    const MS: Duration = Duration::from_millis(1);

    fn key(n: u8) -> Key {
        Key([n; 32])
    }

    impl<V: Clone> MemoryTier<V> {
        fn keys_first_evicted_first(&self) -> Vec<Key> {
            self.ranking.in_eviction_order()
        }
    }

    #[test]
    fn under_recency_evicts_least_recently_used_first() {
        let mut tier = MemoryTier::new(30, Eviction::Recency);
        tier.insert(B, key(1), 1, 10, MS * 900);
        tier.insert(B, key(2), 2, 10, MS);
        tier.insert(B, key(3), 3, 10, MS);
        assert_eq!(tier.get(B, &key(1)), Some(1)); // 1 is now the most recent
        tier.insert(B, key(4), 4, 10, MS); // evicts 2
        assert_eq!(tier.keys_first_evicted_first(), [key(3), key(1), key(4)]);
        tier.insert(B, key(5), 5, 20, MS); // evicts 3 and 1
        assert_eq!(tier.keys_first_evicted_first(), [key(4), key(5)]);
        let stats = tier.stats(B);
        assert_eq!((stats.entries, stats.bytes, stats.evictions), (2, 30, 3));
        assert_eq!((stats.hits, stats.misses), (1, 0));
    }

    #[test]
    fn under_cost_keeps_what_was_slow_to_build() {
        let mut tier = MemoryTier::new(30, Eviction::Cost);
        tier.insert(B, key(1), 1, 10, MS * 900);
        tier.insert(B, key(2), 2, 10, MS);
        tier.insert(B, key(3), 3, 10, MS * 5);
        tier.insert(B, key(4), 4, 10, MS); // evicts 2, the cheapest
        assert_eq!(tier.get(B, &key(2)), None);
        tier.insert(B, key(5), 5, 10, MS); // evicts 4, now the cheapest
        assert_eq!(tier.keys_first_evicted_first(), [key(5), key(3), key(1)]);
        assert_eq!(tier.get(B, &key(1)), Some(1));
    }

    #[test]
    fn an_entry_larger_than_the_budget_skips_memory() {
        let mut tier = MemoryTier::new(10, Eviction::Cost);
        tier.insert(B, key(1), 1, 5, MS);
        assert!(!tier.insert(B, key(2), 2, 11, MS));
        assert_eq!(tier.get(B, &key(1)), Some(1));
        assert_eq!(tier.get(B, &key(2)), None);
        assert_eq!(tier.stats(B).bytes, 5);
    }

    #[test]
    fn replacing_a_key_reweighs_it() {
        let mut tier = MemoryTier::new(10, Eviction::Cost);
        tier.insert(B, key(1), 1, 8, MS);
        tier.insert(B, key(1), 2, 3, MS);
        assert_eq!((tier.stats(B).bytes, tier.stats(B).entries), (3, 1));
    }

    proptest! {
        #[test]
        fn the_byte_bound_always_holds(
            capacity in 1u64..10_000,
            recency in any::<bool>(),
            ops in prop::collection::vec((0u8..40, 0u64..4_000, 0u64..5_000, any::<bool>()), 1..300),
        ) {
            let eviction = if recency { Eviction::Recency } else { Eviction::Cost };
            let mut tier = MemoryTier::new(capacity, eviction);
            for (k, weight, micros, read) in ops {
                if read {
                    tier.get(B, &key(k));
                } else {
                    let room = capacity - tier.bytes();
                    let held = tier.insert(B, key(k), k, weight, Duration::from_micros(micros));
                    // Cost may refuse what would push out entries worth more.
                    match recency || weight <= room {
                        true => prop_assert_eq!(held, weight <= capacity),
                        false => prop_assert!(!held || weight <= capacity),
                    }
                    prop_assert_eq!(held, tier.entries.contains_key(&key(k)));
                }
                let sum: u64 = tier.ranking.iter().map(|(_, rank)| rank.bytes).sum();
                prop_assert_eq!(sum, tier.bytes());
                prop_assert_eq!(tier.entries.len(), tier.ranking.iter().count());
                prop_assert!(tier.bytes() <= capacity);
            }
        }
    }
}
