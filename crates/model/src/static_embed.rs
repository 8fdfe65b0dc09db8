//! [`StaticEncoder`]: a token-embedding table with mean pooling (sentence-transformers'
//! `StaticEmbedding`, Model2Vec), the second backbone behind [`Backbone`].
//!
//! An embedding is the mean of the row vectors of the text's tokens (optionally L2-normalised).
//! It trains with the same trainer, samplers and losses as a transformer, at a small fraction of
//! the cost: on 2 CPU cores a step of batch 32 takes milliseconds instead of seconds, which makes
//! sampler studies with many seeds cheap. It starts from any Hugging Face model's word-embedding
//! matrix (e.g. multilingual-e5-small's 250k x 384) or from random values.
//!
//! Like sentence-transformers' `StaticEmbedding`, texts are tokenised **without** special tokens
//! (a `[CLS]` / `</s>` row in every mean would only add a constant).
//!
//! Directory layout (what [`save_static_dir`] writes and [`crate::ModelInfo::read`] recognises):
//! sentence-transformers' own, so `SentenceTransformer(dir)` loads it too:
//! `modules.json`, `0_StaticEmbedding/{model.safetensors, tokenizer.json}` (tensor
//! `embedding.weight`), `1_Normalize/` when normalised, `config_sentence_transformers.json`
//! (prefixes), and `hybrid_ir_static.json` (our settings: pad id, truncation, source model).

use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::{Embedding, EmbeddingConfig};
use burn::store::{FloatCastAdapter, ModuleAdapter, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::backbone::Backbone;
use crate::error::{ModelError, Result};
use crate::hf::{ModelMeta, regex_escape, write_json};
use crate::pooling::{l2_normalize, mean_pool};
use crate::prefix::PrefixConfig;

/// Folder of the embedding table inside a static model directory (sentence-transformers' name).
pub const STATIC_MODULE_DIR: &str = "0_StaticEmbedding";
/// Our settings file inside a static model directory.
pub const STATIC_SETTINGS_FILE: &str = "hybrid_ir_static.json";

/// A token-embedding table with masked mean pooling.
#[derive(Module, Debug)]
pub struct StaticEncoder {
    /// `[vocab, dim]` token vectors.
    pub embedding: Embedding,
    /// Divide each pooled embedding by its L2 norm (cosine training wants it).
    pub normalize: bool,
}

/// Settings of a static model directory (`hybrid_ir_static.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticSettings {
    /// Rows of the table.
    pub vocab_size: usize,
    /// Embedding dimension.
    pub dim: usize,
    /// L2-normalise embeddings.
    pub normalize: bool,
    /// Padding id of the tokenizer.
    pub pad_token_id: u32,
    /// Truncation length in tokens.
    pub max_len: usize,
    /// Query / passage prefixes.
    #[serde(default)]
    pub prefixes: PrefixConfig,
    /// Where the initial table came from (`random`, or a model directory).
    #[serde(default)]
    pub source: String,
}

impl StaticEncoder {
    /// A table of `vocab_size x dim` values drawn from burn's default embedding initialiser
    /// (normal(0, 1)); seed the device first for a reproducible start.
    pub fn random(vocab_size: usize, dim: usize, normalize: bool, device: &Device) -> Self {
        Self { embedding: EmbeddingConfig::new(vocab_size, dim).init(device), normalize }
    }

    /// A table from row-major `values` (`vocab_size * dim` of them).
    pub fn from_values(values: Vec<f32>, vocab_size: usize, dim: usize, normalize: bool, device: &Device) -> Result<Self> {
        if values.len() != vocab_size * dim || vocab_size == 0 || dim == 0 {
            return Err(ModelError::BadTensor {
                path: PathBuf::from("<values>"),
                tensor: "embedding.weight".into(),
                message: format!("{} values for a {vocab_size} x {dim} table", values.len()),
            });
        }
        let weight = Tensor::<2>::from_data(TensorData::new(values, [vocab_size, dim]), device);
        let mut encoder = Self::random(vocab_size, dim, normalize, device);
        encoder.embedding.weight = Param::from_tensor(weight);
        Ok(encoder)
    }

