//! Text encoders in burn behind one [`Backbone`] trait, loaded from and exported to Hugging Face
//! / sentence-transformers directories, with the project's one encoding path.
//!
//! - [`Backbone`]: token batch in, pooled embedding out; what the trainer, evaluation, `encode`
//!   and the benchmarks take. Built-ins: [`BertEncoder`] (a config-driven post-LN transformer:
//!   BERT, XLM-R, LaBSE layouts; dropout on autodiff devices, deterministic on plain ones),
//!   [`StaticEncoder`] (a token-embedding table with mean pooling, sentence-transformers'
//!   `StaticEmbedding`) and [`AnyEncoder`] (either, chosen at run time).
//! - [`ModelInfo`]: what a model directory says beyond its weights; [`hf`]: strict Hugging Face
//!   loading (a missing or mis-shaped tensor is an error naming it) and export.
//! - [`pipeline`]: prefix → tokens → length-sorted batches → embeddings, used everywhere;
//!   [`SentenceEncoder`] wraps it for a loaded directory; [`frozen`] shares a transformer's
//!   frozen bottom across models.
//! - [`DeviceSpec`]: `cpu` (Flex), `tch-cpu`, `tch-cuda:N` chosen at run time; [`test_device!`]
//!   runs a test on every compiled-in CPU device.
//!
//! ```no_run
//! use hybrid_ir_model::{DeviceSpec, LoadOptions, SentenceEncoder, TextKind};
//! let device = DeviceSpec::Flex.device();
//! let model = SentenceEncoder::load("models/multilingual-e5-small".as_ref(), &device, &LoadOptions::default())?;
//! let emb = model.encode(&["How many people live in Berlin?"], TextKind::Query, 32, |_| {})?;
//! assert_eq!(emb[0].len(), 384);
//! # Ok::<(), hybrid_ir_model::ModelError>(())
//! ```

pub mod any;
pub mod backbone;
pub mod config;
pub mod device;
pub mod encoder;
pub mod error;
pub mod frozen;
pub mod hf;
pub mod kernels;
pub mod memory;
pub mod pipeline;
pub mod pooling;
pub mod prefix;
pub mod reference;
pub mod safetensors_header;
pub mod sentence;
pub mod static_embed;
pub mod tokenize;

pub use any::{AnyEncoder, ModelInfo, ModelSource, StaticInit};
pub use backbone::{Backbone, count_parameters, first_non_finite_parameter, load_module_into, module_device, save_module};
pub use config::BertConfig;
pub use device::DeviceSpec;
pub use encoder::BertEncoder;
pub use error::{ModelError, Result};
pub use frozen::FrozenPrefixCache;
pub use hf::{LoadOptions, LoadReport, ModelMeta, export_hf_dir, load_tokenizer, load_weights, read_meta};
pub use pipeline::{TextPipeline, embed_sequences, embed_sequences_share, tensor_values};
pub use pooling::{PoolingConfig, PoolingMode};
pub use prefix::{PrefixConfig, PrefixStyle, TextKind};
pub use reference::{TRANSFORMERS_VERSION, TokenizerReference};
pub use sentence::{SentenceEncoder, export_model};
pub use static_embed::{StaticEncoder, StaticSettings, save_static_dir};
pub use tokenize::{TextTokenizer, TokenBatch, length_sorted_batches};

/// Compiles the README's code blocks as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
