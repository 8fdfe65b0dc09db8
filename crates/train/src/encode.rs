//! A sampler batch as token ids: the training view the cached loss consumes
//! ([`TokenizedBatch`], a [`ChunkedEncoder`] for any [`Backbone`]).

use std::ops::Range;

use burn::tensor::Tensor;
use hybrid_ir_data::sampler::Batch;
use hybrid_ir_loss::{ChunkedEncoder, EmbeddingRole};
use hybrid_ir_model::{Backbone, TextKind, TextPipeline, TokenBatch};

use crate::error::Result;

/// One training batch as token ids, ready for [`hybrid_ir_loss::CachedLoss::step`].
#[derive(Debug, Clone)]
pub struct TokenizedBatch {
    /// Query token ids, one row per pair.
    pub queries: Vec<Vec<u32>>,
    /// Positive passage token ids, one row per pair.
    pub positives: Vec<Vec<u32>>,
    /// Hard negative token ids (one per pair), or empty.
    pub negatives: Vec<Vec<u32>>,
    /// Parallel-group keys for the loss's masking.
    pub group_keys: Vec<u64>,
    /// Padding id.
    pub pad_id: u32,
    /// Per role (query, positive, negative): the order rows are chunked in, longest first, or
    /// `None` for batch order. See [`TokenizedBatch::with_chunk_order`].
    pub chunk_orders: [Option<Vec<usize>>; 3],
}

impl TokenizedBatch {
    fn rows_of(&self, role: EmbeddingRole) -> &[Vec<u32>] {
        match role {
            EmbeddingRole::Query => &self.queries,
            EmbeddingRole::Positive => &self.positives,
            EmbeddingRole::Negative => &self.negatives,
        }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// Whether the batch has no pairs.
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }

    /// With `sort = true`, chunks each role's rows longest first, so a chunk pads only to
    /// similar lengths: with small chunks the encoder computes (almost) only real tokens. The
    /// loss and gradients are those of the batch in its own order (the loss crate restores it);
    /// only the per-chunk dropout masks fall on other rows. `false` restores batch order.
    pub fn with_chunk_order(mut self, sort: bool) -> Self {
        self.chunk_orders = if sort {
            [&self.queries, &self.positives, &self.negatives].map(|rows| {
                let mut order: Vec<usize> = (0..rows.len()).collect();
                // Stable: equal lengths keep batch order, so the order is deterministic.
                order.sort_by_key(|&i| std::cmp::Reverse(rows[i].len()));
                Some(order)
            })
        } else {
            Default::default()
        };
        self
    }

    /// Padded token positions per role with the current chunk order and `chunk_size`, and the
    /// real (non-pad) tokens: `(padded, real)`.
    pub fn token_counts(&self, chunk_size: usize) -> (usize, usize) {
        let mut padded = 0;
        let mut real = 0;
        for role in EmbeddingRole::ALL {
            let rows = self.rows_of(role);
            let order = self.order_of(role);
            for range in hybrid_ir_loss::chunk_ranges(rows.len(), chunk_size) {
                let lens: Vec<usize> = range.map(|k| rows[order.map_or(k, |o| o[k])].len()).collect();
                padded += lens.len() * lens.iter().copied().max().unwrap_or(0);
                real += lens.iter().sum::<usize>();
            }
        }
        (padded, real)
    }

    /// Pairs `pairs` of this batch (with their hard negatives), chunked as this batch is; the
    /// group keys stay those of the whole batch, which the loss sees after the ranks' rows are
    /// joined (see [`crate::distributed`]).
    pub fn shard(&self, pairs: Range<usize>) -> Self {
        let per_pair = if self.is_empty() { 0 } else { self.negatives.len() / self.len() };
        let sorted = self.chunk_orders[0].is_some();
        TokenizedBatch {
            queries: self.queries[pairs.clone()].to_vec(),
            positives: self.positives[pairs.clone()].to_vec(),
            negatives: self.negatives[pairs.start * per_pair..pairs.end * per_pair].to_vec(),
            group_keys: self.group_keys.clone(),
            pad_id: self.pad_id,
            chunk_orders: Default::default(),
        }
        .with_chunk_order(sorted)
    }

    fn order_of(&self, role: EmbeddingRole) -> Option<&[usize]> {
        let index = match role {
            EmbeddingRole::Query => 0,
            EmbeddingRole::Positive => 1,
            EmbeddingRole::Negative => 2,
        };
        self.chunk_orders[index].as_deref()
    }
}

impl TokenizedBatch {
    /// Tokenizes a sampler batch with `pipeline`. Hard negatives are used only when every pair
    /// has one (the loss needs the same number per query); otherwise the batch trains on
    /// in-batch negatives.
    pub fn new(pipeline: &TextPipeline, batch: &Batch) -> Result<Self> {
        let queries: Vec<&str> = batch.pairs.iter().map(|p| &*p.query).collect();
        let positives: Vec<&str> = batch.pairs.iter().map(|p| &*p.positive).collect();
        let negatives: Option<Vec<&str>> = batch.pairs.iter().map(|p| p.negative.as_deref()).collect();
        Ok(TokenizedBatch {
            queries: pipeline.tokenize(&queries, TextKind::Query)?,
            positives: pipeline.tokenize(&positives, TextKind::Passage)?,
            negatives: match negatives {
                Some(n) if !n.is_empty() => pipeline.tokenize(&n, TextKind::Passage)?,
                _ => Vec::new(),
            },
            group_keys: batch.pairs.iter().map(|p| p.group_key).collect(),
            pad_id: pipeline.pad_id(),
            chunk_orders: Default::default(),
        })
    }
}

impl<B: Backbone> ChunkedEncoder<B> for TokenizedBatch {
    fn rows(&self, role: EmbeddingRole) -> usize {
        self.rows_of(role).len()
    }

    fn embed(&self, model: &B, role: EmbeddingRole, rows: Range<usize>) -> Tensor<2> {
        let all = self.rows_of(role);
        let batch = match self.order_of(role) {
            Some(order) => {
                let picked: Vec<Vec<u32>> = order[rows].iter().map(|&i| all[i].clone()).collect();
                TokenBatch::from_sequences(&picked, self.pad_id)
            }
            None => TokenBatch::from_sequences(&all[rows], self.pad_id),
        };
        let (ids, mask) = batch.to_tensors(&model.device());
        model.embed(ids, mask)
    }

    fn chunk_order(&self, role: EmbeddingRole) -> Option<&[usize]> {
        self.order_of(role)
    }
}
