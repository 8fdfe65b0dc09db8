//! Encode a LAReQA benchmark with a model, then run the metrics crate's protocol.
//!
//! Queries get the query prefix, candidates (answer sentences, without their paragraph: the
//! paper does not say, and the sentence alone is what the training positives are) get the
//! passage prefix. Scores are cosine, as in the paper.

use std::path::Path;

use hybrid_ir_data::{LareqaBenchmark, LareqaDataset, RetrievalBenchmark, resolve_data_dir};
use hybrid_ir_metrics::{BenchmarkEmbeddings, EvalOptions, LareqaReport, evaluate_benchmark};
use hybrid_ir_model::{BertEncoder, TextKind};

use crate::encode::{TextPipeline, embed_sequences};
use crate::error::Result;

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
    /// Tokenizes every query and candidate.
    pub fn new(benchmark: RetrievalBenchmark, pipeline: &TextPipeline) -> Result<Self> {
        let q: Vec<&str> = benchmark.queries.iter().map(|q| &*q.text).collect();
        let c: Vec<&str> = benchmark.candidates.iter().map(|c| &*c.sentence).collect();
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
        mut progress: impl FnMut(usize),
    ) -> Result<LareqaReport> {
        let nq = self.queries.len();
        let queries = embed_sequences(model, &self.queries, pipeline.pad_id(), pipeline.pooling, batch_size, &mut progress)?;
        let candidates =
            embed_sequences(model, &self.candidates, pipeline.pad_id(), pipeline.pooling, batch_size, |n| progress(nq + n))?;
        self.evaluate_embeddings(BenchmarkEmbeddings { queries, candidates })
    }

    /// Evaluates precomputed embeddings (rows aligned with the benchmark).
    pub fn evaluate_embeddings(&self, embeddings: BenchmarkEmbeddings) -> Result<LareqaReport> {
        Ok(evaluate_benchmark(&self.benchmark, &embeddings, &EvalOptions::default())?)
    }
}
