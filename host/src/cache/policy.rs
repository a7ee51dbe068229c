//! Which entry goes first when a tier must make room: one [`Ranking`] of
//! keys, under either [`Eviction`] policy, for both tiers.
//!
//! - `recency`: the least recently used first (by the tier's own clock:
//!   the order of use in memory, files' modification times on disk, which
//!   every process sharing the directory moves).
//! - `cost`: GreedyDual-Size-Frequency (Cherkasova, 1998). An entry ranks
//!   at `age + hits × build time / bytes`, where `age` is the rank of the
//!   last entry evicted: an entry that was slow to build, is small, or is
//!   asked for often stays; one nobody asks for again falls behind as
//!   `age` climbs past it, however costly it was. An entry's hits outlive
//!   its eviction (the last [`GHOSTS`] evicted keys' are remembered), so a
//!   popular entry pushed out by a burst comes back with its standing, and
//!   one asked for once does not displace it. A newcomer competes too: one
//!   that would rank below an entry it must push out is refused
//!   ([`Ranking::admits`]), its use remembered as an evicted key's hits.
//!
//! Ties go to the entry used least recently. Invariant: `order` holds
//! exactly one `(score, seq, key)` for each entry of `entries`, and `seq`s
//! are unique, so the first of `order` is the one to evict.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::time::Duration;

use lru::LruCache;

use crate::config::Eviction;

/// What a tier knows of one entry.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rank {
    /// What it takes of the tier's budget.
    pub bytes: u64,
    /// What building it took: what its loss would cost.
    pub cost: Duration,
    /// Uses since it came in (itself included).
    pub hits: u32,
    /// When it was last used, by the tier's clock.
    pub used: f64,
    score: Score,
    seq: u64,
}

/// A rank, totally ordered (never NaN: built from finite, non-negative parts).
#[derive(Debug, Clone, Copy)]
struct Score(f64);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Score {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// What an entry is worth above the age, per GreedyDual-Size-Frequency: a
/// build measured at zero (unknown) still ranks by its hits.
fn gdsf(hits: u32, cost: Duration, bytes: u64) -> f64 {
    f64::from(hits) * cost.as_secs_f64().max(1e-6) / bytes.max(1) as f64
}

/// How many evicted keys' hits a ranking remembers (a few hundred KiB at
/// most).
pub(super) const GHOSTS: usize = 4096;

/// A tier's entries in the order they would be evicted.
#[derive(Debug)]
pub(super) struct Ranking<K: Hash + Eq> {
    policy: Eviction,
    age: f64,
    seq: u64,
    entries: HashMap<K, Rank>,
    order: BTreeSet<(Score, u64, K)>,
    /// The hits of keys evicted lately, the most recent first.
    ghosts: LruCache<K, u32>,
}

impl<K: Copy + Eq + Hash + Ord> Ranking<K> {
    pub fn new(policy: Eviction) -> Self {
        Self {
            policy,
            age: 0.0,
            seq: 0,
            entries: HashMap::new(),
            order: BTreeSet::new(),
            ghosts: LruCache::new(NonZeroUsize::new(GHOSTS).unwrap()),
        }
    }

    /// A fresh ranking under the same policy and age, which takes over the
    /// evicted keys' hits: for a tier that rebuilds what it knows (a
    /// rescan).
    pub fn emptied(&mut self) -> Self {
        let mut fresh = Self::new(self.policy);
        fresh.age = self.age;
        std::mem::swap(&mut fresh.ghosts, &mut self.ghosts);
        fresh
    }

    /// Ranks `key` anew (replacing what was known of it): `bytes` held,
    /// `cost` to build, used `hits` times (and as often as before it was
    /// evicted, if it was lately), last at `used`.
    pub fn insert(&mut self, key: K, bytes: u64, cost: Duration, hits: u32, used: f64) {
        self.remove(&key);
        let before = self.ghosts.pop(&key).unwrap_or(0);
        let mut rank = Rank {
            bytes,
            cost,
            hits: hits.max(1).saturating_add(before),
            used,
            score: Score(0.0),
            seq: 0,
        };
        self.place(key, &mut rank);
        self.entries.insert(key, rank);
    }

