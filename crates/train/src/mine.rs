//! Hard negatives mined with a model (sentence-transformers' `mine_hard_negatives`,
//! FlagEmbedding's `hn_mine`): for every (id, language) row of a parallel corpus, the passages of
//! a candidate pool in the row's language that the model scores highest for the row's query,
//! excluding the row's own answer and every passage of its answer cluster.
//!
//! - **One encoding path.** Queries and pool passages are embedded by
//!   [`TextPipeline::encode`] (the path `eval` and `encode` use), with the pipeline's prefixes.
//! - **Exact search.** Every query is scored against every passage of its language (one matrix
//!   product per block of queries); ties are broken by pool order, so a mined corpus is the same
//!   bytes on every run and machine that computes the same embeddings.
//! - **Never a false negative by construction.** A passage is excluded when any answer cluster it
//!   belongs to is the query's cluster ([`hybrid_ir_data::ParallelGroup::cluster`]: groups that
//!   share an answer text in some language), which also excludes the positive itself and every
//!   duplicate of it. The sampler uses the same clusters to keep such groups out of one batch.
//! - **In the passage's language.** Rows are mined per language: the query and the negative are
//!   in the row's language; in an X-Y batch the sampler takes the negative of the passage
//!   language's row, so the negative is always in the positive's language.
//!
//! Options follow sentence-transformers: a rank window over the eligible candidates
//! (`range_min`, `range_max`), an absolute or relative margin below the positive's score, a
//! maximum and minimum score, the number of negatives, and `top` or `random` choice from the
//! window. Rows without an eligible negative are left out (reported), as sentence-transformers
//! does, because the trainer uses hard negatives only in batches where every pair has one.

use std::collections::HashMap;
use std::sync::Arc;

use hybrid_ir_data::{CorpusRow, ParallelCorpus, RetrievalBenchmark, RowScores};
use hybrid_ir_metrics::rank::normalize_rows;
use hybrid_ir_metrics::{ScoreFunction, quantile};
use hybrid_ir_model::{Backbone, TextKind, TextPipeline};
use ndarray::{Axis, s};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// How the negatives are picked from the window of eligible candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NegativeChoice {
    /// The highest-scoring candidates that pass the filters (hardest first).
    #[default]
    Top,
    /// A uniform sample (without replacement, seeded per row) of the candidates that pass.
    Random,
}

/// Options of [`mine_negatives`] (sentence-transformers' names where they exist).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MineOptions {
    /// Skip the `range_min` highest-scoring eligible candidates (they are the likeliest to be
    /// unlabelled positives). Default 0.
    pub range_min: usize,
    /// Consider only the `range_max` highest-scoring eligible candidates; `None` (the default, as
    /// in sentence-transformers): all. With a margin, a short window can leave many rows without
    /// a negative (on MLQA-R with e5-small and `relative_margin` 0.05, a window of 50 left 35% out).
    pub range_max: Option<usize>,
    /// A negative must score at most `positive − margin`. Default none.
    pub margin: Option<f64>,
    /// A negative must score at most `positive × (1 − relative_margin)`. Default none.
    pub relative_margin: Option<f64>,
    /// A negative must score at most this. Default none.
    pub max_score: Option<f64>,
    /// A negative must score at least this. Default none.
    pub min_score: Option<f64>,
    /// Negatives per row (the first goes to `negative`, the others to `negative_2`, …). Default 1.
    pub num_negatives: usize,
    /// `top` or `random`. Default top.
    pub choice: NegativeChoice,
    /// Seed of the `random` choice.
    pub seed: u64,
    /// Score: cosine (the paper's and the loss's default) or dot product.
    pub score: ScoreFunction,
    /// Texts per encoder batch.
    pub batch_size: usize,
}

impl Default for MineOptions {
    fn default() -> Self {
        MineOptions {
            range_min: 0,
            range_max: None,
            margin: None,
            relative_margin: None,
            max_score: None,
            min_score: None,
            num_negatives: 1,
            choice: NegativeChoice::Top,
            seed: 42,
            score: ScoreFunction::Cosine,
            batch_size: 64,
        }
    }
}

