//! The paper's evaluation protocol on a LAReQA-style [`RetrievalBenchmark`] (XQuAD-R, MLQA-R):
//! monolingual, cross-lingual and multilingual settings, per language, per language pair, and
//! the macro averages of the paper's Tables 1–8.
//!
//! - **mono**: for each language L, queries of L against the candidates of L.
//! - **cross**: for each ordered pair X ≠ Y, queries of X against the candidates of Y; relevant =
//!   the answer sentence(s) in Y. Queries with no answer in Y (MLQA-R) are skipped and counted.
//! - **multi**: queries of X against the union of all candidates; all parallel answers relevant.
//!   Rank distance (language bias) is measured here.
//!
//! Macro averages: mono = mean over languages; cross = mean over ordered pairs X ≠ Y (pairs with
//! no answerable query are left out and counted); multi and rank distance = mean over query
//! languages. The per-language `cross` row is the mean over its targets Y ≠ X (Tables 3–6).
//!
//! Your own measures ([`EvalOptions::extra_measures`], any [`Measure`]) are computed in every
//! unit next to the built-ins — each pair's mono / cross pool and each language's multilingual
//! pool — and aggregated exactly like mAP: the mean of the per-query values over the unit's
//! evaluated queries (NaN counts as 0), then the same unweighted macro averages. They appear in
//! the `extra` map of every [`Scores`] (absent from `report.json` when no extra measure is given)
//! and as extra columns of [`crate::table::table_1`].
//!
//! With [`EvalOptions::per_query`] the report also keeps each query's value of every
//! [`HeadlineMetric`] and its weight in the macro average ([`PerQueryValues`]), so that two
//! systems can be compared query by query ([`crate::significance`]).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use hybrid_ir_data::RetrievalBenchmark;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::engine::{EngineOptions, relevant_rank_counts};
use crate::error::{MetricsError, Result};
use crate::measures::{Measure, QueryRanks, aggregated_value, checked_names};
use crate::rank::{ScoreFunction, normalize_rows};

/// Embeddings aligned with a [`RetrievalBenchmark`]: row `i` of `queries` embeds
/// `benchmark.queries[i]`, row `j` of `candidates` embeds `benchmark.candidates[j]`.
#[derive(Debug, Clone)]
pub struct BenchmarkEmbeddings {
    /// Query embeddings, `num_queries × dim`.
    pub queries: Array2<f32>,
    /// Candidate embeddings, `num_candidates × dim`.
    pub candidates: Array2<f32>,
}

/// Options of [`evaluate_benchmark`].
///
/// Equality compares the score function, the engine options and the **names** of the extra
/// measures (code cannot be compared). Serde (de)serialises the score function and engine
/// options only: extra measures are code, not configuration (they deserialise as none).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Cosine (default) or dot product.
    pub score: ScoreFunction,
    /// Block sizes of the engine.
    pub engine: EngineOptions,
    /// Your own measures, computed in every unit of the report besides the built-ins and stored
    /// in [`Scores::extra`] under their [`Measure::name`] (names must be non-empty and distinct).
    /// Empty by default: the report is then exactly the built-in one.
    #[serde(skip)]
    pub extra_measures: Vec<Arc<dyn Measure>>,
    /// Also record every query's value of each [`HeadlineMetric`] with its weight in the macro
    /// average ([`LareqaReport::per_query`]): what the paired tests of
    /// [`crate::significance`] resample. Off by default, so that `report.json` stays the
    /// aggregate one (per-query values make it about 2.5 MB larger on XQuAD-R).
    #[serde(default)]
    pub per_query: bool,
}

impl fmt::Debug for EvalOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvalOptions")
            .field("score", &self.score)
            .field("engine", &self.engine)
            .field("extra_measures", &self.extra_measures)
            .field("per_query", &self.per_query)
            .finish()
    }
}

