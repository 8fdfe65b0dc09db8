//! The best `k` documents of one query, kept while blocks stream by.
//!
//! Order: higher score first; among equal scores, the document that comes first in the collection
//! (lower position) wins. The result therefore does not depend on shard boundaries, block sizes or
//! thread count, and it is the rule of FAISS's flat indexes (lower id first) and of this
//! workspace's benchmark evaluation (earlier candidate first).

use std::cmp::Ordering;

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
///
/// A buffer of up to `2k` candidates rather than a heap: a candidate is appended (O(1)), and
/// when the buffer is full a selection keeps the best `k` and raises the entry threshold to the
/// k-th score. That costs O(k) every k insertions, so O(1) per candidate, against a heap's
/// O(log k) sift on every one (measured: the heap's inserts were ~5% of a search).
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    entries: Vec<Scored>,
    /// No candidate below this can enter (the k-th best score at the last selection).
    floor: f32,
}

impl TopK {
    /// An empty list keeping `k` documents.
    pub fn new(k: usize) -> Self {
        TopK { k, entries: Vec::with_capacity(2 * k), floor: f32::NEG_INFINITY }
    }

    /// How many documents the list keeps.
    pub fn k(&self) -> usize {
        self.k
    }

    /// A score below this cannot enter (`-inf` until the list has been full once).
    #[inline]
    pub fn threshold(&self) -> f32 {
        self.floor
    }

    /// Offers one document.
    #[inline]
    pub fn offer(&mut self, item: Scored) {
        if self.k == 0 || item.score < self.floor {
            return;
        }
        self.entries.push(item);
        if self.entries.len() >= 2 * self.k {
            self.select();
        }
    }

    /// Keeps the best `k` entries and raises the floor to the worst of them.
    fn select(&mut self) {
        if self.entries.len() > self.k {
            self.entries.select_nth_unstable_by(self.k - 1, |a, b| b.cmp(a));
            self.entries.truncate(self.k);
        }
        if self.entries.len() == self.k {
            self.floor = self.entries.iter().map(|e| e.score).fold(f32::INFINITY, f32::min);
        }
    }

    /// Offers a row of scores of consecutive documents starting at collection position `first`.
    #[inline]
    pub fn offer_row(&mut self, scores: &[f32], first: u64) {
        /// Scores tested at once: once the list is full almost no score enters, so a branch-free
        /// test of 16 (one AVX-512 compare) skips most of the row.
        const LANES: usize = 16;
        let mut threshold = self.threshold();
        for (c, chunk) in scores.chunks(LANES).enumerate() {
            // `>=`: an equal score may still win on position when blocks arrive out of order.
            if !chunk.iter().fold(false, |any, &score| any | (score >= threshold)) {
                continue;
            }
            for (j, &score) in chunk.iter().enumerate() {
                if score >= threshold {
                    self.offer(Scored { score, position: first + (c * LANES + j) as u64 });
                    threshold = self.threshold();
                }
            }
        }
    }

    /// Offers every document of `other` (merging partial lists of the same query).
    pub fn merge(&mut self, other: TopK) {
        for item in other.entries {
            self.offer(item);
        }
    }

    /// The documents, best first (at most `k`).
    pub fn into_sorted(mut self) -> Vec<Scored> {
        self.entries.sort_unstable_by(|a, b| b.cmp(a));
        self.entries.truncate(self.k);
        self.entries
    }

    /// The candidates held now, in no order: the best `k` and possibly some that a later
    /// selection drops.
    pub fn iter(&self) -> impl Iterator<Item = &Scored> {
        self.entries.iter()
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
