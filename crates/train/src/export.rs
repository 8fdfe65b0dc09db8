//! A run's checkpoint back to a model directory: Hugging Face + sentence-transformers for a
//! transformer, sentence-transformers' `StaticEmbedding` layout for a static model, with a model
//! card (`README.md`, [`crate::card`]) as sentence-transformers writes on save.

use std::path::Path;

use burn::tensor::Device;
use hybrid_ir_model::{AnyEncoder, ModelInfo, TextPipeline, export_model, load_module_into};

use crate::card::ModelCard;
use crate::checkpoint::{CheckpointDir, Pointer, verify, write_atomic};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::from_config::{load_corpora, model_info, pipeline};

/// A trained model as a run left it: its config, model info, text pipeline (prefixes and max
/// lengths as trained) and weights.
#[derive(Debug, Clone)]
pub struct RunModel {
    /// The run's config (`config.toml`).
    pub config: TrainConfig,
    /// The base model's info (the backbone the run trained).
    pub info: ModelInfo,
    /// Prefixes and truncation as trained.
    pub pipeline: TextPipeline,
    /// The weights of the chosen checkpoint.
    pub model: AnyEncoder,
    /// Optimizer step of the chosen checkpoint.
    pub step: u64,
    /// Which checkpoint it is: `best` or `last`.
    pub pointer: String,
}

/// Loads the model of a run directory's `best` checkpoint (or `last` when there is no best, or
/// when `prefer_last`), verified against its manifest, on `device`.
pub fn load_run_model(run_dir: &Path, prefer_last: bool, device: &Device) -> Result<RunModel> {
    let config_path = run_dir.join("config.toml");
    let config = TrainConfig::read(&config_path)?;
    let checkpoints = CheckpointDir::of_run(run_dir);
    let order = if prefer_last { [Pointer::Last, Pointer::Best] } else { [Pointer::Best, Pointer::Last] };
    let mut dir = None;
    for p in order {
        if let Some(d) = checkpoints.resolve(p)? {
            dir = Some((d, p));
            break;
        }
    }
    let (dir, pointer) = dir.ok_or_else(|| TrainError::checkpoint(checkpoints.root(), "the run has no checkpoint"))?;
    let ckpt = verify(&dir)?;
    let info = model_info(&config)?;
    let pipeline = pipeline(&config, &info)?;
    let model = load_module_into(info.skeleton(device), &ckpt.model_path())?;
    let pointer = pointer.file_name().to_string();
    Ok(RunModel { config, info, pipeline, model, step: ckpt.state.step, pointer })
}

/// How [`export_run_with`] exports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Export the `last` checkpoint even when the run has a `best` one.
    pub prefer_last: bool,
    /// Hugging Face id of the base model for the card's `base_model` (default: known for the
    /// models `cargo xtask fetch-models` provides, else left out).
    pub base_model_id: Option<String>,
    /// Leave out the model card (`README.md`, `heatmap.svg`).
    pub no_card: bool,
}

/// A model to encode with, from either kind of directory: a model directory (Hugging Face /
/// sentence-transformers, or a static model) with its own prefixes and `max_len` (or
/// `max_len_override`), or a run directory (a `config.toml` beside `checkpoints/`): its best
/// (else last) checkpoint with the prefixes and truncation it was trained with. Returns the
/// model, its pipeline and a description for logs.
pub fn load_encoder(dir: &Path, max_len_override: Option<usize>, device: &Device) -> Result<(AnyEncoder, TextPipeline, String)> {
    if dir.join("config.toml").is_file() && CheckpointDir::of_run(dir).root().is_dir() {
        let run = load_run_model(dir, false, device)?;
        let pipeline = match max_len_override {
            Some(n) => TextPipeline::new(&run.info, run.config.prefixes(&run.info.prefixes), n, n)?,
            None => run.pipeline,
        };
        return Ok((run.model, pipeline, format!("run {} (best checkpoint)", dir.display())));
    }
    let info = ModelInfo::read(dir, &hybrid_ir_model::LoadOptions::default())?;
    let n = max_len_override.unwrap_or(info.max_len);
    let pipeline = TextPipeline::new(&info, info.prefixes.clone(), n, n)?;
    let model = info.load(device)?;
    Ok((model, pipeline, format!("model {}", info.name)))
}

/// Writes a run's best (else last) checkpoint as a model directory at `out_dir` that this
/// project and sentence-transformers load, carrying the trained prefixes, pooling and max length,
/// with a model card.
pub fn export_run(run_dir: &Path, out_dir: &Path, prefer_last: bool) -> Result<()> {
    export_run_with(run_dir, out_dir, &ExportOptions { prefer_last, ..Default::default() })
}

/// [`export_run`] with all options.
pub fn export_run_with(run_dir: &Path, out_dir: &Path, options: &ExportOptions) -> Result<()> {
    let device = Device::flex();
    let run = load_run_model(run_dir, options.prefer_last, &device)?;
    // Checked before anything is written: a bad id should not leave a half-exported directory.
    let card = if options.no_card {
        None
    } else {
        let languages = train_languages(&run);
        Some(ModelCard::from_run(run_dir, &run, out_dir, options.base_model_id.as_deref(), languages)?)
    };
    export_model(&run.model, &run.info, &run.pipeline, out_dir)?;
    if let Some(card) = card {
        if let (Some(svg), Some(file)) = (card.heatmap_svg(), &card.heatmap_file) {
            write_atomic(&out_dir.join(file), svg.as_bytes())?;
        }
        write_atomic(&out_dir.join("README.md"), card.render().as_bytes())?;
    }
    Ok(())
}

/// Languages of the run's training corpora, from the corpora themselves (a config without
/// `data.languages` trains on every language they hold). When the data is no longer where the
/// run found it, the config's list stands in, and the card says nothing rather than guess.
fn train_languages(run: &RunModel) -> Vec<String> {
    match load_corpora(&run.config.data) {
        Ok((train, _)) => {
            let mut all: Vec<String> = train.iter().flat_map(|c| c.languages().iter().map(|l| l.to_string())).collect();
            all.sort();
            all.dedup();
            all
        }
        Err(e) => {
            tracing::warn!("model card: cannot read the training corpora ({e}); using data.languages of the config");
            run.config.data.languages.clone()
        }
    }
}