impl PartialEq for EvalOptions {
    fn eq(&self, other: &Self) -> bool {
        self.score == other.score
            && self.engine == other.engine
            && self.per_query == other.per_query
            && self.extra_measures.len() == other.extra_measures.len()
            && self.extra_measures.iter().zip(&other.extra_measures).all(|(a, b)| a.name() == b.name())
    }
}

/// Mean scores of one evaluation unit (a pair, a language's setting, or a macro average).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Mean average precision over the full ranking.
    pub map: f64,
    /// Mean reciprocal rank, cutoff 10.
    #[serde(rename = "mrr@10")]
    pub mrr_at_10: f64,
    /// Mean recall at 1.
    #[serde(rename = "recall@1")]
    pub recall_at_1: f64,
    /// Mean recall at 10.
    #[serde(rename = "recall@10")]
    pub recall_at_10: f64,
    /// Mean rank distance (multilingual setting only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank_distance: Option<f64>,
    /// Means of the extra measures ([`EvalOptions::extra_measures`]), keyed by measure name,
    /// aggregated like `map`. Empty (and absent from `report.json`) when none was given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, f64>,
    /// Queries evaluated (summed over the averaged units).
    pub queries: usize,
    /// Queries skipped because they have no relevant candidate in the pool (summed).
    pub skipped_queries: usize,
    /// Number of units macro-averaged (languages or pairs); absent for a single unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub averaged_over: Option<usize>,
}

/// The three settings of one query language.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LanguageScores {
    /// Number of queries in this language.
    pub queries: usize,
    /// Queries of this language against its own candidates.
    pub mono: Scores,
    /// Mean over the target languages Y ≠ this one of the X→Y pairs.
    pub cross: Scores,
    /// Queries of this language against the whole multilingual pool.
    pub multi: Scores,
}

/// The macro averages of the paper (Table 1 and Table 2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SettingScores {
    /// Mean over languages of the monolingual scores.
    pub mono: Scores,
    /// Mean over ordered pairs X ≠ Y.
    pub cross: Scores,
    /// Mean over query languages of the multilingual scores (with rank distance).
    pub multi: Scores,
}

/// Everything `hybrid-ir eval` writes to `report.json` (schema in the crate README).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LareqaReport {
    /// Benchmark name (`xquad-r`, `mlqa-r`).
    pub benchmark: String,
    /// Score function used.
    pub score: ScoreFunction,
    /// Languages, sorted by code.
    pub languages: Vec<String>,
    /// Number of queries (all languages).
    pub num_queries: usize,
    /// Size of the multilingual candidate pool.
    pub num_candidates: usize,
    /// Macro averages.
    pub settings: SettingScores,
    /// Per query language.
    pub per_language: BTreeMap<String, LanguageScores>,
    /// Per ordered pair, keyed `"X→Y"`; includes the monolingual pairs `"X→X"`.
    pub pairs: BTreeMap<String, Scores>,
    /// Every query's value of each headline metric, with its weight in the macro average
    /// (present only when evaluated with [`EvalOptions::per_query`]; absent from `report.json`
    /// otherwise, and reports without it parse as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_query: Option<PerQueryValues>,
}

impl LareqaReport {
    /// Key of the pair X→Y in [`Self::pairs`].
    pub fn pair_key(query_lang: &str, candidate_lang: &str) -> String {
        format!("{query_lang}→{candidate_lang}")
    }

    /// Scores of the pair X→Y.
    pub fn pair(&self, query_lang: &str, candidate_lang: &str) -> Option<&Scores> {
        self.pairs.get(&Self::pair_key(query_lang, candidate_lang))
    }

    /// mAP matrix: rows = query language, columns = candidate language (None: no answerable query).
    pub fn map_matrix(&self) -> Vec<Vec<Option<f64>>> {
        self.languages
            .iter()
            .map(|x| self.languages.iter().map(|y| self.pair(x, y).filter(|s| s.queries > 0).map(|s| s.map)).collect())
            .collect()
    }
}

