//! Hybrid batch training of multilingual dual encoders (arXiv 2408.10536), end to end:
//! reproducible, resumable, observable.
//!
//! - [`TrainConfig`]: the TOML run description (every field documented, unknown keys refused,
//!   [`TrainConfig::validate`] lists every impossible value).
//! - [`train`]: composes the data crate's `BatchSampler`, the model crate's `BertEncoder`
//!   (shared-weight dual encoder), the loss crate's `CachedLoss` and burn's AdamW, with warm-up
//!   + linear decay, global-norm clipping and gradient accumulation; validation loss with best
//!   checkpoint; periodic LAReQA evaluation; Ctrl-C saves and exits.
//! - [`checkpoint`]: atomic, hash-verified checkpoint directories; exact resume.
//! - [`runlog`]: `metrics.jsonl`, `loss.svg`, `run.md`.
//! - [`export_run`]: a run's checkpoint → Hugging Face / sentence-transformers directory.
//! - [`reproduce`]: the paper's sampler comparison (Tables 1 and 2) at a chosen budget, with
//!   [`frozen`] sharing the frozen bottom of the encoder across the evaluated models.
//!
//! ```no_run
//! use hybrid_ir_train::{RunOptions, TrainConfig, train};
//! let config = TrainConfig::load("crates/train/configs/reference.toml".as_ref(), &["schedule.steps=10".into()])?;
//! let summary = train(&config, &RunOptions { progress: true, ..Default::default() })?;
//! println!("best validation loss: {:?}", summary.best_val);
//! # Ok::<(), hybrid_ir_train::TrainError>(())
//! ```

pub mod adamw;
pub mod checkpoint;
pub mod config;
pub mod encode;
pub mod error;
pub mod eval;
pub mod export;
pub mod frozen;
pub mod runlog;
pub mod reproduce;
pub mod schedule;
pub mod step;
pub mod trainer;

pub use config::{DataSection, EvalSection, LossSection, ModelSection, OptimSection, ScheduleSection, TrainConfig};
pub use error::{Result, TrainError};
pub use export::{export_run, load_run_model};
pub use step::{StepGradients, StepRunner, step_seed};
pub use trainer::{RunOptions, RunSummary, StopReason, install_ctrlc_handler, train};
