//! Epoch queues: each item is drawn once per epoch, in a fresh random order every epoch.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::rng::SamplerRng;

/// A shuffled pass over a fixed set of items, reshuffled when it runs out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EpochQueue {
    items: Vec<u32>,
    pos: usize,
    epoch: u64,
    /// Items drawn but not used by the last batch (they clashed with it); they come first next.
    deferred: VecDeque<u32>,
}

impl EpochQueue {
    /// A queue over `items`, shuffled for epoch 0.
    pub fn new(mut items: Vec<u32>, rng: &mut SamplerRng) -> Self {
        rng.shuffle(&mut items);
        EpochQueue { items, pos: 0, epoch: 0, deferred: VecDeque::new() }
    }

    /// Number of distinct items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the queue has no items at all.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Completed passes so far.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether this queue is a valid state over exactly `expected` (in any order): the same
    /// items, a position inside them, and deferred items among them. A restored sampler checks
    /// its queues with this, since a damaged or foreign state could otherwise make it index
    /// past its corpus.
    pub fn holds_exactly(&self, expected: &[u32]) -> bool {
        let mut mine = self.items.clone();
        let mut theirs = expected.to_vec();
        mine.sort_unstable();
        theirs.sort_unstable();
        mine == theirs && self.pos <= self.items.len() && self.deferred.iter().all(|d| mine.binary_search(d).is_ok())
    }

    fn next(&mut self, rng: &mut SamplerRng) -> u32 {
        if let Some(item) = self.deferred.pop_front() {
            return item;
        }
        // `>=`, not `==`: a queue deserialised from a damaged state may hold a position past the
        // end; it then starts a new epoch instead of indexing out of bounds.
        if self.pos >= self.items.len() {
            rng.shuffle(&mut self.items);
            self.pos = 0;
            self.epoch += 1;
        }
        self.pos += 1;
        self.items[self.pos - 1]
    }

    /// Draws up to `n` items that `accept` takes (accept also records them). Items it refuses
    /// are handed back to the front of the queue, so they keep their turn in this epoch. Stops
    /// early when a whole pass finds nothing acceptable (e.g. `n` exceeds the item count).
    pub fn draw(&mut self, rng: &mut SamplerRng, n: usize, mut accept: impl FnMut(u32) -> bool) -> Vec<u32> {
        // At most one item per distinct item is taken (the callers' `accept` refuses repeats),
        // so the queue's size bounds the reservation however large `n` is.
        let mut taken: Vec<(u32, u64)> = Vec::with_capacity(n.min(self.items.len()));
        let mut refused: Vec<(u32, u64)> = Vec::new();
        let mut misses = 0;
        let limit = self.items.len() + self.deferred.len();
        while taken.len() < n && !self.items.is_empty() {
            let item = self.next(rng);
            if accept(item) {
                taken.push((item, self.epoch));
                misses = 0;
            } else {
                refused.push((item, self.epoch));
                misses += 1;
                if misses > limit {
                    break;
                }
            }
        }
        // A refused item keeps its turn unless it was used in this batch in the same or a later
        // epoch (a batch that wraps into the next epoch can meet an item twice).
        refused.sort_unstable();
        refused.dedup_by_key(|(item, _)| *item);
        for &(item, epoch) in refused.iter().rev() {
            if !taken.iter().any(|&(t, e)| t == item && e >= epoch) {
                self.deferred.push_front(item);
            }
        }
        taken.into_iter().map(|(item, _)| item).collect()
    }
}