/// The three settings of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setting {
    /// Queries of L against the candidates of L.
    Mono,
    /// Queries of X against the candidates of Y ≠ X.
    Cross,
    /// Queries of X against the whole multilingual pool.
    Multi,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::Mono => "mono",
            Setting::Cross => "cross",
            Setting::Multi => "multi",
        })
    }
}

/// The numbers the paper reports (Table 1: mAP and R@k per setting; Table 2: rank distance),
/// each the macro average of a per-query value ([`PerQueryValues`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum HeadlineMetric {
    /// `settings.mono.map`.
    #[serde(rename = "map_mono")]
    MapMono,
    /// `settings.cross.map`.
    #[serde(rename = "map_cross")]
    MapCross,
    /// `settings.multi.map`.
    #[serde(rename = "map_multi")]
    MapMulti,
    /// `settings.multi.rank_distance` (language bias: lower is better).
    #[serde(rename = "rank_distance")]
    RankDistance,
    /// `settings.mono.recall@1`.
    #[serde(rename = "recall@1_mono")]
    RecallAt1Mono,
    /// `settings.cross.recall@1`.
    #[serde(rename = "recall@1_cross")]
    RecallAt1Cross,
    /// `settings.multi.recall@10`.
    #[serde(rename = "recall@10_multi")]
    RecallAt10Multi,
}

impl HeadlineMetric {
    /// All of them, in the order of the paper's tables.
    pub const ALL: [HeadlineMetric; 7] = [
        HeadlineMetric::MapMono,
        HeadlineMetric::MapCross,
        HeadlineMetric::MapMulti,
        HeadlineMetric::RankDistance,
        HeadlineMetric::RecallAt1Mono,
        HeadlineMetric::RecallAt1Cross,
        HeadlineMetric::RecallAt10Multi,
    ];

    /// Name in `report.json` and in tables (`map_mono`, `recall@1_cross`, `rank_distance`...).
    pub fn name(self) -> &'static str {
        match self {
            HeadlineMetric::MapMono => "map_mono",
            HeadlineMetric::MapCross => "map_cross",
            HeadlineMetric::MapMulti => "map_multi",
            HeadlineMetric::RankDistance => "rank_distance",
            HeadlineMetric::RecallAt1Mono => "recall@1_mono",
            HeadlineMetric::RecallAt1Cross => "recall@1_cross",
            HeadlineMetric::RecallAt10Multi => "recall@10_multi",
        }
    }

    /// The setting whose pools (and query weights) the metric is measured in.
    pub fn setting(self) -> Setting {
        match self {
            HeadlineMetric::MapMono | HeadlineMetric::RecallAt1Mono => Setting::Mono,
            HeadlineMetric::MapCross | HeadlineMetric::RecallAt1Cross => Setting::Cross,
            HeadlineMetric::MapMulti | HeadlineMetric::RankDistance | HeadlineMetric::RecallAt10Multi => Setting::Multi,
        }
    }

    /// True for rank distance, where a smaller value is better.
    pub fn lower_is_better(self) -> bool {
        self == HeadlineMetric::RankDistance
    }

    /// The macro value in a report's settings (`None` only for a rank distance that is absent).
    pub fn of(self, settings: &SettingScores) -> Option<f64> {
        match self {
            HeadlineMetric::MapMono => Some(settings.mono.map),
            HeadlineMetric::MapCross => Some(settings.cross.map),
            HeadlineMetric::MapMulti => Some(settings.multi.map),
            HeadlineMetric::RankDistance => settings.multi.rank_distance,
            HeadlineMetric::RecallAt1Mono => Some(settings.mono.recall_at_1),
            HeadlineMetric::RecallAt1Cross => Some(settings.cross.recall_at_1),
            HeadlineMetric::RecallAt10Multi => Some(settings.multi.recall_at_10),
        }
    }
}

