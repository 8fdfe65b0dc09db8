//! Hybrid batch training of multilingual dual encoders (arXiv 2408.10536), end to end:
//! reproducible, resumable, observable.
//!
//! - [`TrainConfig`]: the TOML run description (every field documented, unknown keys refused,
//!   [`TrainConfig::validate`] lists every impossible value).
//! - [`Trainer`]: the one training loop, assembled from parts with [`Trainer::builder`]: any
//!   model crate `Backbone` (shared-weight dual encoder), any data crate `BatchSampler` for
//!   training and validation, any loss crate `ContrastiveLoss` (computed by `CachedLoss`), a
//!   burn `Device`, AdamW with warm-up + linear decay, global-norm clipping and gradient
//!   accumulation; validation loss with best checkpoint; periodic LAReQA evaluation; Ctrl-C
//!   saves and exits.
//! - [`train`]: the thin TOML layer ([`from_config`]) that builds those parts from a config.
//! - [`distributed`]: data-parallel steps over MPI ranks (any `hybrid_ir_collective::Collective`),
//!   exact against one process; see docs/distributed.md.
//! - [`checkpoint`]: atomic, hash-verified checkpoint directories; exact resume.
//! - [`runlog`]: `metrics.jsonl`, `loss.svg`, `run.md`; [`tensorboard`]: the same scalars as
//!   TensorBoard event files (`[log] tensorboard = true`).
//! - [`mine_negatives`]: hard negatives mined with a model from a corpus (sentence-transformers'
//!   options), written as a user corpus the trainer reads.
//! - [`progress`]: a bar on a terminal, bounded-rate log lines in a file.
//! - [`export_run`]: a run's checkpoint → Hugging Face / sentence-transformers directory, with a
//!   model card ([`card`]).
//! - [`reproduce`]: the paper's sampler comparison (Tables 1 and 2) at a chosen budget, with
//!   [`hybrid_ir_model::FrozenPrefixCache`] sharing the frozen bottom of the encoder across the evaluated models.
//!
//! ```no_run
//! use hybrid_ir_train::{RunOptions, TrainConfig, train};
//! let config = TrainConfig::load("crates/train/configs/reference.toml".as_ref(), &["schedule.steps=10".into()])?;
//! let summary = train(&config, &RunOptions { progress: true, ..Default::default() })?;
//! println!("best validation loss: {:?}", summary.best_val);
//! # Ok::<(), hybrid_ir_train::TrainError>(())
//! ```

pub mod adamw;
pub mod card;
pub mod checkpoint;
pub mod config;
pub mod distributed;
pub mod encode;
pub mod error;
pub mod export;
pub mod from_config;
pub mod mine;
pub mod progress;
pub mod reproduce;
pub mod runlog;
pub mod schedule;
pub mod tensorboard;
pub mod step;
pub mod trainer;

pub use config::{
    BackboneChoice, DataSection, EvalSection, LogSection, LossSection, ModelSection, OptimSection, PrefixStyle,
    ScheduleSection, StaticInitChoice, TrainConfig,
};
pub use encode::TokenizedBatch;
pub use error::{Result, TrainError};
pub use card::ModelCard;
pub use export::{ExportOptions, RunModel, export_run, export_run_with, load_encoder, load_run_model};
pub use from_config::{builder_from_config, load_corpora, train};
pub use mine::{CandidatePool, MineOptions, MinedCorpus, NegativeChoice, mine_negatives};
pub use progress::{LineLog, LineSchedule, Progress, ProgressMode};
pub use step::{StepGradients, StepRunner, StepSettings, step_seed};
pub use trainer::{
    RunOptions, RunRecord, RunSummary, StopReason, Trainer, TrainerBuilder, TrainerSettings, install_ctrlc_handler,
};

/// Compiles the README's code blocks as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
