//! # hybrid-ir-metrics
//!
//! Retrieval metrics and the paper's evaluation protocol, exact and fast.
//!
//! - [`measures`]: per-query AP (full ranking, LAReQA), R@k, P@k, MRR@k, nDCG@k (trec_eval
//!   conventions) and rank distance, all computed from the ranks of the relevant items
//!   ([`QueryRanks`], [`Metric`]).
//! - [`rank`]: ranks by counting, the tie rule (equal scores: earlier candidate first), score
//!   functions.
//! - [`engine`]: ranks of every query's relevant candidates in a pool of any size from
//!   embeddings: blocked GEMM, parallel over queries, bounded memory, per-group counts so that
//!   sub-pools (one language) come for free.
//! - [`lareqa`]: the mono / cross / multilingual protocol on a
//!   [`hybrid_ir_data::RetrievalBenchmark`] and its [`LareqaReport`] (`report.json`).
//! - [`embeddings`]: the bring-your-own-embeddings Parquet format (read, validate, write).
//! - [`trec`]: TREC qrels and run files (how MIRACL is scored).
//! - [`table`] and [`heatmap`]: the paper-shaped text tables and the language × language SVG.

pub mod embeddings;
pub mod engine;
pub mod error;
pub mod heatmap;
pub mod lareqa;
pub mod measures;
pub mod rank;
pub mod table;
pub mod trec;


pub use embeddings::{read_embeddings, write_embeddings, EmbeddingKind, EmbeddingTable};
pub use engine::{relevant_rank_counts, EngineOptions, RelevantRankCounts};
pub use error::{MetricsError, Result};
pub use lareqa::{evaluate_benchmark, BenchmarkEmbeddings, EvalOptions, LareqaReport, LanguageScores, Scores, SettingScores};
pub use measures::{Metric, QueryRanks};
pub use rank::{ranks_of, ScoreFunction};
pub use trec::{evaluate_run, Qrels, Run, TrecReport};


/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
