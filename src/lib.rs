//! # hybrid-ir
//!
//! Train and evaluate multilingual dense retrievers with **hybrid batch training**
//! (arXiv 2408.10536) in Rust. This facade re-exports the project's crates, each usable on its
//! own:
//!
//! | module | crate | job |
//! |---|---|---|
//! | [`data`] | `hybrid-ir-data` | parallel corpora, the `BatchSampler` trait, X-X-mono / X-Y / Hybrid samplers |
//! | [`model`] | `hybrid-ir-model` | the `Backbone` trait, BERT-family and static encoders, the one encoding path |
//! | [`loss`] | `hybrid-ir-loss` | the `ContrastiveLoss` trait, paper Eq. (1), InfoNCE, GradCache |
//! | [`metrics`] | `hybrid-ir-metrics` | AP / R@k / nDCG / rank distance, the `Measure` trait, TREC |
//! | [`eval`] | `hybrid-ir-eval` | encode a LAReQA benchmark with any backbone and score it |
//! | [`train`] | `hybrid-ir-train` | the one `Trainer` (parts in), checkpoints, `train(config)` |
//! | [`collective`] | `hybrid-ir-collective` | the `Collective` trait: one process or MPI ranks (feature `mpi`) for data-parallel training |
//! | [`search`] | `hybrid-ir-search` | a collection encoded once into a resumable index, exact top-k, TREC runs |
//!
//! The parts compose through traits: write a sampler, a loss or a backbone, hand it to
//! [`train::Trainer::builder`]. The top-level `examples/` show each extension point.
//!
//! ```no_run
//! use hybrid_ir::prelude::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let info = ModelInfo::read("models/all-MiniLM-L6-v2".as_ref(), &LoadOptions::default())?;
//! let pipeline = TextPipeline::of_model(&info)?;
//! let model = info.load(&Device::flex())?;
//! let corpus = std::sync::Arc::new(load_user_corpus("my_pairs.jsonl".as_ref())?);
//! let sampler = SamplerConfig::new(SamplerKind::Hybrid).build(corpus)?;
//! let summary = Trainer::builder(model, pipeline, sampler, "runs/mine").build(&RunOptions::default())?.run(&RunOptions::default())?;
//! println!("{} steps", summary.step);
//! # Ok(()) }
//! ```

pub use hybrid_ir_collective as collective;
pub use hybrid_ir_data as data;
pub use hybrid_ir_eval as eval;
pub use hybrid_ir_loss as loss;
pub use hybrid_ir_metrics as metrics;
pub use hybrid_ir_model as model;
pub use hybrid_ir_search as search;
pub use hybrid_ir_train as train;

/// The names most programs use.
pub mod prelude {
    pub use burn::module::Module;
    pub use burn::tensor::Device;
    pub use hybrid_ir_data::sampler::{Batch, BatchKind, BatchSampler, Pair, SamplerConfig, SamplerKind, SamplerState};
    pub use hybrid_ir_data::{ParallelCorpus, load_user_corpus};
    pub use hybrid_ir_eval::{TokenizedBenchmark, load_benchmark};
    pub use hybrid_ir_loss::{ContrastiveBatch, ContrastiveLoss, LossConfig};
    pub use hybrid_ir_model::{AnyEncoder, Backbone, BertEncoder, LoadOptions, ModelInfo, StaticEncoder, TextPipeline};
    pub use hybrid_ir_train::{RunOptions, RunSummary, Trainer, TrainerSettings};
}