impl fmt::Display for HeadlineMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Each query's weight in the macro average of each setting, aligned with
/// [`PerQueryValues::queries`]. The weights of a setting sum to 1 over its evaluated queries;
/// a query not evaluated in a setting has weight 0 (and value 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SettingWeights {
    /// 1 / (languages · queries of the query's language).
    pub mono: Vec<f64>,
    /// (1 / pairs) · Σ over the query's answerable targets Y of 1 / (answerable queries of X→Y).
    pub cross: Vec<f64>,
    /// 1 / (languages · queries of the query's language).
    pub multi: Vec<f64>,
}

impl SettingWeights {
    /// The weights of one setting.
    pub fn get(&self, setting: Setting) -> &[f64] {
        match setting {
            Setting::Mono => &self.mono,
            Setting::Cross => &self.cross,
            Setting::Multi => &self.multi,
        }
    }
}

/// Per-query values of the headline metrics ([`EvalOptions::per_query`]): the unit that the
/// paired tests of [`crate::significance`] resample.
///
/// The reported numbers are macro averages (over languages, or over ordered pairs for cross),
/// so each query gets a **weight** such that Σ_q weight_q · value_q is exactly the reported
/// number (up to rounding):
///
/// - mono (mAP, R@1): value = the query's AP / R@1 in its own language's pool; weight =
///   1 / (L · n_X), with n_X the query language's evaluated queries and L the languages with any.
/// - cross (mAP, R@1): value = the mean of the query's AP / R@1 over its answerable target
///   languages Y ≠ X, **weighted by 1 / n_XY** (n_XY = answerable queries of the pair X→Y);
///   weight = (1 / P) Σ_Y 1 / n_XY, with P the pairs with any answerable query. Then
///   weight · value = (1 / P) Σ_Y AP_XY / n_XY, each pair's share of the macro mean. When every
///   pair has the same number of queries (XQuAD-R) the value is the plain mean over targets and
///   all weights are equal; on MLQA-R a query whose id exists in few languages counts for the
///   pairs it is in, as in the reported number. A query with no answer outside its own
///   language has weight 0.
/// - multi (mAP, R@10, rank distance): value = the query's AP / R@10 / rank distance in the
///   multilingual pool (rank distance 0 when undefined, as in the report); weight =
///   1 / (L · n_X).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PerQueryValues {
    /// Query keys `"{lang}:{id}"` (the embeddings file's `lang` and `id`), in benchmark order
    /// (languages sorted by code, then file order).
    pub queries: Vec<String>,
    /// Each query's weight per setting.
    pub weights: SettingWeights,
    /// Each query's value per headline metric, aligned with `queries`.
    pub values: BTreeMap<HeadlineMetric, Vec<f64>>,
}

impl PerQueryValues {
    /// The key of a query of language `lang` with parallel id `id`.
    pub fn query_key(lang: &str, id: &str) -> String {
        format!("{lang}:{id}")
    }

    /// (values, weights) of `metric`, or `None` if the metric is missing.
    pub fn metric(&self, metric: HeadlineMetric) -> Option<(&[f64], &[f64])> {
        self.values.get(&metric).map(|v| (v.as_slice(), self.weights.get(metric.setting())))
    }

    /// Σ weight · value of `metric`: the report's macro number, recomputed from the queries.
    pub fn weighted_mean(&self, metric: HeadlineMetric) -> Option<f64> {
        self.metric(metric).map(|(v, w)| v.iter().zip(w).map(|(v, w)| v * w).sum())
    }
}

/// Per-query values while the protocol runs ([`EvalOptions::per_query`]).
struct PerQueryRecorder {
    nl: usize,
    /// (AP, R@1) of query q in pair (its language, y), at `[q * nl + y]`; `None`: not answerable.
    pair: Vec<Option<(f64, f64)>>,
    /// (AP, R@10, rank distance) of query q in the multilingual pool; `None`: skipped.
    multi: Vec<Option<(f64, f64, f64)>>,
}

