//! Encode a LAReQA benchmark with a model, then run the metrics crate's protocol.
//!
//! Queries get the query prefix, candidates get the passage prefix. A candidate is its answer
//! sentence alone by default ([`CandidateText::Sentence`]: the paper does not say, and the
//! sentence alone is what the training positives are), or the sentence followed by its paragraph
//! ([`CandidateText::SentenceContext`], as LAReQA fed USE-QA a sentence plus its context).
//! Scores are cosine, as in the paper.

use std::path::Path;

use hybrid_ir_data::{LareqaBenchmark, LareqaDataset, RetrievalBenchmark, resolve_data_dir};
use hybrid_ir_metrics::{BenchmarkEmbeddings, EvalOptions, LareqaReport, evaluate_benchmark};
use hybrid_ir_model::{BertEncoder, TextKind};

use crate::encode::{TextPipeline, embed_sequences};
use crate::error::Result;

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
    pub fn with_candidate_text(benchmark: RetrievalBenchmark, pipeline: &TextPipeline, candidate_text: CandidateText) -> Result<Self> {
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
    pub fn evaluate(
        &self,
        model: &BertEncoder,
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
    pub fn encode(
        &self,
        model: &BertEncoder,
        pipeline: &TextPipeline,
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<BenchmarkEmbeddings> {
        let nq = self.queries.len();
        let queries = embed_sequences(model, &self.queries, pipeline.pad_id(), pipeline.pooling, batch_size, &mut progress)?;
        let candidates =
            embed_sequences(model, &self.candidates, pipeline.pad_id(), pipeline.pooling, batch_size, |n| progress(nq + n))?;
        Ok(BenchmarkEmbeddings { queries, candidates })
    }

    /// Evaluates precomputed embeddings (rows aligned with the benchmark).
    pub fn evaluate_embeddings(&self, embeddings: BenchmarkEmbeddings) -> Result<LareqaReport> {
        Ok(evaluate_benchmark(&self.benchmark, &embeddings, &EvalOptions::default())?)
    }
}
