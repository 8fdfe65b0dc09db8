//! [`AnyEncoder`]: either built-in backbone, chosen at run time from a model directory, and
//! [`ModelInfo`]: what a model directory says beyond its weights (tokenizer, padding,
//! truncation, prefixes) for any backbone.
//!
//! The CLI, `reproduce` and config-driven training hold an `AnyEncoder`; library users who know
//! their backbone at compile time use [`crate::BertEncoder`], [`crate::StaticEncoder`] or their
//! own [`Backbone`] directly.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};

use crate::backbone::Backbone;
use crate::encoder::BertEncoder;
use crate::error::{ModelError, Result};
use crate::hf::{LoadOptions, ModelMeta, read_meta};
use crate::pooling::{PoolingConfig, PoolingMode};
use crate::prefix::PrefixConfig;
use crate::reference::TokenizerReference;
use crate::static_embed::{STATIC_MODULE_DIR, STATIC_SETTINGS_FILE, StaticEncoder, StaticSettings};
use crate::tokenize::TextTokenizer;

/// A BERT-family transformer or a static-embedding table.
#[derive(Module, Debug)]
pub enum AnyEncoder {
    /// BERT, XLM-R or LaBSE layout.
    Bert(BertEncoder),
    /// Token-embedding table with mean pooling.
    Static(StaticEncoder),
}

impl AnyEncoder {
    /// The transformer, if this is one (for transformer-only tools: export to a Hugging Face
    /// directory, the frozen-bottom cache, mixed precision).
    pub fn as_bert(&self) -> Option<&BertEncoder> {
        match self {
            Self::Bert(b) => Some(b),
            Self::Static(_) => None,
        }
    }

    /// Freezes what `trainable_layers` / `freeze_embeddings` say (transformers only; a static
    /// table has no layers and trains whole) and sets mixed precision.
    pub fn with_training_settings(self, trainable_layers: Option<usize>, freeze_embeddings: bool, bf16_matmuls: bool) -> Self {
        match self {
            Self::Bert(b) => {
                let mut b = b.with_trainable_layers(trainable_layers, freeze_embeddings);
                b.bf16_matmuls = bf16_matmuls;
                Self::Bert(b)
            }
            Self::Static(s) => Self::Static(s),
        }
    }
}

impl Backbone for AnyEncoder {
    fn embed(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
        match self {
            Self::Bert(b) => b.embed(input_ids, attention_mask),
            Self::Static(s) => s.embed(input_ids, attention_mask),
        }
    }

    fn dim(&self) -> usize {
        match self {
            Self::Bert(b) => b.dim(),
            Self::Static(s) => s.dim(),
        }
    }

    fn vocab_size(&self) -> usize {
        match self {
            Self::Bert(b) => b.vocab_size(),
            Self::Static(s) => s.vocab_size(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Bert(b) => b.kind(),
            Self::Static(s) => s.kind(),
        }
    }
}

/// How a static table starts.
#[derive(Debug, Clone, PartialEq)]
pub enum StaticInit {
    /// The table saved in a static model directory.
    Saved,
    /// The word-embedding matrix of this transformer (Model2Vec's starting point).
    FromModel(Box<ModelMeta>),
    /// Random normal(0, 1) values (seed the device first).
    Random,
}

/// Which backbone a model directory holds, with its own settings.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A Hugging Face BERT / XLM-R / LaBSE directory.
    Bert(ModelMeta),
    /// A static-embedding model.
    Static {
        /// Table size, normalisation, padding, truncation.
        settings: StaticSettings,
        /// Where its table comes from.
        init: StaticInit,
    },
}

/// Everything about a model except its weights, for any built-in backbone.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Directory name (for logs and reports).
    pub name: String,
    /// The model directory.
    pub source_dir: PathBuf,
    /// Its `tokenizer.json`.
    pub tokenizer_path: PathBuf,
    /// Query / passage prefixes.
    pub prefixes: PrefixConfig,
    /// Truncation length in tokens (special tokens included).
    pub max_len: usize,
    /// Backbone kind and settings.
    pub source: ModelSource,
}

impl ModelInfo {
    /// Reads a model directory: a static model (sentence-transformers' `StaticEmbedding` layout
    /// with `hybrid_ir_static.json`, as [`crate::save_static_dir`] writes it) or a Hugging Face
    /// BERT-family directory (checked strictly by [`read_meta`]).
    pub fn read(dir: &Path, options: &LoadOptions) -> Result<Self> {
        if dir.is_file() {
            return Err(ModelError::MissingFile {
                path: dir.to_path_buf(),
                hint:
                    " as a directory (it is a file; --model takes a model directory with config.json, model.safetensors and tokenizer.json)"
                        .into(),
            });
        }
        let settings_path = dir.join(STATIC_SETTINGS_FILE);
        if settings_path.is_file() {
            let text = std::fs::read(&settings_path).map_err(|e| ModelError::io(&settings_path, e))?;
            let mut settings: StaticSettings = serde_json::from_slice(&text).map_err(|e| ModelError::json(&settings_path, e))?;
            if let Some(p) = &options.prefixes {
                settings.prefixes = p.clone();
            }
            let max_len = options.max_len.unwrap_or(settings.max_len);
            return Ok(Self {
                name: dir_name(dir),
                source_dir: dir.to_path_buf(),
                tokenizer_path: dir.join(STATIC_MODULE_DIR).join("tokenizer.json"),
                prefixes: settings.prefixes.clone(),
                max_len,
                source: ModelSource::Static { settings, init: StaticInit::Saved },
            });
        }
        let meta = read_meta(dir, options)?;
        Ok(Self::from_meta(meta))
    }

