//! Errors of the loss crate. Each variant names the tensor or setting it concerns.

use thiserror::Error;

/// Everything that can go wrong when configuring or evaluating a contrastive loss.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum LossError {
    /// A tensor that must be `[rows, dim]` has the wrong shape.
    #[error("tensor `{tensor}` has shape {actual:?}, expected {expected}")]
    Shape {
        /// Which input tensor (`queries`, `positives`, `negatives`, …).
        tensor: &'static str,
        /// Its actual dims.
        actual: Vec<usize>,
        /// What was expected, in words.
        expected: String,
    },
    /// The batch has no rows.
    #[error("tensor `queries` has 0 rows: a contrastive loss needs at least one query")]
    EmptyBatch,
    /// The number of group keys differs from the number of queries.
    #[error("group_keys has {keys} entries but `queries` has {queries} rows (one key per query row)")]
    GroupKeys {
        /// Length of the key slice.
        keys: usize,
        /// Rows of the query tensor.
        queries: usize,
    },
    /// The paper's Eq. (1) was asked for without hard negatives.
    #[error(
        "loss `paper` (Eq. 1) needs hard negatives: without `negatives` its denominator is only the own \
         positive and the loss is identically 0; pass hard negatives or use kind `in_batch`"
    )]
    PaperNeedsHardNegatives,
    /// τ must be a finite positive number.
    #[error("temperature must be finite and > 0, got {0}")]
    Temperature(f64),
    /// The cached wrapper's chunk size must be positive.
    #[error("chunk_size must be > 0")]
    ChunkSize,
    /// The cached wrapper needs embeddings on an autodiff device.
    #[error(
        "chunk {chunk} of `{role}` was embedded on a device without autodiff: build the model on \
         `device.autodiff()` (dropout and gradients need it)"
    )]
    NotAutodiff {
        /// Role name (`queries`, `positives`, `negatives`).
        role: &'static str,
        /// Chunk index.
        chunk: usize,
    },
    /// An embedding chunk returned by the encoder has the wrong number of rows or columns.
    #[error("chunk {chunk} of `{role}` has shape {actual:?}, expected [{rows}, {dim}]")]
    ChunkShape {
        /// Role name.
        role: &'static str,
        /// Chunk index.
        chunk: usize,
        /// Returned dims.
        actual: Vec<usize>,
        /// Rows that were asked for.
        rows: usize,
        /// Embedding dim of the first chunk (or `?` semantics: 0 when unknown).
        dim: usize,
    },
    /// The cached wrapper could not find a device to seed on the model.
    #[error("the model has no parameters, so there is no device to seed dropout on")]
    NoDevice,
    /// Joining this process's embeddings with the other processes' failed.
    #[error("exchanging `{role}` embeddings between processes: {message}")]
    Exchange {
        /// Role name.
        role: &'static str,
        /// What went wrong.
        message: String,
    },
}
