//! Errors of the model crate. Every variant names the file or tensor it concerns.

use std::path::PathBuf;

/// Errors from loading, tokenizing, encoding or exporting a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file could not be parsed or has the wrong shape.
    #[error("{path}: invalid JSON: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A required file of the model directory is missing.
    #[error("{path} is missing{hint}")]
    MissingFile {
        /// The missing file.
        path: PathBuf,
        /// Extra advice (for instance which command fetches the model), with a leading separator.
        hint: String,
    },
    /// The config describes something this encoder does not support.
    #[error("{path}: unsupported configuration: {message}")]
    Unsupported {
        /// The config file.
        path: PathBuf,
        /// What is unsupported.
        message: String,
    },
    /// A checkpoint tensor the encoder needs is absent.
    #[error("{path}: tensor {tensor} is missing from the checkpoint")]
    MissingTensor {
        /// The safetensors file.
        path: PathBuf,
        /// Checkpoint (Hugging Face) name of the tensor.
        tensor: String,
    },
    /// A checkpoint tensor has another shape than the config implies.
    #[error("{path}: tensor {tensor} has shape {found:?}, the config implies {expected:?}")]
    ShapeMismatch {
        /// The safetensors file.
        path: PathBuf,
        /// Checkpoint (Hugging Face) name of the tensor.
        tensor: String,
        /// Shape the config implies (Hugging Face layout).
        expected: Vec<usize>,
        /// Shape found in the file.
        found: Vec<usize>,
    },
    /// A checkpoint tensor could not be applied (dtype, adapter or data error).
    #[error("{path}: tensor {tensor}: {message}")]
    BadTensor {
        /// The safetensors file.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// What went wrong.
        message: String,
    },
    /// The safetensors file itself is malformed.
    #[error("{path}: invalid safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Tokenizer and embedding matrix disagree, or the tokenizer could not be used.
    #[error("{path}: tokenizer: {message}")]
    Tokenizer {
        /// The tokenizer.json (or model directory).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A device string could not be parsed or names a backend not compiled in.
    #[error("device {spec:?}: {message}")]
    Device {
        /// The device string given.
        spec: String,
        /// Why it is not usable.
        message: String,
    },
    /// Encoding texts failed or gave unusable embeddings.
    #[error("encoding: {0}")]
    Encode(String),
    /// Saving or loading a burnpack module file failed.
    #[error("{path}: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl ModelError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// A JSON error for `path`.
    pub fn json(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Self::Json { path: path.into(), message: message.to_string() }
    }
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;
