//! The one error type of the data crate. Every variant names the file and the place in it, so a
//! user can open the file at the right spot; nothing is silently skipped.

use std::path::PathBuf;

/// Everything that can go wrong while loading corpora or driving a sampler.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file (or directory) could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// File or directory concerned.
        path: PathBuf,
        /// Underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// The JSON text itself is malformed or has a value of the wrong type / a missing field.
    #[error("{path}:{line}:{column}: {message}")]
    Json {
        /// File concerned.
        path: PathBuf,
        /// 1-based line of the error (as reported by serde_json).
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What serde_json said, e.g. "missing field `answers`".
        message: String,
    },
    /// The JSON is well formed but its content breaks the LAReQA format's rules.
    #[error("{path}: {place}: {message}")]
    Format {
        /// File concerned.
        path: PathBuf,
        /// Where in the file, e.g. `data[3] "Victoria_(Australia)" paragraphs[2] qas[1] (id 572f...)`.
        place: String,
        /// What is wrong.
        message: String,
    },
    /// A row of a user corpus (JSONL line or Parquet/Arrow row) is unusable.
    #[error("{path}: row {row}: {message}")]
    Row {
        /// File concerned.
        path: PathBuf,
        /// 1-based row number (the line number for JSONL).
        row: usize,
        /// What is wrong with it.
        message: String,
    },
    /// A column of a columnar user corpus is missing or has an unsupported type.
    #[error("{path}: column `{column}`: {message}")]
    Column {
        /// File concerned.
        path: PathBuf,
        /// Column name.
        column: String,
        /// What is wrong with it.
        message: String,
    },
    /// Parquet / Arrow decoding failed.
    #[error("{path}: {message}")]
    Columnar {
        /// File concerned.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
    /// A text file is not valid UTF-8 (`place` says where; not a `source`, so that a chained
    /// report does not repeat it).
    #[error("{path}: {place}")]
    Utf8 {
        /// File concerned.
        path: PathBuf,
        /// Line, column and byte offset of the first invalid byte.
        place: crate::text::InvalidUtf8,
    },
    /// A corpus name that is neither a built-in benchmark nor an existing file.
    #[error("`{name}` {message}")]
    UnknownCorpus {
        /// The name as given.
        name: String,
        /// Why it is neither, with the closest benchmark name when there is one.
        message: String,
    },
    /// A sampler or corpus was configured in a way that cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A saved sampler state does not fit the sampler it is restored into.
    #[error("cannot restore sampler state: {0}")]
    State(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }

    /// A [`crate::text::TextLines`] error of the file at `path`.
    pub fn line(path: impl Into<PathBuf>, err: crate::text::LineError) -> Self {
        match err {
            crate::text::LineError::Io(e) => DataError::Io { path: path.into(), source: e },
            crate::text::LineError::Utf8(place) => DataError::Utf8 { path: path.into(), place },
        }
    }

    pub(crate) fn json(path: impl Into<PathBuf>, err: &serde_json::Error) -> Self {
        // serde_json appends " at line L column C" to its message; the location is in our own fields.
        let text = err.to_string();
        let message = match text.rfind(" at line ") {
            Some(cut) => text[..cut].to_string(),
            None => text,
        };
        DataError::Json { path: path.into(), line: err.line(), column: err.column(), message }
    }
}

/// Result alias of the data crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