    /// Whether `key`, coming in at `bytes` and built in `cost`, may take the
    /// place of the entries that would go to free `room` bytes (passing
    /// over those `kept` says must stay). Under `cost` it may if it ranks
    /// at least as high as each of them: else it would itself be the next
    /// to go, and would push out entries worth more on the way. A refused
    /// key's use is remembered with the evicted keys' hits, so one asked
    /// for again comes in. Under `recency` every newcomer comes in.
    pub fn admits(
        &mut self,
        key: K,
        bytes: u64,
        cost: Duration,
        room: u64,
        kept: impl Fn(&K) -> bool,
    ) -> bool {
        if self.policy == Eviction::Recency || room == 0 {
            return true;
        }
        let hits = self
            .ghosts
            .peek(&key)
            .copied()
            .unwrap_or(0)
            .saturating_add(1);
        let score = self.age + gdsf(hits, cost, bytes);
        let mut freed = 0;
        for (victim, _, other) in &self.order {
            if freed >= room {
                return true;
            }
            if kept(other) || *other == key {
                continue;
            }
            if victim.0 > score {
                self.ghosts.put(key, hits);
                return false;
            }
            freed += self.entries[other].bytes;
        }
        true
    }

    /// Counts a use of `key` at `used`; false if it is not ranked.
    pub fn touch(&mut self, key: &K, used: f64) -> bool {
        let Some(mut rank) = self.entries.get(key).copied() else {
            return false;
        };
        self.order.remove(&(rank.score, rank.seq, *key));
        rank.hits = rank.hits.saturating_add(1);
        rank.used = used;
        self.place(*key, &mut rank);
        self.entries.insert(*key, rank);
        true
    }

    fn place(&mut self, key: K, rank: &mut Rank) {
        rank.score = Score(match self.policy {
            Eviction::Recency => rank.used,
            Eviction::Cost => self.age + gdsf(rank.hits, rank.cost, rank.bytes),
        });
        self.seq += 1;
        rank.seq = self.seq;
        self.order.insert((rank.score, rank.seq, key));
    }

    pub fn remove(&mut self, key: &K) -> Option<Rank> {
        let rank = self.entries.remove(key)?;
        self.order.remove(&(rank.score, rank.seq, *key));
        Some(rank)
    }

    pub fn get(&self, key: &K) -> Option<&Rank> {
        self.entries.get(key)
    }

    /// Takes out the entry to evict first, passing over those `kept` says
    /// must stay.
    pub fn evict(&mut self, kept: impl Fn(&K) -> bool) -> Option<(K, Rank)> {
        let &(score, _, key) = self.order.iter().find(|(_, _, key)| !kept(key))?;
        if self.policy == Eviction::Cost {
            self.age = score.0;
        }
        let rank = self.remove(&key)?;
        self.ghosts.put(key, rank.hits);
        Some((key, rank))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &Rank)> {
        self.entries.iter()
    }