impl PerQueryRecorder {
    fn new(nq: usize, nl: usize) -> Self {
        PerQueryRecorder { nl, pair: vec![None; nq * nl], multi: vec![None; nq] }
    }

    /// The same values the accumulators add (same calls on the same ranks, so the same bits).
    fn record_pair(&mut self, q: usize, y: usize, ranks: &QueryRanks) {
        self.pair[q * self.nl + y] = Some((ranks.average_precision(), ranks.recall_at(1)));
    }

    fn record_multi(&mut self, q: usize, ranks: &QueryRanks) {
        self.multi[q] = Some((ranks.average_precision(), ranks.recall_at(10), ranks.rank_distance().unwrap_or(0.0)));
    }

    /// Weights from the evaluated counts of the units (`pair[x * nl + y]`, `multi[x]`).
    fn finish(self, benchmark: &RetrievalBenchmark, pair: &[Accumulator], multi: &[Accumulator]) -> PerQueryValues {
        let (nq, nl) = (self.multi.len(), self.nl);
        // Units left out of the macro averages (no evaluated query) are left out of these counts.
        let count = |units: usize| units.max(1) as f64;
        let mono_langs = count((0..nl).filter(|&x| pair[x * nl + x].queries > 0).count());
        let multi_langs = count(multi.iter().filter(|m| m.queries > 0).count());
        let cross_pairs =
            count((0..nl).flat_map(|x| (0..nl).filter(move |&y| y != x && pair[x * nl + y].queries > 0)).count());
        let mut values: BTreeMap<HeadlineMetric, Vec<f64>> = HeadlineMetric::ALL.iter().map(|&m| (m, vec![0.0; nq])).collect();
        let mut set = |m: HeadlineMetric, q: usize, v: f64| values.get_mut(&m).expect("every metric is present")[q] = v;
        let mut weights = SettingWeights { mono: vec![0.0; nq], cross: vec![0.0; nq], multi: vec![0.0; nq] };
        for x in 0..nl {
            for q in benchmark.query_range(x) {
                if let Some((ap, r1)) = self.pair[q * nl + x] {
                    weights.mono[q] = 1.0 / (mono_langs * pair[x * nl + x].queries as f64);
                    set(HeadlineMetric::MapMono, q, ap);
                    set(HeadlineMetric::RecallAt1Mono, q, r1);
                }
                // Σ_Y AP_XY / n_XY and Σ_Y 1 / n_XY over the answerable targets.
                let (mut ap_sum, mut r1_sum, mut inv_sum) = (0.0, 0.0, 0.0);
                for y in (0..nl).filter(|&y| y != x) {
                    if let Some((ap, r1)) = self.pair[q * nl + y] {
                        let inv = 1.0 / pair[x * nl + y].queries as f64;
                        ap_sum += ap * inv;
                        r1_sum += r1 * inv;
                        inv_sum += inv;
                    }
                }
                if inv_sum > 0.0 {
                    weights.cross[q] = inv_sum / cross_pairs;
                    set(HeadlineMetric::MapCross, q, ap_sum / inv_sum);
                    set(HeadlineMetric::RecallAt1Cross, q, r1_sum / inv_sum);
                }
                if let Some((ap, r10, rd)) = self.multi[q] {
                    weights.multi[q] = 1.0 / (multi_langs * multi[x].queries as f64);
                    set(HeadlineMetric::MapMulti, q, ap);
                    set(HeadlineMetric::RecallAt10Multi, q, r10);
                    set(HeadlineMetric::RankDistance, q, rd);
                }
            }
        }
        let queries = benchmark.queries.iter().map(|q| PerQueryValues::query_key(&q.lang, &q.id)).collect();
        PerQueryValues { queries, weights, values }
    }
}

/// The extra measures of one evaluation with their (checked) names.
struct Extras<'a> {
    measures: &'a [Arc<dyn Measure>],
    names: Vec<String>,
}