    /// The info of a transformer whose metadata is already read.
    pub fn from_meta(meta: ModelMeta) -> Self {
        Self {
            name: meta.name.clone(),
            source_dir: meta.source_dir.clone(),
            tokenizer_path: meta.source_dir.join("tokenizer.json"),
            prefixes: meta.prefixes.clone(),
            max_len: meta.max_len,
            source: ModelSource::Bert(meta),
        }
    }

    /// A static model over this transformer's tokenizer and prefixes, its table taken from the
    /// transformer's word embeddings (`random = false`) or drawn at random.
    pub fn static_from(base: &ModelMeta, normalize: bool, random: bool) -> Self {
        let settings = StaticSettings {
            vocab_size: base.config.vocab_size,
            dim: base.config.hidden_size,
            normalize,
            pad_token_id: base.config.pad_token_id,
            max_len: base.max_len,
            prefixes: base.prefixes.clone(),
            source: if random { "random".into() } else { base.source_dir.display().to_string() },
        };
        Self {
            name: format!("static({})", base.name),
            source_dir: base.source_dir.clone(),
            tokenizer_path: base.source_dir.join("tokenizer.json"),
            prefixes: base.prefixes.clone(),
            max_len: base.max_len,
            source: ModelSource::Static {
                settings,
                init: if random { StaticInit::Random } else { StaticInit::FromModel(Box::new(base.clone())) },
            },
        }
    }

    /// `bert` or `static`.
    pub fn kind(&self) -> &'static str {
        match self.source {
            ModelSource::Bert(_) => "bert",
            ModelSource::Static { .. } => "static",
        }
    }

    /// The transformer metadata, for transformer directories.
    pub fn bert(&self) -> Option<&ModelMeta> {
        match &self.source {
            ModelSource::Bert(m) => Some(m),
            ModelSource::Static { .. } => None,
        }
    }

    /// Padding id.
    pub fn pad_id(&self) -> u32 {
        match &self.source {
            ModelSource::Bert(m) => m.config.pad_token_id,
            ModelSource::Static { settings, .. } => settings.pad_token_id,
        }
    }

    /// Rows of the token-embedding table.
    pub fn vocab_size(&self) -> usize {
        match &self.source {
            ModelSource::Bert(m) => m.config.vocab_size,
            ModelSource::Static { settings, .. } => settings.vocab_size,
        }
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        match &self.source {
            ModelSource::Bert(m) => m.config.hidden_size,
            ModelSource::Static { settings, .. } => settings.dim,
        }
    }

    /// The longest input the model can read (position table), `None` without a limit.
    pub fn position_limit(&self) -> Option<usize> {
        match &self.source {
            ModelSource::Bert(m) => Some(m.config.max_sequence_length()),
            ModelSource::Static { .. } => None,
        }
    }

    /// Pooling and normalisation.
    pub fn pooling(&self) -> PoolingConfig {
        match &self.source {
            ModelSource::Bert(m) => m.pooling,
            ModelSource::Static { settings, .. } => PoolingConfig { mode: PoolingMode::Mean, normalize: settings.normalize },
        }
    }

    /// The tokenizer, truncating at `max_len` tokens, checked against the embedding table: a
    /// token id beyond the table would index out of bounds inside the model.
    pub fn tokenizer(&self, max_len: usize) -> Result<TextTokenizer> {
        if !self.tokenizer_path.is_file() {
            return Err(ModelError::MissingFile { path: self.tokenizer_path.clone(), hint: String::new() });
        }
        // A transformer gets what transformers builds for its tokenizer class; a static model the
        // file as written, as sentence-transformers' `StaticEmbedding` reads it (crate::reference).
        let reference = match &self.source {
            ModelSource::Bert(meta) => TokenizerReference::for_transformer_dir(&meta.source_dir)?,
            ModelSource::Static { .. } => TokenizerReference::File { class: None },
        };
        let tokenizer = TextTokenizer::from_file_as(&self.tokenizer_path, reference, self.pad_id(), max_len)?;
        if tokenizer.vocab_size() > self.vocab_size() {
            return Err(ModelError::Tokenizer {
                path: self.tokenizer_path.clone(),
                message: format!(
                    "the tokenizer has {} tokens but the model's embedding table has only {} rows",
                    tokenizer.vocab_size(),
                    self.vocab_size()
                ),
            });
        }
        Ok(match self.source {
            ModelSource::Bert(_) => tokenizer,
            ModelSource::Static { .. } => tokenizer.without_special_tokens(),
        })
    }

    /// The model with its starting weights on `device`.
    pub fn load(&self, device: &Device) -> Result<AnyEncoder> {
        Ok(match &self.source {
            ModelSource::Bert(meta) => AnyEncoder::Bert(crate::hf::load_weights(meta, device)?.0),
            ModelSource::Static { settings, init } => AnyEncoder::Static(match init {
                StaticInit::Saved => StaticEncoder::load_dir(&self.source_dir, settings, device)?,
                StaticInit::FromModel(meta) => StaticEncoder::from_hf_model(meta, settings.normalize, device)?,
                StaticInit::Random => StaticEncoder::random(settings.vocab_size, settings.dim, settings.normalize, device),
            }),
        })
    }

    /// The model's structure with fresh weights on `device`, to load a checkpoint into
    /// ([`crate::load_module_into`]).
    pub fn skeleton(&self, device: &Device) -> AnyEncoder {
        match &self.source {
            ModelSource::Bert(meta) => AnyEncoder::Bert(BertEncoder::for_meta(meta, device)),
            ModelSource::Static { settings, .. } => {
                AnyEncoder::Static(StaticEncoder::random(settings.vocab_size, settings.dim, settings.normalize, device))
            }
        }
    }
}

fn dir_name(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}
