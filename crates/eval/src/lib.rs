//! # hybrid-ir-eval
//!
//! Encode a LAReQA benchmark (XQuAD-R, MLQA-R) with any [`Backbone`] through the model crate's
//! one encoding path, then run the metrics crate's mono / cross / multilingual protocol. Used by
//! `hybrid-ir eval --model`, the trainer's periodic evaluation and `reproduce`; it does not
//! depend on the training crate.
//!
//! Queries get the query prefix, candidates get the passage prefix. A candidate is its answer
//! sentence alone by default ([`CandidateText::Sentence`]: the paper does not say, and the
//! sentence alone is what the training positives are), or the sentence followed by its paragraph
//! ([`CandidateText::SentenceContext`], as LAReQA fed USE-QA a sentence plus its context).
//! Scores are cosine, as in the paper.

use std::path::Path;

use hybrid_ir_data::{LareqaBenchmark, LareqaDataset, RetrievalBenchmark, resolve_data_dir};
use hybrid_ir_metrics::{BenchmarkEmbeddings, EvalOptions, LareqaReport, evaluate_benchmark};
use hybrid_ir_collective::{Collective, SingleProcess};
use hybrid_ir_model::{Backbone, TextKind, TextPipeline, embed_sequences_share};

/// The workspace's encoding pipeline ([`TextPipeline`] + any [`Backbone`]) as the search crate's
/// [`TextEncoder`](hybrid_ir_search::TextEncoder): `hybrid-ir index` and `search` embed documents
/// and queries through it, exactly as `encode` and `eval --model` do (one encoding path).
pub struct PipelineTextEncoder<'a, B: Backbone> {
    /// The model (a `valid()` one: no dropout, no graph).
    pub model: &'a B,
    /// Tokenizers, truncation and prefixes.
    pub pipeline: &'a TextPipeline,
    /// Texts per forward pass (batches are length-sorted).
    pub batch_size: usize,
    /// What the index manifest records as the encoder (e.g. `model multilingual-e5-small`).
    pub description: String,
}

impl<B: Backbone> hybrid_ir_search::TextEncoder for PipelineTextEncoder<'_, B> {
    fn describe(&self) -> String {
        self.description.clone()
    }

    fn prefix(&self, side: hybrid_ir_search::Side) -> String {
        self.pipeline.prefixes.prefix(text_kind(side)).to_string()
    }

    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn max_tokens(&self, side: hybrid_ir_search::Side) -> Option<usize> {
        Some(match side {
            hybrid_ir_search::Side::Query => self.pipeline.query_tokenizer.max_len(),
            hybrid_ir_search::Side::Passage => self.pipeline.passage_tokenizer.max_len(),
        })
    }

    fn encode(
        &mut self,
        texts: &[&str],
        side: hybrid_ir_search::Side,
        progress: &mut dyn FnMut(usize),
    ) -> std::result::Result<ndarray::Array2<f32>, String> {
        self.pipeline.encode(self.model, texts, text_kind(side), self.batch_size, progress).map_err(|e| e.to_string())
    }
}

fn text_kind(side: hybrid_ir_search::Side) -> TextKind {
    match side {
        hybrid_ir_search::Side::Query => TextKind::Query,
        hybrid_ir_search::Side::Passage => TextKind::Passage,
    }
}

/// Errors of evaluation: the data, model or metrics crate's, passed through.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Loading the benchmark failed.
    #[error(transparent)]
    Data(#[from] hybrid_ir_data::DataError),
    /// Tokenizing or encoding failed.
    #[error(transparent)]
    Model(#[from] hybrid_ir_model::ModelError),
    /// Scoring failed.
    #[error(transparent)]
    Metrics(#[from] hybrid_ir_metrics::MetricsError),
    /// Error from the collective operations of an encoding split over ranks.
    #[error("encoding across ranks: {0}")]
    Collective(#[from] hybrid_ir_collective::CollectiveError),
    /// A requested language is not a language code.
    #[error("language {0:?} is not a language code (letters, digits, '-' and '_' only)")]
    Language(String),
}

/// Result alias of this crate.
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

/// What text stands for a candidate when it is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CandidateText {
    /// The answer sentence alone (default).
    #[default]
    Sentence,
    /// The sentence, a space, then its whole paragraph (truncated at the max length).
    SentenceContext,
}

impl std::str::FromStr for CandidateText {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "sentence" => Ok(Self::Sentence),
            "sentence+context" => Ok(Self::SentenceContext),
            other => Err(format!("unknown candidate text {other:?}: expected `sentence` or `sentence+context`")),
        }
    }
}

impl CandidateText {
    /// The text encoded for `candidate` (before the passage prefix).
    pub fn text_of(self, candidate: &hybrid_ir_data::BenchmarkCandidate) -> String {
        match self {
            Self::Sentence => candidate.sentence.to_string(),
            Self::SentenceContext => format!("{} {}", candidate.sentence, candidate.context),
        }
    }
}

/// A benchmark with its texts already tokenized for one [`TextPipeline`].
#[derive(Debug, Clone)]
pub struct TokenizedBenchmark {
    /// The retrieval view (queries, candidates, relevance).
    pub benchmark: RetrievalBenchmark,
    /// Query token ids, aligned with `benchmark.queries`.
    pub queries: Vec<Vec<u32>>,
    /// Candidate token ids, aligned with `benchmark.candidates`.
    pub candidates: Vec<Vec<u32>>,
}