impl MineOptions {
    /// Every impossible value, as `name value: why`.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.num_negatives == 0 {
            p.push("num_negatives 0: ask for at least one negative".into());
        }
        if self.batch_size == 0 {
            p.push("batch_size 0: give at least 1".into());
        }
        if let Some(max) = self.range_max
            && max <= self.range_min
        {
            p.push(format!("range_max {max} must be above range_min {} (the window would be empty)", self.range_min));
        }
        for (name, v) in [("margin", self.margin), ("max_score", self.max_score), ("min_score", self.min_score)] {
            if let Some(v) = v
                && !v.is_finite()
            {
                p.push(format!("{name} {v}: give a finite number"));
            }
        }
        if let Some(m) = self.relative_margin
            && !(0.0..1.0).contains(&m)
        {
            p.push(format!("relative_margin {m}: give a value in [0, 1)"));
        }
        if let (Some(lo), Some(hi)) = (self.min_score, self.max_score)
            && lo > hi
        {
            p.push(format!("min_score {lo} is above max_score {hi}"));
        }
        p
    }

    /// Whether a candidate scoring `negative` passes the score filters for a positive scoring
    /// `positive`.
    fn passes(&self, positive: f32, negative: f32) -> bool {
        let (p, n) = (f64::from(positive), f64::from(negative));
        self.margin.is_none_or(|m| n <= p - m)
            && self.relative_margin.is_none_or(|m| n <= p * (1.0 - m))
            && self.max_score.is_none_or(|m| n <= m)
            && self.min_score.is_none_or(|m| n >= m)
    }
}

/// One passage of a [`CandidatePool`] language.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolPassage {
    /// The text.
    pub text: Arc<str>,
    /// Answer clusters it is relevant to, ascending (empty: relevant to no query of the corpus).
    pub clusters: Vec<u32>,
}

/// The passages negatives are mined from, per language of the corpus, each with the answer
/// clusters it answers (so those can be excluded). Texts are distinct within a language.
#[derive(Debug, Clone)]
pub struct CandidatePool {
    passages: Vec<Vec<PoolPassage>>,
    index: Vec<HashMap<Arc<str>, usize>>,
}

impl CandidatePool {
    /// The corpus's own positives: per language, every distinct answer passage, relevant to the
    /// clusters of the groups that have it.
    pub fn of_corpus(corpus: &ParallelCorpus) -> CandidatePool {
        let n = corpus.languages().len();
        let mut pool = CandidatePool { passages: vec![Vec::new(); n], index: vec![HashMap::new(); n] };
        for g in corpus.groups() {
            for (l, ex) in &g.versions {
                pool.add(*l as usize, &ex.positive, [g.cluster]);
            }
        }
        pool
    }

    /// Adds every candidate sentence of a LAReQA-style benchmark of the same data (e.g. all
    /// sentences of XQuAD-R's paragraphs, not only the answers): a sentence answering questions
    /// of the corpus is relevant to their clusters, the others to none. Languages the corpus
    /// lacks are skipped; an answer id the corpus lacks is an error (a different data set).
    pub fn add_benchmark_sentences(&mut self, corpus: &ParallelCorpus, benchmark: &RetrievalBenchmark) -> Result<()> {
        let cluster_of: HashMap<&str, u32> = corpus.groups().iter().map(|g| (&*g.id, g.cluster)).collect();
        for c in &benchmark.candidates {
            let Some(l) = corpus.language_index(&c.lang) else { continue };
            let clusters = c
                .answers
                .iter()
                .map(|id| {
                    cluster_of.get(&**id).copied().ok_or_else(|| {
                        TrainError::Other(format!(
                            "benchmark `{}` candidate {} answers id `{id}`, which corpus `{}` does not have",
                            benchmark.name,
                            c.id,
                            corpus.name()
                        ))
                    })
                })
                .collect::<Result<Vec<u32>>>()?;
            self.add(l as usize, &c.sentence, clusters);
        }
        Ok(())
    }

    /// Adds `text` to language `lang` (once per distinct text) and marks it relevant to `clusters`.
    fn add(&mut self, lang: usize, text: &Arc<str>, clusters: impl IntoIterator<Item = u32>) {
        let i = *self.index[lang].entry(text.clone()).or_insert_with(|| {
            self.passages[lang].push(PoolPassage { text: text.clone(), clusters: Vec::new() });
            self.passages[lang].len() - 1
        });
        let known = &mut self.passages[lang][i].clusters;
        for cluster in clusters {
            if let Err(at) = known.binary_search(&cluster) {
                known.insert(at, cluster);
            }
        }
    }

