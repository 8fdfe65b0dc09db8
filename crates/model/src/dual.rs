//! Dual encoders: one tower for queries and one for passages, shared by default.

use burn::module::Module;
use burn::tensor::{Int, Tensor};

use crate::encoder::BertEncoder;
use crate::pooling::PoolingConfig;

/// Anything that maps query and passage token batches to embeddings `[B, D]`.
///
/// Implement it to plug another backbone into training and evaluation code.
pub trait DualEncoder {
    /// Query embeddings from `input_ids [B, L]` and `attention_mask [B, L]`.
    fn embed_queries(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<2>;
    /// Passage embeddings from `input_ids [B, L]` and `attention_mask [B, L]`.
    fn embed_passages(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<2>;
}

/// BERT dual encoder. With `passage_tower: None` both sides share `query_tower`'s weights
/// (the default); with `Some`, passages use their own tower.
#[derive(Module, Debug)]
pub struct BertDualEncoder {
    /// Query tower (and passage tower when shared).
    pub query_tower: BertEncoder,
    /// Separate passage tower, if any.
    pub passage_tower: Option<BertEncoder>,
    /// Pooling and normalisation applied on both sides.
    #[module(skip)]
    pub pooling: PoolingConfig,
}

impl BertDualEncoder {
    /// Both sides share one encoder.
    pub fn shared(encoder: BertEncoder, pooling: PoolingConfig) -> Self {
        Self { query_tower: encoder, passage_tower: None, pooling }
    }

    /// Separate towers, both starting from `encoder`'s weights.
    pub fn separate(encoder: BertEncoder, pooling: PoolingConfig) -> Self {
        Self { passage_tower: Some(encoder.clone()), query_tower: encoder, pooling }
    }

    /// Whether queries and passages use the same weights.
    pub fn is_shared(&self) -> bool {
        self.passage_tower.is_none()
    }

    /// The encoder used for passages.
    pub fn passage_encoder(&self) -> &BertEncoder {
        self.passage_tower.as_ref().unwrap_or(&self.query_tower)
    }
}

impl DualEncoder for BertDualEncoder {
    fn embed_queries(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
        self.query_tower.embed(input_ids, attention_mask, self.pooling)
    }

    fn embed_passages(&self, input_ids: Tensor<2, Int>, attention_mask: Tensor<2, Int>) -> Tensor<2> {
        self.passage_encoder().embed(input_ids, attention_mask, self.pooling)
    }
}