/// Running sums of per-query values.
#[derive(Debug, Clone, Default)]
struct Accumulator {
    ap: f64,
    rr10: f64,
    r1: f64,
    r10: f64,
    rd: f64,
    /// Sums of the extra measures, in [`Extras::measures`] order.
    extra: Vec<f64>,
    queries: usize,
    skipped: usize,
}

impl Accumulator {
    fn new(extras: &Extras<'_>) -> Self {
        Accumulator { extra: vec![0.0; extras.measures.len()], ..Default::default() }
    }

    fn add(&mut self, ranks: &QueryRanks, with_rank_distance: bool, extras: &Extras<'_>) {
        self.ap += ranks.average_precision();
        self.rr10 += ranks.reciprocal_rank_at(10);
        self.r1 += ranks.recall_at(1);
        self.r10 += ranks.recall_at(10);
        if with_rank_distance {
            self.rd += ranks.rank_distance().unwrap_or(0.0);
        }
        for (sum, m) in self.extra.iter_mut().zip(extras.measures) {
            *sum += aggregated_value(&**m, ranks);
        }
        self.queries += 1;
    }

    fn mean(&self, with_rank_distance: bool, extras: &Extras<'_>) -> Scores {
        let n = self.queries.max(1) as f64;
        Scores {
            map: self.ap / n,
            mrr_at_10: self.rr10 / n,
            recall_at_1: self.r1 / n,
            recall_at_10: self.r10 / n,
            rank_distance: with_rank_distance.then_some(self.rd / n),
            extra: extras.names.iter().cloned().zip(self.extra.iter().map(|s| s / n)).collect(),
            queries: self.queries,
            skipped_queries: self.skipped,
            averaged_over: None,
        }
    }
}

/// Unweighted mean of several units' scores (units with no evaluated query are left out).
///
/// Each extra measure is averaged over the non-empty units that have it (in a report from
/// [`evaluate_benchmark`] every unit has every extra measure, so this is the same mean as mAP's).
pub fn macro_average<'a>(units: impl IntoIterator<Item = &'a Scores>) -> Scores {
    let mut out = Scores::default();
    let mut n = 0usize;
    let mut rd: Option<f64> = None;
    let mut extra: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for s in units {
        out.queries += s.queries;
        out.skipped_queries += s.skipped_queries;
        if s.queries == 0 {
            continue;
        }
        n += 1;
        out.map += s.map;
        out.mrr_at_10 += s.mrr_at_10;
        out.recall_at_1 += s.recall_at_1;
        out.recall_at_10 += s.recall_at_10;
        if let Some(d) = s.rank_distance {
            *rd.get_or_insert(0.0) += d;
        }
        for (name, &v) in &s.extra {
            let (sum, count) = extra.entry(name).or_default();
            *sum += v;
            *count += 1;
        }
    }
    let d = n.max(1) as f64;
    out.map /= d;
    out.mrr_at_10 /= d;
    out.recall_at_1 /= d;
    out.recall_at_10 /= d;
    out.rank_distance = rd.map(|v| v / d);
    out.extra = extra.into_iter().map(|(name, (sum, count))| (name.to_string(), sum / count as f64)).collect();
    out.averaged_over = Some(n);
    out
}

