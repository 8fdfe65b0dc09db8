//! Errors of the search crate: each names the file and the line, row or shard it is about.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading a collection, building an index or searching it.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line of a text file (JSONL, TSV) is malformed.
    #[error("{}, line {line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A row of a Parquet file is malformed.
    #[error("{}, row {row}: {message}", path.display())]
    Row {
        /// The file.
        path: PathBuf,
        /// 1-based row.
        row: usize,
        /// What is wrong.
        message: String,
    },
    /// A file is not the Parquet layout expected.
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The index directory does not fit this run (another model, prefix or corpus; incomplete).
    #[error("index {}: {message}", dir.display())]
    Index {
        /// The index directory.
        dir: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The text encoder failed.
    #[error("encoding failed: {0}")]
    Encode(String),
    /// An option is out of range.
    #[error("{0}")]
    Invalid(String),
    /// Scoring a run failed.
    #[error(transparent)]
    Metrics(#[from] hybrid_ir_metrics::MetricsError),
}

/// Result alias of this crate.
pub type Result<T, E = SearchError> = std::result::Result<T, E>;

impl SearchError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        SearchError::Io { path: path.to_path_buf(), source }
    }

    /// An error about `dir` (the index).
    pub fn index(dir: &Path, message: impl Into<String>) -> Self {
        SearchError::Index { dir: dir.to_path_buf(), message: message.into() }
    }
}

/// Where a document or query was read: a line of a text file or a row of a Parquet file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// 1-based line of a JSONL or TSV file.
    Line(usize),
    /// 1-based row of a Parquet file.
    Row(usize),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Line(n) => write!(f, "line {n}"),
            Place::Row(n) => write!(f, "row {n}"),
        }
    }
}

impl Place {
    /// The error `message` at this place of `path`.
    pub fn error(self, path: &Path, message: impl Into<String>) -> SearchError {
        match self {
            Place::Line(line) => SearchError::Line { path: path.to_path_buf(), line, message: message.into() },
            Place::Row(row) => SearchError::Row { path: path.to_path_buf(), row, message: message.into() },
        }
    }
}
