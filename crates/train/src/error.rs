//! The error type of the train crate. Every variant names the file, step or field it concerns.

use std::path::PathBuf;

/// Everything that can go wrong while configuring, running, checkpointing or exporting a run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// File concerned.
        path: PathBuf,
        /// Underlying OS error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML, has an unknown key, or a value of the wrong type.
    #[error("{path}: {message}")]
    ConfigParse {
        /// Config file (or `<overrides>`).
        path: PathBuf,
        /// What the parser said (it names the key).
        message: String,
    },
    /// The config parsed but holds impossible values; every problem is listed.
    #[error("invalid training config:\n  - {}", problems.join("\n  - "))]
    ConfigInvalid {
        /// One line per problem, each naming the field (`optim.lr must be > 0, got -1`).
        problems: Vec<String>,
    },
    /// A `--set key=value` override is malformed or names no field.
    #[error("override `{spec}`: {message}")]
    Override {
        /// The override as given.
        spec: String,
        /// What is wrong.
        message: String,
    },
    /// The optimizer's fused LibTorch update failed (libtorch's message).
    #[error("optimizer step: {0}")]
    Optimizer(String),
    /// A checkpoint file is missing, truncated, corrupt or does not match the run.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// File or directory concerned.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss became NaN or infinite; the run stops before anything is saved from this step.
    #[error(
        "non-finite loss {value} at step {step} (batch kind {batch_kind}); stopping. The last good \
         checkpoint (step {last_good_step:?}) is left intact; lower optim.lr, set optim.grad_clip_norm, \
         or check the data"
    )]
    NonFiniteLoss {
        /// Optimizer step (1-based) whose loss was not finite.
        step: u64,
        /// The loss value.
        value: f64,
        /// Sampler label of the offending batch.
        batch_kind: String,
        /// Step of the last checkpoint written, if any.
        last_good_step: Option<u64>,
    },
    /// The gradient norm became NaN or infinite.
    #[error("non-finite gradient norm at step {step}; stopping without saving (last good checkpoint: step {last_good_step:?})")]
    NonFiniteGradient {
        /// Optimizer step (1-based).
        step: u64,
        /// Step of the last checkpoint written, if any.
        last_good_step: Option<u64>,
    },
    /// Error from the data crate (corpus loading, sampler).
    #[error(transparent)]
    Data(#[from] hybrid_ir_data::DataError),
    /// Error from the model crate (loading, tokenizing, saving weights).
    #[error(transparent)]
    Model(#[from] hybrid_ir_model::ModelError),
    /// Error from the loss crate.
    #[error(transparent)]
    Loss(#[from] hybrid_ir_loss::LossError),
    /// Error from the metrics crate.
    #[error(transparent)]
    Metrics(#[from] hybrid_ir_metrics::MetricsError),
    /// Error from evaluation.
    #[error(transparent)]
    Eval(#[from] hybrid_ir_eval::EvalError),
    /// Error from the collective operations between the ranks of a distributed run.
    #[error("distributed training: {0}")]
    Collective(#[from] hybrid_ir_collective::CollectiveError),
    /// Anything else, with context.
    #[error("{0}")]
    Other(String),
}

impl TrainError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// A checkpoint error on `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Checkpoint { path: path.into(), message: message.into() }
    }
}

/// Result alias of the train crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