/// Runs the full protocol (mono, cross, multi; per language, per pair, macro) from embeddings,
/// with the built-in measures and `options.extra_measures` (an error if two of those share a
/// name or one has an empty name).
pub fn evaluate_benchmark(
    benchmark: &RetrievalBenchmark,
    embeddings: &BenchmarkEmbeddings,
    options: &EvalOptions,
) -> Result<LareqaReport> {
    let extras = Extras { measures: &options.extra_measures, names: checked_names(&options.extra_measures)? };
    let (nq, nc) = (benchmark.queries.len(), benchmark.candidates.len());
    if embeddings.queries.nrows() != nq || embeddings.candidates.nrows() != nc {
        return Err(MetricsError::Invalid(format!(
            "embeddings have {} queries and {} candidates, the benchmark {nq} and {nc}",
            embeddings.queries.nrows(),
            embeddings.candidates.nrows()
        )));
    }
    let (queries, candidates) = match options.score {
        ScoreFunction::Dot => (embeddings.queries.view(), embeddings.candidates.view()),
        ScoreFunction::Cosine => {
            return evaluate_benchmark(
                benchmark,
                &BenchmarkEmbeddings { queries: normalized(&embeddings.queries), candidates: normalized(&embeddings.candidates) },
                &EvalOptions { score: ScoreFunction::Dot, ..options.clone() },
            )
            .map(|mut r| {
                r.score = ScoreFunction::Cosine;
                r
            });
        }
    };

    let nl = benchmark.languages.len();
    let groups: Vec<_> = (0..nl).map(|l| benchmark.candidate_range(l)).collect();
    let relevant: Vec<&[u32]> = benchmark.queries.iter().map(|q| q.relevant.as_slice()).collect();
    let counts = relevant_rank_counts(queries, candidates, &groups, &relevant, options.engine)?;

    // pair[x * nl + y], multi[x]
    let mut pair = vec![Accumulator::new(&extras); nl * nl];
    let mut multi = vec![Accumulator::new(&extras); nl];
    let mut recorder = options.per_query.then(|| PerQueryRecorder::new(nq, nl));
    for x in 0..nl {
        for q in benchmark.query_range(x) {
            for y in 0..nl {
                let ranks = counts.ranks_in_group(q, y);
                if ranks.is_empty() {
                    pair[x * nl + y].skipped += 1;
                } else {
                    let ranks = QueryRanks::binary(ranks)?;
                    pair[x * nl + y].add(&ranks, false, &extras);
                    if let Some(r) = recorder.as_mut() {
                        r.record_pair(q, y, &ranks);
                    }
                }
            }
            if counts.relevant(q).is_empty() {
                multi[x].skipped += 1;
            } else {
                let ranks = counts.query_ranks_in_pool(q);
                multi[x].add(&ranks, true, &extras);
                if let Some(r) = recorder.as_mut() {
                    r.record_multi(q, &ranks);
                }
            }
        }
    }
    let per_query = recorder.map(|r| r.finish(benchmark, &pair, &multi));

    let lang = |l: usize| benchmark.languages[l].to_string();
    let mut pairs = BTreeMap::new();
    let mut per_language = BTreeMap::new();
    for x in 0..nl {
        for y in 0..nl {
            pairs.insert(LareqaReport::pair_key(&lang(x), &lang(y)), pair[x * nl + y].mean(false, &extras));
        }
        let targets: Vec<Scores> = (0..nl).filter(|&y| y != x).map(|y| pair[x * nl + y].mean(false, &extras)).collect();
        per_language.insert(
            lang(x),
            LanguageScores {
                queries: benchmark.query_range(x).len(),
                mono: pair[x * nl + x].mean(false, &extras),
                cross: macro_average(&targets),
                multi: multi[x].mean(true, &extras),
            },
        );
    }
    let cross_pairs: Vec<Scores> = (0..nl)
        .flat_map(|x| (0..nl).filter(move |&y| y != x).map(move |y| (x, y)))
        .map(|(x, y)| pair[x * nl + y].mean(false, &extras))
        .collect();
    let settings = SettingScores {
        mono: macro_average(per_language.values().map(|l| &l.mono)),
        cross: macro_average(&cross_pairs),
        multi: macro_average(per_language.values().map(|l| &l.multi)),
    };
    Ok(LareqaReport {
        benchmark: benchmark.name.clone(),
        score: options.score,
        languages: benchmark.languages.iter().map(|l| l.to_string()).collect(),
        num_queries: nq,
        num_candidates: nc,
        settings,
        per_language,
        pairs,
        per_query,
    })
}

fn normalized(m: &Array2<f32>) -> Array2<f32> {
    let mut m = m.clone();
    normalize_rows(&mut m);
    m
}
