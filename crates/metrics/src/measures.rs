//! Per-query retrieval measures computed from the ranks of the relevant items alone.
//!
//! Every measure here needs only the 1-based ranks of a query's relevant items (and their grades),
//! never the full sorted ranking: that is what makes [`crate::engine`] fast. Conventions follow
//! `trec_eval` (and so `pytrec_eval`, `ir-measures`, `ranx`):
//!
//! - AP = (1/|R|) Σ_{i=1..h} i / rank_i, with rank_1 < … < rank_h the ranks of the relevant items
//!   that appear in the ranking and |R| the number of relevant items (unretrieved ones add 0).
//!   Over the full ranking this is LAReQA's `average_precision_at_k(k=None)`.
//! - R@k = |{relevant with rank ≤ k}| / |R|.
//! - P@k = |{relevant with rank ≤ k}| / k.
//! - MRR@k = 1 / rank of the first relevant item if that rank is ≤ k, else 0.
//! - nDCG@k = DCG@k / IDCG@k with **linear gain** (`trec_eval`'s `ndcg_cut`):
//!   DCG@k = Σ_{relevant, rank ≤ k} grade / log2(rank + 1); IDCG@k is the same sum over the grades
//!   of all relevant items sorted in decreasing order. With 0/1 grades (MIRACL) linear and
//!   exponential (2^g − 1) gain coincide.
//! - Rank distance = max rank − min rank over the relevant items (0 with one relevant item).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{MetricsError, Result};

/// The ranks of one query's relevant items in one ranking, with their relevance grades.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRanks {
    /// (1-based rank, grade > 0) of each relevant item that appears in the ranking, rank ascending.
    hits: Vec<(u64, u32)>,
    /// Grades of **all** relevant items (retrieved or not), descending: the ideal ranking.
    ideal: Vec<u32>,
}

impl QueryRanks {
    /// Binary relevance, every relevant item ranked: `ranks` are the 1-based ranks of the relevant
    /// items (any order, distinct).
    pub fn binary(ranks: impl IntoIterator<Item = u64>) -> Result<Self> {
        let hits: Vec<(u64, u32)> = ranks.into_iter().map(|r| (r, 1)).collect();
        let ideal = vec![1; hits.len()];
        Self::graded(hits, ideal)
    }

    /// Graded relevance. `hits` are (1-based rank, grade) of the relevant items found in the
    /// ranking (any order, distinct ranks, grade > 0); `relevant_grades` are the grades of all
    /// relevant items of the query, including those not in the ranking.
    pub fn graded(mut hits: Vec<(u64, u32)>, mut relevant_grades: Vec<u32>) -> Result<Self> {
        hits.sort_unstable();
        if hits.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(MetricsError::Invalid("two relevant items share one rank".into()));
        }
        if hits.iter().any(|&(r, g)| r == 0 || g == 0) {
            return Err(MetricsError::Invalid("ranks are 1-based and grades of hits are > 0".into()));
        }
        if relevant_grades.iter().any(|&g| g == 0) {
            return Err(MetricsError::Invalid("relevant grades must be > 0".into()));
        }
        if hits.len() > relevant_grades.len() {
            return Err(MetricsError::Invalid(format!(
                "{} relevant items ranked but only {} judged relevant",
                hits.len(),
                relevant_grades.len()
            )));
        }
        relevant_grades.sort_unstable_by(|a, b| b.cmp(a));
        Ok(QueryRanks { hits, ideal: relevant_grades })
    }

    /// Number of relevant items |R| (retrieved or not).
    pub fn num_relevant(&self) -> usize {
        self.ideal.len()
    }

    /// Ranks of the retrieved relevant items, ascending.
    pub fn ranks(&self) -> impl Iterator<Item = u64> + '_ {
        self.hits.iter().map(|&(r, _)| r)
    }

    /// Average precision over the full ranking (0 when there is no relevant item).
    pub fn average_precision(&self) -> f64 {
        average_precision_sorted(self.ranks(), self.num_relevant())
    }

    /// Recall at cutoff `k`.
    pub fn recall_at(&self, k: u64) -> f64 {
        if self.ideal.is_empty() {
            return 0.0;
        }
        self.ranks().take_while(|&r| r <= k).count() as f64 / self.num_relevant() as f64
    }

    /// Precision at cutoff `k`.
    pub fn precision_at(&self, k: u64) -> f64 {
        if k == 0 {
            return 0.0;
        }
        self.ranks().take_while(|&r| r <= k).count() as f64 / k as f64
    }

    /// Reciprocal rank of the first relevant item, 0 if it is ranked below `k`.
    pub fn reciprocal_rank_at(&self, k: u64) -> f64 {
        match self.ranks().next() {
            Some(r) if r <= k => 1.0 / r as f64,
            _ => 0.0,
        }
    }

    /// nDCG at cutoff `k`, linear gain (trec_eval `ndcg_cut`).
    pub fn ndcg_at(&self, k: u64) -> f64 {
        let dcg: f64 = self
            .hits
            .iter()
            .take_while(|&&(r, _)| r <= k)
            .map(|&(r, g)| g as f64 / ((r + 1) as f64).log2())
            .sum();
        let idcg: f64 = self
            .ideal
            .iter()
            .take(usize::try_from(k).unwrap_or(usize::MAX))
            .enumerate()
            .map(|(i, &g)| g as f64 / ((i + 2) as f64).log2())
            .sum();
        if idcg > 0.0 { dcg / idcg } else { 0.0 }
    }

    /// max rank − min rank of the relevant items. `None` when some relevant item is not ranked or
    /// there is none.
    pub fn rank_distance(&self) -> Option<f64> {
        if self.hits.is_empty() || self.hits.len() != self.ideal.len() {
            return None;
        }
        Some((self.hits[self.hits.len() - 1].0 - self.hits[0].0) as f64)
    }

    /// Value of `metric` for this query (`rank_distance` gives NaN when undefined).
    pub fn value(&self, metric: Metric) -> f64 {
        match metric {
            Metric::AveragePrecision => self.average_precision(),
            Metric::RecallAt(k) => self.recall_at(k),
            Metric::PrecisionAt(k) => self.precision_at(k),
            Metric::ReciprocalRankAt(k) => self.reciprocal_rank_at(k),
            Metric::NdcgAt(k) => self.ndcg_at(k),
            Metric::RankDistance => self.rank_distance().unwrap_or(f64::NAN),
        }
    }
}