    /// The keys from the first to be evicted to the last.
    #[cfg(test)]
    pub fn in_eviction_order(&self) -> Vec<K> {
        self.order.iter().map(|&(_, _, key)| key).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn recency_evicts_the_least_recently_used_whatever_it_cost() {
        let mut ranking = Ranking::new(Eviction::Recency);
        ranking.insert('a', 10, MS * 5000, 1, 1.0);
        ranking.insert('b', 10, MS, 1, 2.0);
        ranking.insert('c', 10, MS, 1, 3.0);
        ranking.touch(&'a', 4.0);
        assert_eq!(ranking.in_eviction_order(), ['b', 'c', 'a']);
        assert_eq!(ranking.evict(|_| false).unwrap().0, 'b');
        // Equal times: the order of use decides.
        ranking.touch(&'a', 5.0);
        ranking.touch(&'c', 5.0);
        assert_eq!(ranking.in_eviction_order(), ['a', 'c']);
    }

    #[test]
    fn cost_keeps_what_was_slow_to_build_per_byte_and_often_used() {
        let mut ranking = Ranking::new(Eviction::Cost);
        // A snapshot: 10 MiB, 1.3 s. A bytecode: 4 KiB, 5 ms (more per byte).
        // A big bytecode: 4 MiB, 100 ms (least per byte).
        ranking.insert("snapshot", 10 << 20, MS * 1300, 1, 0.0);
        ranking.insert("small", 4 << 10, MS * 5, 1, 0.0);
        ranking.insert("big", 4 << 20, MS * 100, 1, 0.0);
        assert_eq!(ranking.in_eviction_order(), ["big", "snapshot", "small"]);
        // Used often enough, the big one outranks the snapshot.
        for _ in 0..5 {
            ranking.touch(&"big", 0.0);
        }
        assert_eq!(ranking.in_eviction_order(), ["snapshot", "big", "small"]);
        assert_eq!(
            ranking.evict(|key| *key == "snapshot").unwrap().0,
            "big",
            "kept entries are passed over"
        );
    }

    #[test]
    fn cost_ages_out_what_is_no_longer_used() {
        let mut ranking = Ranking::new(Eviction::Cost);
        ranking.insert(0u32, 100, MS * 50, 1, 0.0);
        // A stream of cheap entries, each used twice: each eviction raises
        // the age, until the costly entry nobody uses is the lowest.
        let mut evicted = Vec::new();
        for n in 1..200u32 {
            ranking.insert(n, 100, MS, 1, 0.0);
            ranking.touch(&n, 0.0);
            if ranking.entries.len() > 3 {
                evicted.push(ranking.evict(|_| false).unwrap().0);
            }
        }
        assert!(evicted.contains(&0), "{evicted:?}");
        assert!(!evicted.starts_with(&[0]), "but not first: {evicted:?}");
    }

    #[test]
    fn equal_scores_go_least_recently_used_first() {
        let mut ranking = Ranking::new(Eviction::Cost);
        for key in ['a', 'b', 'c'] {
            ranking.insert(key, 10, MS, 1, 0.0);
        }
        ranking.remove(&'a');
        ranking.insert('a', 10, MS, 1, 0.0);
        assert_eq!(ranking.in_eviction_order(), ['b', 'c', 'a']);
        assert_eq!(ranking.get(&'a').unwrap().hits, 1);
        assert!(!ranking.touch(&'z', 0.0));
    }

    #[test]
    fn cost_refuses_a_newcomer_worth_less_than_what_it_would_push_out() {
        let mut ranking = Ranking::new(Eviction::Cost);
        // 'a' scores 0.03, 'b' 0.01.
        ranking.insert('a', 10, MS * 100, 3, 0.0);
        ranking.insert('b', 10, MS * 100, 1, 0.0);
        // Worth 0.001 once: pushing out 'b', it would be the next to go.
        assert!(!ranking.admits('c', 10, MS * 10, 10, |_| false));
        // Each refusal is remembered: asked for the tenth time, it is worth
        // as much as 'b', and comes in.
        let mut refused = 1;
        while !ranking.admits('c', 10, MS * 10, 10, |_| false) {
            refused += 1;
        }
        assert_eq!(refused, 9);
        ranking.insert('c', 10, MS * 10, 1, 0.0);
        assert_eq!(ranking.get(&'c').unwrap().hits, 10);
        // Worth more than 'b' but not 'a': it may not push out both.
        assert!(ranking.admits('d', 10, MS * 150, 10, |_| false));
        assert!(!ranking.admits('e', 10, MS * 150, 30, |_| false));
        // Kept entries are not weighed; with nothing to push out, or under
        // recency, every newcomer comes in.
        assert!(ranking.admits('f', 10, MS * 150, 30, |key| *key == 'a'));
        assert!(ranking.admits('g', 10, MS, 0, |_| false));
        let mut recency = Ranking::new(Eviction::Recency);
        recency.insert('a', 10, MS * 100, 3, 0.0);
        assert!(recency.admits('h', 10, MS, 10, |_| false));
    }

    #[test]
    fn an_evicted_entry_comes_back_with_its_hits() {
        let mut ranking = Ranking::new(Eviction::Cost);
        ranking.insert('a', 10, MS, 1, 0.0);
        for _ in 0..4 {
            ranking.touch(&'a', 0.0);
        }
        ranking.insert('b', 10, MS * 100, 1, 0.0);
        assert_eq!(ranking.evict(|_| false).unwrap().0, 'a');
        ranking.insert('a', 10, MS, 1, 0.0);
        assert_eq!(ranking.get(&'a').unwrap().hits, 6);
        // A rebuilt ranking remembers them too.
        ranking.evict(|key| *key == 'b');
        let mut rebuilt = ranking.emptied();
        rebuilt.insert('a', 10, MS, 1, 0.0);
        assert_eq!(rebuilt.get(&'a').unwrap().hits, 7);
    }
}
