//! # hybrid-ir-data
//!
//! Parallel question–answer corpora and the batch samplers of hybrid batch training.
//!
//! - [`lareqa`] reads the LAReQA files (XQuAD-R, MLQA-R) with all their pitfalls handled.
//! - [`RetrievalBenchmark`] is their evaluation view: queries, the pooled multilingual candidate
//!   set with ids `{lang}_{p}_{s}`, and relevance.
//! - [`ParallelCorpus`] is their training view: per parallel id, per language, a
//!   (question, answer sentence, paragraph[, hard negative]) example. User corpora load from JSONL,
//!   Parquet or Arrow IPC files ([`user_corpus`]).
//! - [`sampler`] builds batches: X-X-mono ([`sampler::Monolingual`]), X-Y
//!   ([`sampler::CrossLingual`]), LAReQA's X-X ([`sampler::MixedLanguage`]), the paper's
//!   [`sampler::Hybrid`] and a size-proportional multi-corpus [`sampler::CorpusMixer`]. Write your
//!   own by implementing [`sampler::BatchSampler`].

pub mod benchmark;
pub mod corpus;
pub mod error;
pub mod lareqa;
pub mod paths;
pub mod sampler;
pub mod user_corpus;

pub use benchmark::{BenchmarkCandidate, BenchmarkQuery, BenchmarkStats, RetrievalBenchmark};

pub use error::{DataError, Result};
pub use lareqa::{LareqaBenchmark, LareqaDataset};
pub use paths::{resolve_data_dir, DATA_ENV};

pub use user_corpus::load_user_corpus;
pub use corpus::{CorpusStats, Example, NegativePolicy, ParallelCorpus, ParallelCorpusBuilder, ParallelGroup};

/// A language code such as `en` or `zh`. Shared, cheap to clone.
pub type Lang = std::sync::Arc<str>;
