//! [`SentenceEncoder`]: a loaded model (encoder + tokenizer + metadata + device) with a batch
//! `encode` API for inference, export, and burnpack save/load of fine-tuned weights.

use std::path::Path;

use burn::module::Module;
use burn::tensor::Device;

use crate::encoder::BertEncoder;
use crate::error::{ModelError, Result};
use crate::hf::{LoadOptions, LoadReport, ModelMeta, export_hf_dir, load_tokenizer, load_weights, read_meta};
use crate::prefix::TextKind;
use crate::tokenize::{TextTokenizer, TokenBatch, length_sorted_batches};

/// A ready-to-use text encoder.
#[derive(Debug, Clone)]
pub struct SentenceEncoder {
    /// The burn module.
    pub encoder: BertEncoder,
    /// Its tokenizer (padding off, truncation at `meta.max_len`).
    pub tokenizer: TextTokenizer,
    /// Config, pooling, prefixes.
    pub meta: ModelMeta,
    /// Device the module lives on.
    pub device: Device,
}

impl SentenceEncoder {
    /// Loads a Hugging Face model directory onto `device`.
    pub fn load(dir: &Path, device: &Device, options: &LoadOptions) -> Result<Self> {
        Self::load_with_report(dir, device, options).map(|(m, _)| m)
    }

    /// Like [`SentenceEncoder::load`], also returning what happened to each checkpoint tensor.
    pub fn load_with_report(dir: &Path, device: &Device, options: &LoadOptions) -> Result<(Self, LoadReport)> {
        let meta = read_meta(dir, options)?;
        let tokenizer = load_tokenizer(&meta)?;
        let (encoder, report) = load_weights(&meta, device)?;
        Ok((Self { encoder, tokenizer, meta, device: device.clone() }, report))
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.meta.config.hidden_size
    }

    /// Adds the prefix for `kind` and tokenizes each text (ids include special tokens).
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S], kind: TextKind) -> Result<Vec<Vec<u32>>> {
        texts.iter().map(|t| self.tokenizer.encode(&self.meta.prefixes.apply(kind, t.as_ref()))).collect()
    }

    /// Embeds `texts` (prefix for `kind` added) in length-sorted batches of `batch_size`,
    /// returning one vector per text in input order. `progress` is called with the number of
    /// texts finished after each batch.
    pub fn encode<S: AsRef<str>>(
        &self,
        texts: &[S],
        kind: TextKind,
        batch_size: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let sequences = self.tokenize(texts, kind)?;
        let lengths: Vec<usize> = sequences.iter().map(Vec::len).collect();
        let mut out = vec![Vec::new(); texts.len()];
        let mut done = 0;
        for batch in length_sorted_batches(&lengths, batch_size) {
            let seqs: Vec<Vec<u32>> = batch.iter().map(|&i| sequences[i].clone()).collect();
            let vectors = self.embed_token_batch(&TokenBatch::from_sequences(&seqs, self.tokenizer.pad_id()))?;
            for (i, v) in batch.iter().zip(vectors) {
                out[*i] = v;
            }
            done += batch.len();
            progress(done);
        }
        Ok(out)
    }

    /// Embeds one padded token batch.
    pub fn embed_token_batch(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>> {
        if batch.batch == 0 {
            return Ok(Vec::new());
        }
        let (ids, mask) = batch.to_tensors(&self.device);
        let emb = self.encoder.embed(ids, mask, self.meta.pooling);
        let dim = emb.dims()[1];
        let values: Vec<f32> = emb.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| ModelError::BadTensor {
            path: self.meta.source_dir.clone(),
            tensor: "embeddings".into(),
            message: format!("{e:?}"),
        })?;
        Ok(values.chunks(dim).map(<[f32]>::to_vec).collect())
    }

    /// Writes the model as a Hugging Face + sentence-transformers directory (see [`export_hf_dir`]).
    pub fn export(&self, out_dir: &Path) -> Result<()> {
        export_hf_dir(&self.encoder, &self.meta, &self.tokenizer, out_dir)
    }

    /// Replaces the weights with a burnpack file saved by [`save_module`].
    pub fn with_module_file(mut self, path: &Path) -> Result<Self> {
        self.encoder = load_module(&self.meta, path, &self.device)?;
        Ok(self)
    }
}

/// Saves the encoder's weights as a burnpack file (keeps parameter ids, for resuming training).
pub fn save_module(encoder: &BertEncoder, path: &Path) -> Result<()> {
    encoder.clone().save_file(path).map_err(|e| ModelError::Record { path: path.to_path_buf(), message: e.to_string() })
}

/// Loads weights saved by [`save_module`] into a new encoder built from `meta`'s config.
pub fn load_module(meta: &ModelMeta, path: &Path, device: &Device) -> Result<BertEncoder> {
    BertEncoder::new(&meta.config, meta.has_pooler, device)
        .try_load_file(path)
        .map_err(|e| ModelError::Record { path: path.to_path_buf(), message: e.to_string() })
}
