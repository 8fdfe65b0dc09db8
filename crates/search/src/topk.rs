//! The best `k` documents of one query, kept as a bounded min-heap while blocks stream by.
//!
//! Order: higher score first; among equal scores, the document that comes first in the collection
//! (lower position) wins. The result therefore does not depend on shard boundaries, block sizes or
//! thread count, and it is the rule of FAISS's flat indexes (lower id first) and of this
//! workspace's benchmark evaluation (earlier candidate first).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// One retrieved document: its score and its position in the collection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// The score.
    pub score: f32,
    /// 0-based position of the document in the collection.
    pub position: u64,
}

impl Eq for Scored {}

impl Ord for Scored {
    /// `a > b` when `a` ranks above `b`.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score.total_cmp(&other.score).then(other.position.cmp(&self.position))
    }
}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The `k` best documents seen so far for one query.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Scored>>,
}

impl TopK {
    /// An empty list keeping `k` documents.
    pub fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    /// How many documents the list keeps.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The score a new document must reach to enter (`-inf` while the list is not full).
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k { f32::NEG_INFINITY } else { self.heap.peek().map_or(f32::NEG_INFINITY, |r| r.0.score) }
    }

    /// Offers one document.
    #[inline]
    pub fn offer(&mut self, item: Scored) {
        if self.heap.len() < self.k {
            self.heap.push(Reverse(item));
        } else if let Some(mut worst) = self.heap.peek_mut()
            && item > worst.0
        {
            *worst = Reverse(item);
        }
    }

    /// Offers a row of scores of consecutive documents starting at collection position `first`.
    #[inline]
    pub fn offer_row(&mut self, scores: &[f32], first: u64) {
        let mut threshold = self.threshold();
        for (j, &score) in scores.iter().enumerate() {
            // `>=`: an equal score may still win on position when blocks arrive out of order.
            if score >= threshold {
                self.offer(Scored { score, position: first + j as u64 });
                threshold = self.threshold();
            }
        }
    }

    /// Offers every document of `other` (merging partial lists of the same query).
    pub fn merge(&mut self, other: TopK) {
        for Reverse(item) in other.heap {
            self.offer(item);
        }
    }

    /// The documents, best first.
    pub fn into_sorted(self) -> Vec<Scored> {
        let mut v: Vec<Scored> = self.heap.into_iter().map(|r| r.0).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }

    /// The documents in heap order (for walking them without sorting).
    pub fn iter(&self) -> impl Iterator<Item = &Scored> {
        self.heap.iter().map(|r| &r.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_with_earlier_positions_winning_ties() {
        let scores = [0.5, 0.9, 0.5, 0.1, 0.9, 0.7];
        let mut top = TopK::new(3);
        top.offer_row(&scores, 10);
        let got: Vec<(f32, u64)> = top.into_sorted().iter().map(|s| (s.score, s.position)).collect();
        assert_eq!(got, [(0.9, 11), (0.9, 14), (0.7, 15)]);
        // Blocks in any order, merged: the same list.
        let (mut a, mut b) = (TopK::new(3), TopK::new(3));
        a.offer_row(&scores[3..], 13);
        b.offer_row(&scores[..3], 10);
        a.merge(b);
        let merged: Vec<(f32, u64)> = a.into_sorted().iter().map(|s| (s.score, s.position)).collect();
        assert_eq!(merged, [(0.9, 11), (0.9, 14), (0.7, 15)]);
    }
}
