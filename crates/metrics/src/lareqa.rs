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
}

impl fmt::Debug for EvalOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EvalOptions")
            .field("score", &self.score)
            .field("engine", &self.engine)
            .field("extra_measures", &self.extra_measures)
            .finish()
    }
}

impl PartialEq for EvalOptions {
    fn eq(&self, other: &Self) -> bool {
        self.score == other.score
            && self.engine == other.engine
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
    for x in 0..nl {
        for q in benchmark.query_range(x) {
            for y in 0..nl {
                let ranks = counts.ranks_in_group(q, y);
                if ranks.is_empty() {
                    pair[x * nl + y].skipped += 1;
                } else {
                    pair[x * nl + y].add(&QueryRanks::binary(ranks)?, false, &extras);
                }
            }
            if counts.relevant(q).is_empty() {
                multi[x].skipped += 1;
            } else {
                multi[x].add(&counts.query_ranks_in_pool(q), true, &extras);
            }
        }
    }

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
    })
}

fn normalized(m: &Array2<f32>) -> Array2<f32> {
    let mut m = m.clone();
    normalize_rows(&mut m);
    m
}
