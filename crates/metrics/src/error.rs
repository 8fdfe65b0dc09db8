//! The one error type of the metrics crate. Every variant names the file, row or query it
//! concerns: nothing is guessed and nothing is silently skipped.

use std::path::PathBuf;

/// Everything that can go wrong while reading inputs or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// A file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// A row of an embeddings file is unusable (missing, extra, duplicate, wrong dimension, NaN...).
    #[error("{path}: row {row}: {message}")]
    Row {
        /// File concerned.
        path: PathBuf,
        /// 1-based row number in the file (0 when the problem is a row that is absent).
        row: usize,
        /// What is wrong.
        message: String,
    },
    /// A column of an embeddings file is missing or has an unsupported type.
    #[error("{path}: column `{column}`: {message}")]
    Column {
        /// File concerned.
        path: PathBuf,
        /// Column name.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A line of a TREC qrels or run file is malformed.
    #[error("{path}:{line}: {message}")]
    Line {
        /// File concerned.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A TREC file is not valid UTF-8 (`place` says where).
    #[error("{path}: {place}")]
    Utf8 {
        /// File concerned.
        path: PathBuf,
        /// Line, column and byte offset of the first invalid byte.
        place: hybrid_ir_data::text::InvalidUtf8,
    },
    /// Parquet / Arrow encoding or decoding failed.
    #[error("{path}: {message}")]
    Parquet {
        /// File concerned.
        path: PathBuf,
        /// What the parquet / arrow library said.
        message: String,
    },
    /// Dot products of these embeddings can overflow f32: their norms are too large to score.
    #[error(
        "dot products overflow f32: embedding norms up to {query_norm:.3e} (query {query}) and {candidate_norm:.3e} \
         (candidate {candidate}), whose product exceeds half of f32's range (3.4e38); use cosine scores or normalise \
         the embeddings"
    )]
    ScoreOverflow {
        /// The largest query embedding norm.
        query_norm: f64,
        /// 0-based index of the query with that norm.
        query: usize,
        /// The largest candidate embedding norm.
        candidate_norm: f64,
        /// 0-based index of the candidate with that norm.
        candidate: usize,
    },
    /// In-memory inputs do not fit together (shapes, indices, option values).
    #[error("{0}")]
    Invalid(String),
    /// Writing the report or the plot failed.
    #[error("{path}: {message}")]
    Output {
        /// File concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl MetricsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        MetricsError::Io { path: path.into(), source }
    }
}

/// Result alias of the metrics crate.
pub type Result<T, E = MetricsError> = std::result::Result<T, E>;
