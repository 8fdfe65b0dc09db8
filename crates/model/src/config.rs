//! The Hugging Face `config.json` subset that defines a BERT-family encoder, and the layout
//! differences between BERT, XLM-R and LaBSE that follow from it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// Architecture-defining fields of a Hugging Face `config.json` (BERT, RoBERTa/XLM-R, LaBSE).
///
/// Unknown fields are ignored here; the exporter writes the original file back unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// `bert`, `roberta`, `xlm-roberta`, … Decides the position-id offset.
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Rows of the word-embedding matrix.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads.
    pub num_attention_heads: usize,
    /// FFN inner size.
    pub intermediate_size: usize,
    /// Rows of the position-embedding matrix.
    pub max_position_embeddings: usize,
    /// Rows of the token-type matrix (2 for BERT, 1 for XLM-R).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon (1e-12 BERT, 1e-5 XLM-R).
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Activation; only `gelu` (exact erf form) is supported.
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Dropout on embeddings and residual branches (training only).
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities (training only).
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Padding token id (XLM-R also uses it as `padding_idx` of the position embeddings).
    #[serde(default)]
    pub pad_token_id: u32,
    /// `absolute` is the only supported position embedding.
    #[serde(default = "default_pos_type")]
    pub position_embedding_type: String,
}

fn default_model_type() -> String {
    "bert".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_pos_type() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Reads and validates `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
        let config: Self = serde_json::from_slice(&text).map_err(|e| ModelError::json(path, e))?;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks the fields this encoder relies on.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let unsupported = |message: String| Err(ModelError::Unsupported { path: path.to_path_buf(), message });
        if self.hidden_act != "gelu" {
            return unsupported(format!("hidden_act {:?} (only \"gelu\")", self.hidden_act));
        }
        if self.position_embedding_type != "absolute" {
            return unsupported(format!("position_embedding_type {:?}", self.position_embedding_type));
        }
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return unsupported(format!(
                "hidden_size {} is not divisible by num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.type_vocab_size == 0 {
            return unsupported("type_vocab_size 0".into());
        }
        Ok(())
    }

    /// First position id: 0 for BERT/LaBSE; `pad_token_id + 1` for RoBERTa/XLM-R, whose position
    /// embeddings reserve the rows up to the padding index.
    pub fn position_offset(&self) -> usize {
        match self.model_type.as_str() {
            "roberta" | "xlm-roberta" | "camembert" => self.pad_token_id as usize + 1,
            _ => 0,
        }
    }

    /// Longest input (special tokens included) the position table allows.
    pub fn max_sequence_length(&self) -> usize {
        self.max_position_embeddings.saturating_sub(self.position_offset())
    }
}