/// Loads `xquad-r` / `mlqa-r` from `data_dir` (or the default data root), optionally only
/// some languages.
pub fn load_benchmark(name: &str, data_dir: Option<&Path>, languages: &[String]) -> Result<RetrievalBenchmark> {
    let bench = LareqaBenchmark::parse(name)?;
    // Language codes become file names under the benchmark directory: anything but a plain code
    // (`../x`, `a/b`) could read outside it.
    if let Some(bad) =
        languages.iter().find(|l| l.is_empty() || !l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        return Err(EvalError::Language(bad.clone()));
    }
    let root = resolve_data_dir(data_dir);
    let dataset = if languages.is_empty() {
        bench.load(&root)?
    } else {
        let langs: Vec<&str> = languages.iter().map(String::as_str).collect();
        LareqaDataset::load_languages(bench.name(), &bench.dir(&root), &langs)?
    };
    Ok(RetrievalBenchmark::from_lareqa(&dataset))
}

impl TokenizedBenchmark {
    /// Tokenizes every query and candidate (candidates as their sentence alone).
    pub fn new(benchmark: RetrievalBenchmark, pipeline: &TextPipeline) -> Result<Self> {
        Self::with_candidate_text(benchmark, pipeline, CandidateText::Sentence)
    }

    /// Tokenizes every query, and every candidate as `candidate_text` says.
    pub fn with_candidate_text(
        benchmark: RetrievalBenchmark,
        pipeline: &TextPipeline,
        candidate_text: CandidateText,
    ) -> Result<Self> {
        let q: Vec<&str> = benchmark.queries.iter().map(|q| &*q.text).collect();
        let c: Vec<String> = benchmark.candidates.iter().map(|c| candidate_text.text_of(c)).collect();
        let queries = pipeline.tokenize(&q, TextKind::Query)?;
        let candidates = pipeline.tokenize(&c, TextKind::Passage)?;
        Ok(Self { benchmark, queries, candidates })
    }

    /// Number of texts to encode (queries + candidates).
    pub fn num_texts(&self) -> usize {
        self.queries.len() + self.candidates.len()
    }

    /// Encodes everything with `model` (pass a `valid()` model) and evaluates.
    /// `progress` gets the number of texts encoded so far.
    pub fn evaluate<B: Backbone>(
        &self,
        model: &B,
        pipeline: &TextPipeline,
        batch_size: usize,
        progress: impl FnMut(usize),
    ) -> Result<LareqaReport> {
        let embeddings = self.encode(model, pipeline, batch_size, progress)?;
        self.evaluate_embeddings(embeddings)
    }

    /// Encodes queries then candidates with `model` (a `valid()` model), in length-sorted
    /// batches of `batch_size`; rows are aligned with the benchmark. `progress` gets the number
    /// of texts encoded so far.
    pub fn encode<B: Backbone>(
        &self,
        model: &B,
        pipeline: &TextPipeline,
        batch_size: usize,
        progress: impl FnMut(usize),
    ) -> Result<BenchmarkEmbeddings> {
        self.encode_across(model, pipeline, batch_size, &SingleProcess, progress)
    }

    /// [`TokenizedBenchmark::encode`] split over the ranks of `collective`: each rank embeds every
    /// `world`-th length-sorted batch, and the ranks' rows are summed into the full matrices on
    /// every rank (the others' rows are 0 there, so the sum is exact: the same embeddings, bit
    /// for bit, as one process). `progress` counts this rank's texts.
    pub fn encode_across<B: Backbone>(
        &self,
        model: &B,
        pipeline: &TextPipeline,
        batch_size: usize,
        collective: &dyn Collective,
        mut progress: impl FnMut(usize),
    ) -> Result<BenchmarkEmbeddings> {
        let share = (collective.rank(), collective.world_size());
        let mut own_queries = 0;
        let queries = embed_sequences_share(model, &self.queries, pipeline.pad_id(), batch_size, share, |n| {
            own_queries = n;
            progress(n)
        })?;
        let candidates =
            embed_sequences_share(model, &self.candidates, pipeline.pad_id(), batch_size, share, |n| progress(own_queries + n))?;
        sum_over_ranks(collective, BenchmarkEmbeddings { queries, candidates })
    }

    /// Evaluates precomputed embeddings (rows aligned with the benchmark).
    pub fn evaluate_embeddings(&self, embeddings: BenchmarkEmbeddings) -> Result<LareqaReport> {
        self.evaluate_embeddings_with(embeddings, &EvalOptions::default())
    }

    /// [`Self::evaluate_embeddings`] with evaluation options (e.g. per-query values for the
    /// paired significance tests).
    pub fn evaluate_embeddings_with(&self, embeddings: BenchmarkEmbeddings, options: &EvalOptions) -> Result<LareqaReport> {
        Ok(evaluate_benchmark(&self.benchmark, &embeddings, options)?)
    }
}

/// The ranks' shares of a benchmark's embeddings (each row embedded on one rank, 0 on the others)
/// summed into the full matrices on every rank: an exact sum, so the one-process embeddings bit
/// for bit. A world of one returns them as they are.
pub fn sum_over_ranks(collective: &dyn Collective, mut shares: BenchmarkEmbeddings) -> Result<BenchmarkEmbeddings> {
    if !collective.is_identity() {
        for matrix in [&mut shares.queries, &mut shares.candidates] {
            if !matrix.is_standard_layout() {
                *matrix = matrix.as_standard_layout().into_owned();
            }
            let values = matrix.as_slice_mut().expect("a standard-layout array is one slice");
            collective.all_reduce_sum(values)?;
        }
    }
    Ok(shares)
}

/// Compiles the README's code blocks as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