/// AP from ranks already sorted ascending (distinct), with `num_relevant` = |R|.
pub fn average_precision_sorted(ranks: impl IntoIterator<Item = u64>, num_relevant: usize) -> f64 {
    if num_relevant == 0 {
        return 0.0;
    }
    let sum: f64 = ranks.into_iter().enumerate().map(|(i, r)| (i + 1) as f64 / r as f64).sum();
    sum / num_relevant as f64
}

/// A per-query measure; averaged over queries it gives the reported score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Average precision over the full ranking (its mean is mAP). Name `map`.
    AveragePrecision,
    /// Recall at k. Name `recall@k`.
    RecallAt(u64),
    /// Precision at k. Name `p@k`.
    PrecisionAt(u64),
    /// Reciprocal rank with cutoff k. Name `mrr@k`.
    ReciprocalRankAt(u64),
    /// nDCG at k (linear gain). Name `ndcg@k`.
    NdcgAt(u64),
    /// Rank distance (language bias). Name `rank_distance`.
    RankDistance,
}

impl Metric {
    /// The metrics of a TREC-style run report: MAP, MRR@10, nDCG@10, R@100.
    pub const TREC_DEFAULT: [Metric; 4] =
        [Metric::AveragePrecision, Metric::ReciprocalRankAt(10), Metric::NdcgAt(10), Metric::RecallAt(100)];
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::AveragePrecision => write!(f, "map"),
            Metric::RecallAt(k) => write!(f, "recall@{k}"),
            Metric::PrecisionAt(k) => write!(f, "p@{k}"),
            Metric::ReciprocalRankAt(k) => write!(f, "mrr@{k}"),
            Metric::NdcgAt(k) => write!(f, "ndcg@{k}"),
            Metric::RankDistance => write!(f, "rank_distance"),
        }
    }
}

impl FromStr for Metric {
    type Err = MetricsError;

    /// Parses `map`, `recall@k`, `p@k`, `mrr@k`, `ndcg@k`, `rank_distance` (case-insensitive;
    /// `r@k`, `precision@k` and `rd` are accepted too).
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let bad = || MetricsError::Invalid(format!("unknown metric `{s}` (expected map, recall@k, p@k, mrr@k, ndcg@k or rank_distance)"));
        match lower.as_str() {
            "map" | "ap" => return Ok(Metric::AveragePrecision),
            "rank_distance" | "rd" => return Ok(Metric::RankDistance),
            _ => {}
        }
        let (name, k) = lower.split_once('@').ok_or_else(bad)?;
        let k: u64 = k.parse().map_err(|_| bad())?;
        if k == 0 {
            return Err(bad());
        }
        match name {
            "recall" | "r" => Ok(Metric::RecallAt(k)),
            "p" | "precision" => Ok(Metric::PrecisionAt(k)),
            "mrr" | "rr" => Ok(Metric::ReciprocalRankAt(k)),
            "ndcg" => Ok(Metric::NdcgAt(k)),
            _ => Err(bad()),
        }
    }
}

impl Serialize for Metric {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Metric {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}
