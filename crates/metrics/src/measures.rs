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
//!
//! # Your own measures
//!
//! The set is open: anything that implements [`Measure`] (a name and a per-query value computed
//! from [`QueryRanks`]) can be scored next to the built-ins, in a TREC report
//! ([`crate::evaluate_run`]) and in the LAReQA report and tables
//! ([`crate::EvalOptions::extra_measures`]). [`Metric`] is the closed, parsable (`FromStr`,
//! serde) set of built-ins and implements [`Measure`] itself; [`MeasureFn`] turns a closure into
//! a measure.
//!
//! **Aggregation.** Every report aggregates a measure the same way as the built-ins: the
//! per-query values are averaged (arithmetic mean) over the evaluated queries of a unit (a TREC
//! run; a LAReQA pair, language or setting), and a per-query value that is NaN ("undefined for
//! this query", like [`QueryRanks::rank_distance`] when a relevant item is unranked) counts as
//! 0. LAReQA macro averages are then unweighted means over languages or pairs, as for mAP. A
//! measure that needs another aggregation (a geometric mean, a median) has to be computed from
//! the per-query values of [`crate::TrecReport::per_query`] instead.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

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

    /// (1-based rank, grade > 0) of each retrieved relevant item, rank ascending.
    pub fn hits(&self) -> &[(u64, u32)] {
        &self.hits
    }

    /// Grades of all relevant items (retrieved or not), descending: the ideal ranking's gains.
    pub fn relevant_grades(&self) -> &[u32] {
        &self.ideal
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
        let dcg: f64 = self.hits.iter().take_while(|&&(r, _)| r <= k).map(|&(r, g)| g as f64 / ((r + 1) as f64).log2()).sum();
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

/// A per-query retrieval measure, computed from the ranks of the query's relevant items.
///
/// Implement it to add a measure to the reports: [`crate::evaluate_run`] (TREC) scores any
/// slice of measures, and [`crate::EvalOptions::extra_measures`] adds measures to every unit
/// of the LAReQA report (the `extra` map of [`crate::Scores`]) and to the Table 1 text table.
/// The reports average [`Measure::score`] over queries (a NaN value counts as 0; see the
/// [module docs](self#your-own-measures)).
///
/// ```
/// use hybrid_ir_metrics::{Measure, QueryRanks};
///
/// /// 1 if a relevant item is in the top k, else 0 (its mean is "success@k").
/// struct Success(u64);
///
/// impl Measure for Success {
///     fn name(&self) -> String {
///         format!("success@{}", self.0)
///     }
///     fn score(&self, ranks: &QueryRanks) -> f64 {
///         if ranks.ranks().next().is_some_and(|r| r <= self.0) { 1.0 } else { 0.0 }
///     }
/// }
///
/// assert_eq!(Success(3).score(&QueryRanks::binary([3, 8]).unwrap()), 1.0);
/// assert_eq!(Success(3).score(&QueryRanks::binary([4]).unwrap()), 0.0);
/// ```
pub trait Measure: Send + Sync {
    /// The measure's name: its key in the reports (`TrecReport::metrics`, `Scores::extra`) and
    /// its column header. Measures scored together must have distinct, non-empty names.
    fn name(&self) -> String;

    /// The value for one query. Return NaN when the measure is undefined for this query (it
    /// then counts as 0 in the means, like the built-in rank distance).
    fn score(&self, ranks: &QueryRanks) -> f64;
}

impl Measure for Metric {
    fn name(&self) -> String {
        self.to_string()
    }

    fn score(&self, ranks: &QueryRanks) -> f64 {
        ranks.value(*self)
    }
}

impl<M: Measure + ?Sized> Measure for &M {
    fn name(&self) -> String {
        (**self).name()
    }

    fn score(&self, ranks: &QueryRanks) -> f64 {
        (**self).score(ranks)
    }
}

impl<M: Measure + ?Sized> Measure for Box<M> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn score(&self, ranks: &QueryRanks) -> f64 {
        (**self).score(ranks)
    }
}

impl<M: Measure + ?Sized> Measure for Arc<M> {
    fn name(&self) -> String {
        (**self).name()
    }

    fn score(&self, ranks: &QueryRanks) -> f64 {
        (**self).score(ranks)
    }
}

impl fmt::Debug for dyn Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Measure").field(&self.name()).finish()
    }
}

/// A [`Measure`] from a name and a closure over [`QueryRanks`].
///
/// ```
/// use hybrid_ir_metrics::{Measure, MeasureFn, QueryRanks};
///
/// // Reciprocal rank of the last retrieved relevant item.
/// let rr_last = MeasureFn::new("rr_last", |q: &QueryRanks| q.ranks().last().map_or(0.0, |r| 1.0 / r as f64));
/// assert_eq!(rr_last.score(&QueryRanks::binary([2, 4]).unwrap()), 0.25);
/// assert_eq!(rr_last.name(), "rr_last");
/// ```
#[derive(Clone)]
pub struct MeasureFn<F> {
    name: String,
    f: F,
}

impl<F> MeasureFn<F>
where
    F: Fn(&QueryRanks) -> f64 + Send + Sync,
{
    /// A measure named `name` whose per-query value is `f(ranks)`.
    pub fn new(name: impl Into<String>, f: F) -> Self {
        MeasureFn { name: name.into(), f }
    }
}

impl<F> Measure for MeasureFn<F>
where
    F: Fn(&QueryRanks) -> f64 + Send + Sync,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn score(&self, ranks: &QueryRanks) -> f64 {
        (self.f)(ranks)
    }
}

impl<F> fmt::Debug for MeasureFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeasureFn").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The value of `measure` for one query as the reports aggregate it: NaN (undefined) counts as 0.
pub fn aggregated_value<M: Measure + ?Sized>(measure: &M, ranks: &QueryRanks) -> f64 {
    match measure.score(ranks) {
        v if v.is_nan() => 0.0,
        v => v,
    }
}

/// The names of `measures`, checked to be non-empty and distinct (what a report keyed by name
/// needs).
pub fn checked_names<M: Measure>(measures: &[M]) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::with_capacity(measures.len());
    for m in measures {
        let name = m.name();
        if name.trim().is_empty() {
            return Err(MetricsError::Invalid("a measure has an empty name".into()));
        }
        if names.contains(&name) {
            return Err(MetricsError::Invalid(format!("two measures are named `{name}`: names key the report")));
        }
        names.push(name);
    }
    Ok(names)
}

/// The built-in measures: the parsable (`FromStr`, `Display`, serde as the name) set used by
/// the CLI and TREC scoring. Each one is a [`Measure`]; per query it is averaged over queries
/// to give the reported score.
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
        let bad = || {
            MetricsError::Invalid(format!("unknown metric `{s}` (expected map, recall@k, p@k, mrr@k, ndcg@k or rank_distance)"))
        };
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
