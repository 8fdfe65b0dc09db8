#![doc = include_str!("../README.md")]

pub mod benchmark;
pub mod corpus;
pub mod corpus_writer;
pub mod error;
pub mod fs;
pub mod lareqa;
pub mod paths;
pub mod sampler;
pub mod source;
pub mod text;
pub mod user_corpus;

pub use benchmark::{BenchmarkCandidate, BenchmarkQuery, BenchmarkStats, RetrievalBenchmark};

pub use error::{DataError, Result};
pub use lareqa::{LareqaBenchmark, LareqaDataset};
pub use paths::{DATA_ENV, locate_data_root, resolve_data_dir};

pub use corpus::{CorpusStats, Example, NegativePolicy, ParallelCorpus, ParallelCorpusBuilder, ParallelGroup};
pub use source::{CorpusSource, load_corpus};
pub use corpus_writer::{CorpusRow, RowScores, write_user_corpus};
pub use user_corpus::load_user_corpus;

/// A language code such as `en` or `zh`. Shared, cheap to clone.
pub type Lang = std::sync::Arc<str>;