    /// The passages of language index `lang` (the corpus's numbering).
    pub fn passages(&self, lang: u16) -> &[PoolPassage] {
        &self.passages[lang as usize]
    }

    /// Passages over all languages.
    pub fn len(&self) -> usize {
        self.passages.iter().map(Vec::len).sum()
    }

    /// Whether the pool has no passage.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`mine_negatives`] found.
#[derive(Debug, Clone)]
pub struct MinedCorpus {
    /// One row per (id, language) that got at least one negative, in corpus order (groups, then
    /// languages), ready for [`hybrid_ir_data::write_user_corpus`].
    pub rows: Vec<CorpusRow>,
    /// Rows of the corpus (queries searched).
    pub queries: usize,
    /// Rows left out: no candidate passed the window and the filters.
    pub without_negative: usize,
    /// Rows that got fewer than `num_negatives` (but at least one).
    pub short: usize,
    /// Pool passages per language, in corpus language order.
    pub pool_sizes: Vec<(String, usize)>,
}

/// Distribution of a set of scores (for the summary `mine` prints).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoreSummary {
    /// Values.
    pub count: usize,
    /// Mean.
    pub mean: f64,
    /// Minimum, 10th, 25th, 50th, 75th, 90th percentile and maximum.
    pub quantiles: [f64; 7],
}

impl ScoreSummary {
    /// Summary of `values` (`None` when empty).
    pub fn of(values: &[f32]) -> Option<ScoreSummary> {
        if values.is_empty() {
            return None;
        }
        let mut v: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
        v.sort_by(f64::total_cmp);
        Some(ScoreSummary {
            count: v.len(),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            quantiles: [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0].map(|p| quantile(&v, p)),
        })
    }
}

