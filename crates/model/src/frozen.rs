//! Evaluation that shares the frozen bottom of the encoder across models.
//!
//! When runs train only the top `k` layers, every model of a comparison has the same embeddings
//! and lower layers as the start model. [`FrozenPrefixCache`] runs those once over a text set,
//! keeps the hidden states, and then embeds the texts with any model by running only its top
//! layers. The result is the same computation as a full forward (same ops, same order), which
//! `tests/frozen.rs` checks bit for bit.

use burn::tensor::{Int, Tensor};
use ndarray::Array2;

use crate::backbone::Backbone;
use crate::encoder::BertEncoder;
use crate::error::{ModelError, Result};
use crate::pipeline::tensor_values;
use crate::tokenize::{TokenBatch, length_sorted_batches};

/// Attention bias of the encoder for padding keys (`BertEncoder::forward` uses the same value).
const MASKED_SCORE: f32 = -1e9;

struct CachedBatch {
    rows: Vec<usize>,
    states: Tensor<3>,
    mask: Tensor<2, Int>,
}

/// Hidden states after the first `frozen_layers` layers for a fixed list of token sequences.
pub struct FrozenPrefixCache {
    frozen_layers: usize,
    num_rows: usize,
    batches: Vec<CachedBatch>,
}

impl std::fmt::Debug for FrozenPrefixCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrozenPrefixCache")
            .field("frozen_layers", &self.frozen_layers)
            .field("num_rows", &self.num_rows)
            .field("batches", &self.batches.len())
            .finish()
    }
}

fn attention_bias(mask: &Tensor<2, Int>) -> Tensor<4> {
    let [batch, len] = mask.dims();
    (mask.clone().float().neg().add_scalar(1.0) * MASKED_SCORE).reshape([batch, 1, 1, len])
}

impl FrozenPrefixCache {
    /// Runs the embeddings and layers `0..frozen_layers` of `base` (a `valid()` model) over
    /// `sequences` in length-sorted batches. `progress` gets the number of sequences done.
    pub fn build(
        base: &BertEncoder,
        sequences: &[Vec<u32>],
        pad_id: u32,
        frozen_layers: usize,
        batch_size: usize,
        progress: impl FnMut(usize),
    ) -> Result<Self> {
        Self::build_share(base, sequences, pad_id, frozen_layers, batch_size, (0, 1), progress)
    }

    /// [`Self::build`] for one of `share.1` processes: only the length-sorted batches `k` with
    /// `k % share.1 == share.0` are cached (the batching of
    /// [`crate::pipeline::embed_sequences_share`]), so [`Self::embed`] fills those rows and
    /// leaves the others 0: summed over the processes, the one-process matrix, bit for bit.
    pub fn build_share(
        base: &BertEncoder,
        sequences: &[Vec<u32>],
        pad_id: u32,
        frozen_layers: usize,
        batch_size: usize,
        share: (usize, usize),
        mut progress: impl FnMut(usize),
    ) -> Result<Self> {
        if batch_size == 0 {
            return Err(ModelError::Encode("the encoding batch size must be at least 1".into()));
        }
        let n = base.encoder.layer.len();
        if frozen_layers > n {
            return Err(ModelError::Encode(format!("cannot freeze {frozen_layers} layers of a {n}-layer encoder")));
        }
        let device = base.device();
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let mut batches = Vec::new();
        let mut done = 0;
        let (index, count) = (share.0, share.1.max(1));
        for (k, rows) in length_sorted_batches(&lengths, batch_size).into_iter().enumerate() {
            if k % count != index {
                continue;
            }
            let seqs: Vec<Vec<u32>> = rows.iter().map(|&i| sequences[i].clone()).collect();
            let (ids, mask) = TokenBatch::from_sequences(&seqs, pad_id).to_tensors(&device);
            let bias = attention_bias(&mask);
            let mut x = base.embeddings.forward(ids);
            for layer in &base.encoder.layer[..frozen_layers] {
                x = layer.forward(x, bias.clone(), base.compute_dtype());
            }
            done += rows.len();
            batches.push(CachedBatch { rows, states: x, mask });
            progress(done);
        }
        Ok(Self { frozen_layers, num_rows: sequences.len(), batches })
    }

    /// Layers shared through the cache.
    pub fn frozen_layers(&self) -> usize {
        self.frozen_layers
    }

    /// Embeds the cached texts with `model` (a `valid()` model whose bottom equals the base's):
    /// only layers `frozen_layers..` run. Rows come back in input order (rows of batches another
    /// process caches, [`Self::build_share`], are 0).
    /// Pooling is the model's own ([`BertEncoder::pooling`]).
    pub fn embed(&self, model: &BertEncoder, mut progress: impl FnMut(usize)) -> Result<Array2<f32>> {
        let dim = model.hidden_size();
        let mut out = Array2::<f32>::zeros((self.num_rows, dim));
        let mut done = 0;
        for b in &self.batches {
            let bias = attention_bias(&b.mask);
            let mut x = b.states.clone();
            for layer in &model.encoder.layer[self.frozen_layers..] {
                x = layer.forward(x, bias.clone(), model.compute_dtype());
            }
            let emb = model.pool(x, b.mask.clone(), model.pooling);
            let values = tensor_values(emb)?;
            for (r, &i) in b.rows.iter().enumerate() {
                out.row_mut(i).assign(&ndarray::ArrayView1::from(&values[r * dim..(r + 1) * dim]));
            }
            done += b.rows.len();
            progress(done);
        }
        Ok(out)
    }
}
