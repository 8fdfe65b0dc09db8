//! The one encoding path: text → prefix → token ids (truncated, checked against the embedding
//! table) → length-sorted padded batches → [`Backbone::embed`] → rows back in input order, with
//! non-finite embeddings refused. `hybrid-ir encode`, `eval --model`, `reproduce`, the trainer's
//! validation and evaluation, and the speed benchmarks all go through [`TextPipeline`] and
//! [`embed_sequences`] (the frozen-bottom cache, [`crate::frozen`], is the same computation split
//! in two for transformers).

use burn::tensor::Tensor;
use ndarray::Array2;

use crate::any::ModelInfo;
use crate::backbone::Backbone;
use crate::error::{ModelError, Result};
use crate::pooling::PoolingConfig;
use crate::prefix::{PrefixConfig, TextKind};
use crate::tokenize::{TextTokenizer, TokenBatch, length_sorted_batches};

/// Tokenizers for queries and passages (each with its own truncation) plus the prefixes.
#[derive(Debug, Clone)]
pub struct TextPipeline {
    /// Query tokenizer (truncates at the query max length).
    pub query_tokenizer: TextTokenizer,
    /// Passage tokenizer (truncates at the passage max length).
    pub passage_tokenizer: TextTokenizer,
    /// Prefixes added before tokenizing.
    pub prefixes: PrefixConfig,
    /// Pooling of the model (for logs and run cards; the backbone applies it).
    pub pooling: PoolingConfig,
}

impl TextPipeline {
    /// The model's tokenizer (read once) twice, truncating queries at `query_max_len` and
    /// passages at `passage_max_len` tokens. A length of 0 is refused; a length above the model's position
    /// table is lowered to it, and said once in the log.
    pub fn new(info: &ModelInfo, prefixes: PrefixConfig, query_max_len: usize, passage_max_len: usize) -> Result<Self> {
        let fit = |what: &str, len: usize| -> Result<usize> {
            if len == 0 {
                return Err(ModelError::Tokenizer {
                    path: info.tokenizer_path.clone(),
                    message: format!("{what} max length must be at least 1 token"),
                });
            }
            match info.position_limit() {
                Some(limit) if len > limit => {
                    tracing::warn!("{what} max length {len} is above what {} can read; using {limit}", info.name);
                    Ok(limit)
                }
                _ => Ok(len),
            }
        };
        let query_max_len = fit("query", query_max_len)?;
        let passage_tokenizer = info.tokenizer(fit("passage", passage_max_len)?)?;
        Ok(Self {
            query_tokenizer: passage_tokenizer.clone().with_max_len(query_max_len)?,
            passage_tokenizer,
            prefixes,
            pooling: info.pooling(),
        })
    }

    /// The model directory's own settings: its prefixes, and its max length for both sides.
    pub fn of_model(info: &ModelInfo) -> Result<Self> {
        Self::new(info, info.prefixes.clone(), info.max_len, info.max_len)
    }

    /// Padding id.
    pub fn pad_id(&self) -> u32 {
        self.query_tokenizer.pad_id()
    }

    /// Token ids of `texts` as queries, passages or raw text (the prefix for `kind` added).
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S], kind: TextKind) -> Result<Vec<Vec<u32>>> {
        let tokenizer = match kind {
            TextKind::Query => &self.query_tokenizer,
            TextKind::Passage | TextKind::Raw => &self.passage_tokenizer,
        };
        // Cut before the prefix is added: adding it copies the text, and a 100 MB text would be
        // copied whole only for the tokenizer to keep its first few hundred words.
        texts.iter().map(|t| tokenizer.encode(&self.prefixes.apply(kind, tokenizer.cut(t.as_ref())))).collect()
    }

    /// Embeds `texts` (prefix for `kind` added) with `model` (a `valid()` model: no dropout, no
    /// graph) in length-sorted batches of `batch_size`; rows in input order.
    pub fn encode<B: Backbone, S: AsRef<str>>(
        &self,
        model: &B,
        texts: &[S],
        kind: TextKind,
        batch_size: usize,
        progress: impl FnMut(usize),
    ) -> Result<Array2<f32>> {
        let sequences = self.tokenize(texts, kind)?;
        embed_sequences(model, &sequences, self.pad_id(), batch_size, progress)
    }
}

/// Embeds token sequences with `model` (use a `valid()` model: no dropout, no graph) in
/// length-sorted batches of `batch_size`; rows come back in input order. `progress` gets the
/// number done. A non-finite embedding (a NaN or infinite weight, or an overflow) is an error.
pub fn embed_sequences<B: Backbone>(
    model: &B,
    sequences: &[Vec<u32>],
    pad_id: u32,
    batch_size: usize,
    progress: impl FnMut(usize),
) -> Result<Array2<f32>> {
    embed_sequences_share(model, sequences, pad_id, batch_size, (0, 1), progress)
}

/// [`embed_sequences`] for one of `share.1` processes: only the length-sorted batches `k` with
/// `k % share.1 == share.0` are embedded; the other rows stay 0. The batches are those one process
/// forms, so the rows a process embeds are bit-for-bit the rows one process embeds, and a sum over
/// the processes' matrices (adding zeros is exact) is the one-process matrix.
pub fn embed_sequences_share<B: Backbone>(
    model: &B,
    sequences: &[Vec<u32>],
    pad_id: u32,
    batch_size: usize,
    share: (usize, usize),
    mut progress: impl FnMut(usize),
) -> Result<Array2<f32>> {
    if batch_size == 0 {
        return Err(ModelError::Encode("the encoding batch size must be at least 1".into()));
    }
    let device = model.device();
    let dim = model.dim();
    let mut out = Array2::<f32>::zeros((sequences.len(), dim));
    let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
    let mut done = 0;
    let (index, count) = (share.0, share.1.max(1));
    for (k, batch) in length_sorted_batches(&lengths, batch_size).into_iter().enumerate() {
        if k % count != index {
            continue;
        }
        let seqs: Vec<Vec<u32>> = batch.iter().map(|&i| sequences[i].clone()).collect();
        let (ids, mask) = TokenBatch::from_sequences(&seqs, pad_id).to_tensors(&device);
        let values = tensor_values(model.embed(ids, mask))?;
        for (row, &i) in batch.iter().enumerate() {
            let v = &values[row * dim..(row + 1) * dim];
            if let Some(bad) = v.iter().find(|x| !x.is_finite()) {
                return Err(ModelError::Encode(format!(
                    "the embedding of text #{i} has a non-finite value ({bad}): the model's weights hold NaN or infinite \
                     values, or its activations overflow"
                )));
            }
            out.row_mut(i).assign(&ndarray::ArrayView1::from(v));
        }
        done += batch.len();
        progress(done);
    }
    Ok(out)
}

/// Reads a float tensor back as `Vec<f32>`.
pub fn tensor_values<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| ModelError::Encode(format!("reading embeddings back: {e:?}")))
}
