//! BERT-family dual encoder in burn that loads Hugging Face checkpoints as they are and exports
//! back to the same layout.
//!
//! - [`BertEncoder`]: a config-driven post-LN transformer (BERT, XLM-R, LaBSE layouts: position
//!   offset, LayerNorm eps, token-type vocab, optional pooler), a burn [`Module`](burn::module::Module)
//!   usable on autodiff devices (dropout active) and plain devices (deterministic inference).
//! - [`hf`]: load `config.json` + `model.safetensors` + `tokenizer.json` + sentence-transformers
//!   pooling strictly (a missing or mis-shaped tensor is an error naming it), export back.
//! - [`SentenceEncoder`]: a loaded model with a length-sorted batch `encode` API.
//! - [`DualEncoder`] / [`BertDualEncoder`]: shared or separate query/passage towers.
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

pub mod config;
pub mod device;
pub mod dual;
pub mod encoder;
pub mod error;
pub mod hf;
pub mod kernels;
pub mod pooling;
pub mod prefix;
pub mod safetensors_header;
pub mod sentence;
pub mod tokenize;

pub use config::BertConfig;
pub use device::DeviceSpec;
pub use dual::{BertDualEncoder, DualEncoder};
pub use encoder::BertEncoder;
pub use error::{ModelError, Result};
pub use hf::{LoadOptions, LoadReport, ModelMeta, export_hf_dir, load_tokenizer, load_weights, read_meta};
pub use pooling::{PoolingConfig, PoolingMode};
pub use prefix::{PrefixConfig, TextKind};
pub use sentence::{SentenceEncoder, load_module, save_module};
pub use tokenize::{TextTokenizer, TokenBatch, length_sorted_batches};
