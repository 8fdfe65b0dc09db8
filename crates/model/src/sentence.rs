//! [`SentenceEncoder`]: a loaded model directory (either backbone, its text pipeline, its info
//! and device) with a batch `encode` API: the library face of the one encoding path
//! ([`crate::pipeline`]).

use std::path::Path;

use burn::tensor::Device;

use crate::any::{AnyEncoder, ModelInfo, ModelSource};
use crate::backbone::{Backbone, load_module_into};
use crate::error::{ModelError, Result};
use crate::hf::{LoadOptions, LoadReport, export_hf_dir, load_weights};
use crate::pipeline::{TextPipeline, embed_sequences};
use crate::prefix::TextKind;
use crate::static_embed::{StaticSettings, save_static_dir};
use crate::tokenize::TokenBatch;

/// A ready-to-use text encoder.
#[derive(Debug, Clone)]
pub struct SentenceEncoder {
    /// The backbone (transformer or static table).
    pub encoder: AnyEncoder,
    /// Its tokenizers and prefixes (both sides truncate at `info.max_len`).
    pub pipeline: TextPipeline,
    /// Everything the model directory says beyond the weights.
    pub info: ModelInfo,
    /// Device the module lives on.
    pub device: Device,
}

impl SentenceEncoder {
    /// Loads a model directory (Hugging Face BERT-family or static) onto `device`.
    pub fn load(dir: &Path, device: &Device, options: &LoadOptions) -> Result<Self> {
        Self::load_with_report(dir, device, options).map(|(m, _)| m)
    }

    /// Like [`SentenceEncoder::load`], also returning what happened to each checkpoint tensor of
    /// a transformer (empty for a static model).
    pub fn load_with_report(dir: &Path, device: &Device, options: &LoadOptions) -> Result<(Self, LoadReport)> {
        let info = ModelInfo::read(dir, options)?;
        let pipeline = TextPipeline::of_model(&info)?;
        let (encoder, report) = match info.bert() {
            Some(meta) => {
                let (bert, report) = load_weights(meta, device)?;
                (AnyEncoder::Bert(bert), report)
            }
            None => (info.load(device)?, LoadReport::default()),
        };
        Ok((Self { encoder, pipeline, info, device: device.clone() }, report))
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.encoder.dim()
    }

    /// Adds the prefix for `kind` and tokenizes each text (ids include special tokens where the
    /// model uses them).
    pub fn tokenize<S: AsRef<str>>(&self, texts: &[S], kind: TextKind) -> Result<Vec<Vec<u32>>> {
        self.pipeline.tokenize(texts, kind)
    }

    /// Embeds `texts` (prefix for `kind` added) in length-sorted batches of `batch_size`,
    /// returning one vector per text in input order. `progress` is called with the number of
    /// texts finished after each batch.
    pub fn encode<S: AsRef<str>>(
        &self,
        texts: &[S],
        kind: TextKind,
        batch_size: usize,
        progress: impl FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let sequences = self.tokenize(texts, kind)?;
        let rows = embed_sequences(&self.encoder, &sequences, self.pipeline.pad_id(), batch_size, progress)?;
        Ok(rows.outer_iter().map(|r| r.to_vec()).collect())
    }

    /// Embeds one padded token batch.
    pub fn embed_token_batch(&self, batch: &TokenBatch) -> Result<Vec<Vec<f32>>> {
        if batch.batch == 0 {
            return Ok(Vec::new());
        }
        let (ids, mask) = batch.to_tensors(&self.device);
        let dim = self.dim();
        let values = crate::pipeline::tensor_values(self.encoder.embed(ids, mask))?;
        Ok(values.chunks(dim).map(<[f32]>::to_vec).collect())
    }

    /// Writes the model as a directory that this crate and sentence-transformers load: a Hugging
    /// Face directory for a transformer ([`export_hf_dir`]), the `StaticEmbedding` layout for a
    /// static model ([`save_static_dir`]). `out_dir` must not be the model's own directory.
    pub fn export(&self, out_dir: &Path) -> Result<()> {
        export_model(&self.encoder, &self.info, &self.pipeline, out_dir)
    }

    /// Replaces the weights with a burnpack file saved by [`crate::save_module`].
    pub fn with_module_file(mut self, path: &Path) -> Result<Self> {
        self.encoder = load_module_into(self.info.skeleton(&self.device), path)?;
        Ok(self)
    }
}

/// Writes `encoder` (described by `info`, tokenised by `pipeline`) as a model directory at
/// `out_dir` (see [`SentenceEncoder::export`]). Refuses to write into the directory the model
/// was read from, whose weights it would overwrite.
pub fn export_model(encoder: &AnyEncoder, info: &ModelInfo, pipeline: &TextPipeline, out_dir: &Path) -> Result<()> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(out_dir, &info.source_dir) {
        return Err(ModelError::Unsupported {
            path: out_dir.to_path_buf(),
            message: "is the base model's own directory; exporting there would overwrite its weights (choose another --out)"
                .into(),
        });
    }
    match (encoder, &info.source) {
        (AnyEncoder::Bert(bert), ModelSource::Bert(meta)) => {
            let mut meta = meta.clone();
            meta.prefixes = pipeline.prefixes.clone();
            meta.max_len = pipeline.passage_tokenizer.max_len();
            export_hf_dir(bert, &meta, &pipeline.passage_tokenizer, out_dir)
        }
        (AnyEncoder::Static(table), ModelSource::Static { settings, .. }) => {
            let settings = StaticSettings {
                prefixes: pipeline.prefixes.clone(),
                max_len: pipeline.passage_tokenizer.max_len(),
                ..settings.clone()
            };
            save_static_dir(table, &settings, pipeline.passage_tokenizer.source_json(), out_dir)
        }
        _ => Err(ModelError::Unsupported {
            path: info.source_dir.clone(),
            message: format!("a {} backbone cannot be exported with a {} model's files", encoder.kind(), info.kind()),
        }),
    }
}
