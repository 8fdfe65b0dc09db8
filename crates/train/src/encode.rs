//! Text → token ids → embeddings: the training batch view the cached loss consumes
//! ([`TokenizedBatch`], a [`ChunkedEncoder`]) and length-sorted inference for evaluation.

use std::ops::Range;
use std::path::Path;

use burn::tensor::{Device, Tensor};
use hybrid_ir_data::sampler::Batch;
use hybrid_ir_loss::{ChunkedEncoder, EmbeddingRole};
use hybrid_ir_model::{BertEncoder, ModelMeta, PoolingConfig, PrefixConfig, TextKind, TextTokenizer, TokenBatch, length_sorted_batches};
use ndarray::Array2;

use crate::error::{Result, TrainError};

/// Tokenizers for queries and passages (each with its own truncation) plus prefixes and pooling.
#[derive(Debug, Clone)]
pub struct TextPipeline {
    /// Query tokenizer (truncates at the query max length).
    pub query_tokenizer: TextTokenizer,
    /// Passage tokenizer (truncates at the passage max length).
    pub passage_tokenizer: TextTokenizer,
    /// Prefixes added before tokenizing.
    pub prefixes: PrefixConfig,
    /// Pooling of the model.
    pub pooling: PoolingConfig,
}

impl TextPipeline {
    /// Builds the two tokenizers from the model directory's `tokenizer.json`.
    pub fn new(meta: &ModelMeta, prefixes: PrefixConfig, query_max_len: usize, passage_max_len: usize) -> Result<Self> {
        let path = meta.source_dir.join("tokenizer.json");
        let limit = meta.config.max_sequence_length();
        let pad = meta.config.pad_token_id;
        let tok = |len: usize| TextTokenizer::from_file(&path, pad, len.min(limit));
        Ok(Self { query_tokenizer: tok(query_max_len)?, passage_tokenizer: tok(passage_max_len)?, prefixes, pooling: meta.pooling })
    }

    /// Padding id.
    pub fn pad_id(&self) -> u32 {
        self.query_tokenizer.pad_id()
    }

    /// Token ids of `texts` as queries (`TextKind::Query`) or passages (`TextKind::Passage`).
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S], kind: TextKind) -> Result<Vec<Vec<u32>>> {
        let tokenizer = match kind {
            TextKind::Query => &self.query_tokenizer,
            TextKind::Passage | TextKind::Raw => &self.passage_tokenizer,
        };
        Ok(texts.iter().map(|t| tokenizer.encode(&self.prefixes.apply(kind, t.as_ref()))).collect::<Result<_, _>>()?)
    }

    /// Tokenizes a sampler batch. Hard negatives are used only when every pair has one (the
    /// loss needs the same number per query); otherwise the batch trains on in-batch negatives.
    pub fn tokenize_batch(&self, batch: &Batch) -> Result<TokenizedBatch> {
        let queries: Vec<&str> = batch.pairs.iter().map(|p| &*p.query).collect();
        let positives: Vec<&str> = batch.pairs.iter().map(|p| &*p.positive).collect();
        let negatives: Option<Vec<&str>> = batch.pairs.iter().map(|p| p.negative.as_deref()).collect();
        Ok(TokenizedBatch {
            queries: self.tokenize(&queries, TextKind::Query)?,
            positives: self.tokenize(&positives, TextKind::Passage)?,
            negatives: match negatives {
                Some(n) if !n.is_empty() => self.tokenize(&n, TextKind::Passage)?,
                _ => Vec::new(),
            },
            group_keys: batch.pairs.iter().map(|p| p.group_key).collect(),
            pad_id: self.pad_id(),
            pooling: self.pooling,
            chunk_orders: Default::default(),
        })
    }
}

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
    /// Pooling.
    pub pooling: PoolingConfig,
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

    fn order_of(&self, role: EmbeddingRole) -> Option<&[usize]> {
        let index = match role {
            EmbeddingRole::Query => 0,
            EmbeddingRole::Positive => 1,
            EmbeddingRole::Negative => 2,
        };
        self.chunk_orders[index].as_deref()
    }
}

/// The device a model's parameters live on (autodiff while training, plain after `valid()`).
pub fn model_device(model: &BertEncoder) -> Device {
    model.embeddings.word_embeddings.weight.val().device()
}

impl ChunkedEncoder<BertEncoder> for TokenizedBatch {
    fn rows(&self, role: EmbeddingRole) -> usize {
        self.rows_of(role).len()
    }

    fn embed(&self, model: &BertEncoder, role: EmbeddingRole, rows: Range<usize>) -> Tensor<2> {
        let all = self.rows_of(role);
        let batch = match self.order_of(role) {
            Some(order) => {
                let picked: Vec<Vec<u32>> = order[rows].iter().map(|&i| all[i].clone()).collect();
                TokenBatch::from_sequences(&picked, self.pad_id)
            }
            None => TokenBatch::from_sequences(&all[rows], self.pad_id),
        };
        let (ids, mask) = batch.to_tensors(&model_device(model));
        model.embed(ids, mask, self.pooling)
    }

    fn chunk_order(&self, role: EmbeddingRole) -> Option<&[usize]> {
        self.order_of(role)
    }
}

/// Embeds token sequences with `model` (use a `valid()` model: no dropout, no graph) in
/// length-sorted batches; rows come back in input order. `progress` gets the number done.
pub fn embed_sequences(
    model: &BertEncoder,
    sequences: &[Vec<u32>],
    pad_id: u32,
    pooling: PoolingConfig,
    batch_size: usize,
    mut progress: impl FnMut(usize),
) -> Result<Array2<f32>> {
    let device = model_device(model);
    let dim = model.hidden_size();
    let mut out = Array2::<f32>::zeros((sequences.len(), dim));
    let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
    let mut done = 0;
    for batch in length_sorted_batches(&lengths, batch_size) {
        let seqs: Vec<Vec<u32>> = batch.iter().map(|&i| sequences[i].clone()).collect();
        let (ids, mask) = TokenBatch::from_sequences(&seqs, pad_id).to_tensors(&device);
        let emb = model.embed(ids, mask, pooling);
        let values = tensor_to_vec(emb, Path::new("<embeddings>"))?;
        for (row, &i) in batch.iter().enumerate() {
            out.row_mut(i).assign(&ndarray::ArrayView1::from(&values[row * dim..(row + 1) * dim]));
        }
        done += batch.len();
        progress(done);
    }
    Ok(out)
}

/// Reads a float tensor back as `Vec<f32>`.
pub fn tensor_to_vec<const D: usize>(t: Tensor<D>, what: &Path) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| TrainError::Other(format!("{}: reading tensor back: {e:?}", what.display())))
}