impl MinedCorpus {
    /// Score distributions of the positives, the chosen negatives (all of them) and the margin
    /// positive − first negative, over the rows written.
    pub fn summaries(&self) -> [(&'static str, Option<ScoreSummary>); 3] {
        let scores = self.rows.iter().filter_map(|r| r.scores.as_ref());
        let positives: Vec<f32> = scores.clone().map(|s| s.positive).collect();
        let negatives: Vec<f32> = scores.clone().flat_map(|s| s.negatives.iter().copied()).collect();
        let margins: Vec<f32> = scores.filter_map(|s| s.negatives.first().map(|n| s.positive - n)).collect();
        [
            ("positive", ScoreSummary::of(&positives)),
            ("negatives", ScoreSummary::of(&negatives)),
            ("positive − first negative", ScoreSummary::of(&margins)),
        ]
    }
}

/// Queries scored per matrix product: bounds the score block to `QUERY_BLOCK × pool` floats.
const QUERY_BLOCK: usize = 256;

/// Mines hard negatives for every (id, language) row of `corpus` from `pool` with `model` (a
/// `valid()` model) and `pipeline`. `progress` gets the number of texts embedded so far (of
/// `corpus.num_examples() + pool.len()`).
pub fn mine_negatives<B: Backbone>(
    model: &B,
    pipeline: &TextPipeline,
    corpus: &ParallelCorpus,
    pool: &CandidatePool,
    options: &MineOptions,
    mut progress: impl FnMut(usize),
) -> Result<MinedCorpus> {
    let problems = options.problems();
    if !problems.is_empty() {
        return Err(TrainError::Other(format!("mining options: {}", problems.join("; "))));
    }
    // Mined rows per (group, language), filled language by language, written in corpus order.
    let mut mined: HashMap<(u32, u16), (Vec<Arc<str>>, RowScores)> = HashMap::new();
    let mut done = 0;
    let mut pool_sizes = Vec::new();
    for (l, lang) in corpus.languages().iter().enumerate() {
        let l = l as u16;
        let passages = pool.passages(l);
        pool_sizes.push((lang.to_string(), passages.len()));
        let groups = corpus.groups_in(l);
        if groups.is_empty() {
            continue;
        }
        let rows: Vec<(u32, &hybrid_ir_data::Example, u32)> = groups
            .iter()
            .map(|&g| {
                let group = &corpus.groups()[g as usize];
                (g, group.version(l).expect("groups_in lists groups with this language"), group.cluster)
            })
            .collect();
        let positive_index: Vec<usize> = rows
            .iter()
            .map(|(g, ex, _)| {
                pool.index[l as usize].get(&ex.positive).copied().ok_or_else(|| {
                    TrainError::Other(format!(
                        "the candidate pool has no passage equal to the positive of id `{}` ({lang}): build it from the same corpus",
                        corpus.groups()[*g as usize].id
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let queries: Vec<&str> = rows.iter().map(|(_, ex, _)| &*ex.query).collect();
        let texts: Vec<&str> = passages.iter().map(|p| &*p.text).collect();
        let base = done;
        let mut q = pipeline.encode(model, &queries, TextKind::Query, options.batch_size, |n| progress(base + n))?;
        done += queries.len();
        let base = done;
        let mut p = pipeline.encode(model, &texts, TextKind::Passage, options.batch_size, |n| progress(base + n))?;
        done += texts.len();
        if options.score == ScoreFunction::Cosine {
            normalize_rows(&mut q);
            normalize_rows(&mut p);
        }
        for start in (0..rows.len()).step_by(QUERY_BLOCK) {
            let end = (start + QUERY_BLOCK).min(rows.len());
            let scores = q.slice(s![start..end, ..]).dot(&p.t());
            for (offset, row_scores) in scores.axis_iter(Axis(0)).enumerate() {
                let r = start + offset;
                let (g, _, cluster) = rows[r];
                let row_scores = row_scores.as_slice().expect("a row of a standard-layout product");
                let positive_score = row_scores[positive_index[r]];
                let chosen = choose(row_scores, positive_score, passages, cluster, options, (g, l));
                if !chosen.is_empty() {
                    let texts = chosen.iter().map(|&j| passages[j].text.clone()).collect();
                    let negatives = chosen.iter().map(|&j| row_scores[j]).collect();
                    mined.insert((g, l), (texts, RowScores { positive: positive_score, negatives }));
                }
            }
        }
    }

    let mut out = MinedCorpus { rows: Vec::new(), queries: 0, without_negative: 0, short: 0, pool_sizes };
    for (g, group) in corpus.groups().iter().enumerate() {
        for (l, ex) in &group.versions {
            out.queries += 1;
            let Some((negatives, scores)) = mined.remove(&(g as u32, *l)) else {
                out.without_negative += 1;
                continue;
            };
            out.short += usize::from(negatives.len() < options.num_negatives);
            out.rows.push(CorpusRow {
                id: group.id.clone(),
                lang: corpus.languages()[*l as usize].clone(),
                query: ex.query.clone(),
                positive: ex.positive.clone(),
                context: ex.context.clone(),
                negatives,
                scores: Some(scores),
            });
        }
    }
    Ok(out)
}

/// The pool indices chosen for one query: eligible candidates (not of the query's cluster)
/// ranked by score (ties: pool order), the window `[range_min, range_max)`, the score filters,
/// then `top` or a seeded `random` choice, returned in rank order.
fn choose(
    scores: &[f32],
    positive: f32,
    passages: &[PoolPassage],
    cluster: u32,
    options: &MineOptions,
    (group, lang): (u32, u16),
) -> Vec<usize> {
    let mut eligible: Vec<usize> = (0..passages.len()).filter(|&j| passages[j].clusters.binary_search(&cluster).is_err()).collect();
    let by_rank = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    let window_end = options.range_max.unwrap_or(usize::MAX).min(eligible.len());
    if window_end < eligible.len() && window_end > 0 {
        eligible.select_nth_unstable_by(window_end - 1, by_rank);
        eligible.truncate(window_end);
    }
    eligible.sort_unstable_by(by_rank);
    let window: Vec<usize> =
        eligible.into_iter().skip(options.range_min).filter(|&j| options.passes(positive, scores[j])).collect();
    match options.choice {
        NegativeChoice::Top => window.into_iter().take(options.num_negatives).collect(),
        NegativeChoice::Random => {
            let n = options.num_negatives.min(window.len());
            // One stream per row, so a row's choice does not depend on the other rows.
            let mut rng = ChaCha8Rng::seed_from_u64(crate::step::step_seed(options.seed, u64::from(group), usize::from(lang)));
            let mut picked = sample(&mut rng, window.len(), n).into_vec();
            picked.sort_unstable();
            picked.into_iter().map(|i| window[i]).collect()
        }
    }
}
