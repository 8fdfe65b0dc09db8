//! In-batch contrastive losses for dual-encoder retrieval on burn 0.22, plus a GradCache-style
//! cached wrapper with bounded activation memory.
//!
//! * [`ContrastiveLoss`]: (queries, positives, optional hard negatives, optional parallel ids)
//!   → scalar loss tensor, on any burn device.
//! * Built-ins: [`PaperLoss`] (arXiv 2408.10536 Eq. 1, literally), [`InBatchLoss`]
//!   (DPR / Tevatron / sentence-transformers MNRL), [`SymmetricLoss`] (q→p and p→q).
//!   All take cosine or dot scores, a temperature τ (default 0.05), sum or mean reduction, and
//!   mask candidates that share the query's parallel id ([`mask`]).
//! * [`CachedLoss`]: same loss and gradients for a big batch, embedding in chunks, with dropout
//!   masks replayed per chunk.
//! * [`LossConfig`]: serde config with `build() -> Box<dyn ContrastiveLoss>`.
//!
//! Formulas and sources are in the crate README.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use hybrid_ir_loss::{ContrastiveBatch, LossConfig};
//!
//! let device = Device::flex().autodiff();
//! let q = Tensor::<2>::from_floats([[1.0, 0.0], [0.0, 1.0]], &device).require_grad();
//! let p = Tensor::<2>::from_floats([[0.9, 0.1], [0.2, 0.8]], &device);
//! let loss = LossConfig::default().build().unwrap();
//! let value = loss.forward(ContrastiveBatch::new(q.clone(), p)).unwrap();
//! let grads = value.backward();
//! assert!(q.grad(&grads).is_some());
//! ```

/// Compiles and runs the README's code blocks as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

mod cached;
mod config;
mod error;
mod losses;
pub mod mask;
pub mod phase;

pub use cached::{CachedLoss, ChunkedEncoder, EmbeddingRole, LocalRows, LossStep, RowExchange, chunk_ranges, chunk_seed};
pub use config::{LossConfig, LossKind, LossSettings, Reduction, ScoreFn};
pub use error::LossError;
pub use losses::{ContrastiveBatch, ContrastiveLoss, InBatchLoss, PaperLoss, SymmetricLoss};
