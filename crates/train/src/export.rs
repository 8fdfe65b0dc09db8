//! A run's checkpoint back to a Hugging Face + sentence-transformers directory.

use std::path::Path;

use burn::tensor::Device;
use hybrid_ir_model::{BertEncoder, LoadOptions, ModelMeta, export_hf_dir, load_module, read_meta};

use crate::checkpoint::{CheckpointDir, Pointer, verify};
use crate::config::TrainConfig;
use crate::encode::TextPipeline;
use crate::error::{Result, TrainError};

/// Loads the model of a run directory's `best` checkpoint (or `last` when there is no best, or
/// when `prefer_last`), verified against its manifest, with the run's config and base-model meta
/// (prefixes and max length as trained).
pub fn load_run_model(run_dir: &Path, prefer_last: bool, device: &Device) -> Result<(TrainConfig, ModelMeta, BertEncoder)> {
    let config_path = run_dir.join("config.toml");
    let text = std::fs::read_to_string(&config_path).map_err(|e| TrainError::io(&config_path, e))?;
    let config = TrainConfig::from_toml_str(&text, &config_path)?;
    let checkpoints = CheckpointDir::of_run(run_dir);
    let order = if prefer_last { [Pointer::Last, Pointer::Best] } else { [Pointer::Best, Pointer::Last] };
    let mut dir = None;
    for p in order {
        if let Some(d) = checkpoints.resolve(p)? {
            dir = Some(d);
            break;
        }
    }
    let dir = dir.ok_or_else(|| TrainError::checkpoint(checkpoints.root(), "the run has no checkpoint"))?;
    let ckpt = verify(&dir)?;
    let mut meta = read_meta(&config.model.dir, &LoadOptions::default())?;
    meta.prefixes = config.prefixes(&meta.prefixes);
    meta.max_len = config.model.passage_max_len.min(meta.config.max_sequence_length());
    let encoder = load_module(&meta, &ckpt.model_path(), device)?;
    Ok((config, meta, encoder))
}

/// Writes a run's best (else last) checkpoint as a Hugging Face directory at `out_dir`:
/// `model.safetensors` with the base model's tensor names, its `config.json` and tokenizer, and
/// sentence-transformers files carrying the trained prefixes, pooling and max length.
pub fn export_run(run_dir: &Path, out_dir: &Path, prefer_last: bool) -> Result<()> {
    let device = Device::flex();
    let (config, meta, encoder) = load_run_model(run_dir, prefer_last, &device)?;
    let pipeline = TextPipeline::new(&meta, meta.prefixes.clone(), config.model.query_max_len, config.model.passage_max_len)?;
    export_hf_dir(&encoder, &meta, &pipeline.passage_tokenizer, out_dir)?;
    Ok(())
}