    /// The word-embedding matrix of a Hugging Face BERT / XLM-R / LaBSE model (`meta` from
    /// [`crate::read_meta`]), any float dtype, as the table: Model2Vec's starting point without
    /// its distillation step.
    pub fn from_hf_model(meta: &ModelMeta, normalize: bool, device: &Device) -> Result<Self> {
        let path = meta.source_dir.join("model.safetensors");
        let from = format!("^{}embeddings\\.word_embeddings\\.", regex_escape(&meta.weight_prefix));
        let store = SafetensorsStore::from_file(&path)
            .with_from_adapter(PyTorchToBurnAdapter.chain(FloatCastAdapter::to(DType::F32)))
            .with_key_remapping(from, "embedding.")
            .allow_partial(true);
        let tensor = format!("{}embeddings.word_embeddings.weight", meta.weight_prefix);
        Self::random(meta.config.vocab_size, meta.config.hidden_size, normalize, device).load_table(store, path, &tensor)
    }

    /// Loads the table of a static model directory written by [`save_static_dir`].
    pub fn load_dir(dir: &Path, settings: &StaticSettings, device: &Device) -> Result<Self> {
        let path = dir.join(STATIC_MODULE_DIR).join("model.safetensors");
        if !path.is_file() {
            return Err(ModelError::MissingFile { path, hint: String::new() });
        }
        let store = SafetensorsStore::from_file(&path).with_from_adapter(FloatCastAdapter::to(DType::F32));
        Self::random(settings.vocab_size, settings.dim, settings.normalize, device).load_table(store, path, "embedding.weight")
    }

    /// Fills the table from `store` (read from `path`), where the checkpoint calls it `tensor`;
    /// an unusable or absent tensor is an error naming it.
    fn load_table(mut self, mut store: SafetensorsStore, path: std::path::PathBuf, tensor: &str) -> Result<Self> {
        let result = self.load_from(&mut store).map_err(|e| ModelError::Safetensors { path: path.clone(), message: e.to_string() })?;
        if let Some(error) = result.errors.first() {
            return Err(ModelError::BadTensor { path, tensor: tensor.into(), message: error.to_string() });
        }
        if !result.missing.is_empty() {
            return Err(ModelError::MissingTensor { path, tensor: tensor.into() });
        }
        Ok(self)
    }
}

impl Backbone for StaticEncoder {
    fn embed(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
        let pooled = mean_pool(self.embedding.forward(input_ids), attention_mask);
        if self.normalize { l2_normalize(pooled) } else { pooled }
    }

    fn dim(&self) -> usize {
        self.embedding.weight.dims()[1]
    }

    fn vocab_size(&self) -> usize {
        self.embedding.weight.dims()[0]
    }

    fn kind(&self) -> &'static str {
        "static"
    }
}

/// Writes `encoder` as a static model directory at `out_dir` (layout in the module docs), with
/// the tokenizer file `tokenizer_json` and `settings`.
pub fn save_static_dir(encoder: &StaticEncoder, settings: &StaticSettings, tokenizer_json: &[u8], out_dir: &Path) -> Result<()> {
    use serde_json::json;
    let module_dir = out_dir.join(STATIC_MODULE_DIR);
    std::fs::create_dir_all(&module_dir).map_err(|e| ModelError::io(&module_dir, e))?;
    let weights = module_dir.join("model.safetensors");
    let mut store = SafetensorsStore::from_file(&weights).metadata("format", "pt");
    encoder.save_into(&mut store).map_err(|e| ModelError::Safetensors { path: weights.clone(), message: e.to_string() })?;
    let tok = module_dir.join("tokenizer.json");
    std::fs::write(&tok, tokenizer_json).map_err(|e| ModelError::io(&tok, e))?;
    let mut modules =
        vec![json!({"idx": 0, "name": "0", "path": STATIC_MODULE_DIR, "type": "sentence_transformers.models.StaticEmbedding"})];
    if encoder.normalize {
        modules.push(json!({"idx": 1, "name": "1", "path": "1_Normalize", "type": "sentence_transformers.models.Normalize"}));
        let dir = out_dir.join("1_Normalize");
        std::fs::create_dir_all(&dir).map_err(|e| ModelError::io(&dir, e))?;
    }
    write_json(&out_dir.join("modules.json"), &serde_json::Value::Array(modules))?;
    let mut st_config = json!({"default_prompt_name": null, "similarity_fn_name": "cosine"});
    if !settings.prefixes.query.is_empty() || !settings.prefixes.passage.is_empty() {
        st_config["prompts"] = json!({"query": settings.prefixes.query, "passage": settings.prefixes.passage});
    }
    write_json(&out_dir.join("config_sentence_transformers.json"), &st_config)?;
    let text = serde_json::to_value(settings).map_err(|e| ModelError::json(out_dir.join(STATIC_SETTINGS_FILE), e))?;
    write_json(&out_dir.join(STATIC_SETTINGS_FILE), &text)
}
