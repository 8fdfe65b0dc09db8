//! # hybrid-ir-metrics
//!
//! Retrieval metrics and the paper's evaluation protocol, exact and fast.
//!
//! - [`measures`]: per-query AP (full ranking, LAReQA), R@k, P@k, MRR@k, nDCG@k (trec_eval
//!   conventions) and rank distance, all computed from the ranks of the relevant items
//!   ([`QueryRanks`], [`Metric`]). The set is open: implement [`Measure`] (or wrap a closure in
//!   [`MeasureFn`]) and your measure is scored next to the built-ins by [`evaluate_run`] and,
//!   through [`EvalOptions::extra_measures`], in the LAReQA report and tables (averaged over
//!   queries like the built-ins; see [`measures`](measures#your-own-measures)).
//! - [`rank`]: ranks by counting, the tie rule (equal scores: earlier candidate first), score
//!   functions.
//! - [`engine`]: ranks of every query's relevant candidates in a pool of any size from
//!   embeddings: blocked GEMM, parallel over queries, bounded memory, per-group counts so that
//!   sub-pools (one language) come for free.
//! - [`lareqa`]: the mono / cross / multilingual protocol on a
//!   [`hybrid_ir_data::RetrievalBenchmark`] and its [`LareqaReport`] (`report.json`).
//! - [`embeddings`]: the bring-your-own-embeddings Parquet format (read, validate, write).
//! - [`trec`]: TREC qrels and run files (how MIRACL is scored).
//! - [`significance`]: paired randomisation test and bootstrap interval over queries (seeds
//!   averaged, Holm's correction), for two reports evaluated with [`EvalOptions::per_query`].
//! - [`table`] and [`heatmap`]: the paper-shaped text tables and the language × language
//!   heatmaps (mAP, and the difference of two models), SVG or PNG.
//! - [`plot`]: what the plots share (`plotters`, an embedded font, colour scales) and the
//!   training loss curve ([`plot::LossCurves`]).

pub mod embeddings;
pub mod engine;
pub mod error;
pub mod heatmap;
pub mod lareqa;
pub mod measures;
pub mod plot;
pub mod rank;
pub mod significance;
pub mod table;
pub mod trec;

pub use embeddings::{EmbeddingKind, EmbeddingTable, read_embeddings, write_embeddings};
pub use engine::{EngineOptions, RelevantRankCounts, relevant_rank_counts};
pub use error::{MetricsError, Result};
pub use lareqa::{
    BenchmarkEmbeddings, EvalOptions, HeadlineMetric, LanguageScores, LareqaReport, PerQueryValues, Scores, Setting,
    SettingScores, SettingWeights, evaluate_benchmark,
};
pub use measures::{Measure, MeasureFn, Metric, QueryRanks};
pub use rank::{ScoreFunction, ranks_of};
pub use significance::{
    MetricComparison, PairedComparison, PairedTestOptions, ReportComparison, SeedSummary, combine_seeds, compare_report_seeds, compare_reports,
    holm, holm_jointly, mean_over_seeds, paired_test, quantile,
};
pub use trec::{Qrels, Run, TrecReport, evaluate_run};

/// The README's example, compiled and run as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
