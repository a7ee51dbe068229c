//! The bound both tiers share, in one vocabulary: a [`Budget`] of bytes,
//! charged for what a tier holds; before an entry comes in, the tier evicts
//! entries (in the order its [policy](super::policy) ranks them) until the
//! budget [admits](Budget::admits) it, unless the policy finds the entry
//! worth less than those it would push out. An entry larger than the whole
//! capacity is not held at all.

/// Bytes held against a capacity.
#[derive(Debug, Default)]
pub(super) struct Budget {
    capacity: u64,
    held: u64,
}

impl Budget {
    pub fn new(capacity: u64) -> Self {
        Self { capacity, held: 0 }
    }

    /// Whether an entry of `weight` bytes could ever be held.
    pub fn can_hold(&self, weight: u64) -> bool {
        weight <= self.capacity
    }

    /// Whether `incoming` more bytes fit without evicting.
    pub fn admits(&self, incoming: u64) -> bool {
        self.shortfall(incoming) == 0
    }

    /// The bytes that must go before `incoming` more fit.
    pub fn shortfall(&self, incoming: u64) -> u64 {
        self.held
            .saturating_add(incoming)
            .saturating_sub(self.capacity)
    }

    pub fn charge(&mut self, weight: u64) {
        self.held += weight;
    }

    pub fn refund(&mut self, weight: u64) {
        self.held -= weight;
    }

    pub fn held(&self) -> u64 {
        self.held
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }
}
