//! The training configuration: one TOML file, every table and field documented, unknown keys
//! refused, impossible values reported all at once by [`TrainConfig::validate`].
//!
//! The commented reference is `crates/train/configs/reference.toml`; every field below says
//! its default. Command-line overrides use dotted keys (`--set optim.lr=1e-4`), applied to the
//! TOML tree before it is deserialised, so an override is checked exactly like the file.

use std::path::{Path, PathBuf};

use hybrid_ir_data::NegativePolicy;
use hybrid_ir_data::sampler::{SamplerConfig, SamplerKind};
use hybrid_ir_loss::{LossConfig, LossKind, Reduction, ScoreFn};
use hybrid_ir_model::{DeviceSpec, PrefixConfig};
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// A whole training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Master seed: dropout masks of step `s` are seeded from `(seed, s)`. Default 42.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Run directory: checkpoints, `metrics.jsonl`, `loss.svg`, `run.md`, `config.toml`.
    pub output_dir: PathBuf,
    /// The encoder to fine-tune.
    pub model: ModelSection,
    /// Training corpora and the validation split.
    pub data: DataSection,
    /// How batches are built (X-X-mono, X-Y, hybrid with α, …): the data crate's
    /// [`SamplerConfig`]. Required: `kind`.
    pub sampler: SamplerConfig,
    /// Contrastive loss.
    #[serde(default)]
    pub loss: LossSection,
    /// AdamW and the learning-rate schedule.
    #[serde(default)]
    pub optim: OptimSection,
    /// Length of the run, validation, checkpoint and evaluation cadence.
    #[serde(default)]
    pub schedule: ScheduleSection,
    /// Periodic (and final) retrieval evaluation on a LAReQA benchmark.
    #[serde(default)]
    pub eval: EvalSection,
    /// What the run logs besides `metrics.jsonl`: TensorBoard event files. Not part of the
    /// [`fingerprint`](Self::fingerprint) (logging does not change the run: a run may be resumed
    /// with it switched on or off), and left out of `config.toml` while at its default.
    #[serde(default, skip_serializing_if = "LogSection::is_default")]
    pub log: LogSection,
}

fn default_seed() -> u64 {
    42
}

pub use hybrid_ir_model::PrefixStyle;

/// `[model]`: the encoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// Hugging Face model directory (config.json, model.safetensors, tokenizer.json), e.g.
    /// `models/multilingual-e5-small` (fetched by `cargo xtask fetch-models`). Required.
    pub dir: PathBuf,
    /// Prefix style: `model` (default), `e5`, `paper`, `none`, `custom`.
    #[serde(default)]
    pub prefixes: PrefixStyle,
    /// Query prefix when `prefixes = "custom"`.
    #[serde(default)]
    pub query_prefix: Option<String>,
    /// Passage prefix when `prefixes = "custom"`.
    #[serde(default)]
    pub passage_prefix: Option<String>,
    /// Query truncation in tokens, special tokens included. Default 64.
    #[serde(default = "default_query_len")]
    pub query_max_len: usize,
    /// Passage truncation in tokens, special tokens included. Default 128.
    #[serde(default = "default_passage_len")]
    pub passage_max_len: usize,
    /// `cpu` (burn Flex, default), `tch-cpu`, `tch-cuda:N` (LibTorch builds only).
    #[serde(default = "default_device")]
    pub device: String,
    /// Train only the top N transformer layers. The embeddings and the layers below are frozen
    /// (no gradients, no optimizer state, no dropout: a fixed feature extractor). Default (and
    /// 0, as on the command line): all layers and the embeddings train. A number above the
    /// model's layer count is an error.
    #[serde(default)]
    pub trainable_layers: Option<usize>,
    /// `transformer` (default): fine-tune the model of `dir`. `static`: a static-embedding
    /// model (token table + mean pooling) over `dir`'s tokenizer, its table initialised from
    /// `dir`'s word embeddings (`static_init = "model"`, default) or at random (`"random"`);
    /// `dir` may also be a static model directory saved by `hybrid-ir export`.
    #[serde(default)]
    pub backbone: BackboneChoice,
    /// Start of a static table: `model` (default) or `random`.
    #[serde(default)]
    pub static_init: StaticInitChoice,
    /// Freeze the embedding block (no gradients, no dropout) even when all layers train (the
    /// 250k×384 word-embedding matrix of e5 is 96M of its 118M parameters). Default false.
    #[serde(default)]
    pub freeze_embeddings: bool,
    /// Mixed precision: the transformer layers' matrix products on bf16 copies of their
    /// operands, the rest (weights, gradients, LayerNorm, loss) in f32, as PyTorch's bf16
    /// autocast. For GPUs and CPUs with bf16 units; default false (all f32).
    #[serde(default)]
    pub bf16_matmuls: bool,
}

/// `[model] backbone`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum BackboneChoice {
    /// The model directory's own architecture (a transformer, or a saved static model).
    #[default]
    Transformer,
    /// A static-embedding table over the model directory's tokenizer.
    Static,
}

/// `[model] static_init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum StaticInitChoice {
    /// The transformer's word-embedding matrix.
    #[default]
    Model,
    /// Random normal(0, 1) values (seeded by `seed`).
    Random,
}

fn default_query_len() -> usize {
    64
}
fn default_passage_len() -> usize {
    128
}
fn default_device() -> String {
    "cpu".into()
}

/// `[data]`: what is trained on and what is held out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Corpora: `xquad-r`, `mlqa-r` (LAReQA benchmarks from `data_dir`) or paths to user
    /// corpora (JSONL / Parquet / Arrow, see the data crate). Several corpora are mixed one per
    /// batch, in proportion to size. Required, non-empty.
    pub corpora: Vec<String>,
    /// Root holding `xquad-r/` and `mlqa-r/`. Default: `$HYBRID_IR_DATA`, else `../shared/data`
    /// searched upwards.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// Hold out every `holdout_every`-th id (by a stable hash) for the validation loss; 0 = no
    /// validation split. Default 10.
    #[serde(default = "default_holdout")]
    pub holdout_every: u32,
    /// Hard negatives for LAReQA corpora: `none` (default; in-batch negatives only) or
    /// `same-paragraph` (a neighbouring sentence of the answer's paragraph).
    #[serde(default)]
    pub negatives: NegativePolicy,
    /// Remove the hard negatives the corpora carry (a user corpus's `negative` column, e.g. one
    /// written by `hybrid-ir mine`, or `negatives`): train on in-batch negatives only. Default
    /// false.
    #[serde(default)]
    pub drop_negatives: bool,
    /// Keep only these languages (e.g. the paper's 9 training languages); empty = all.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Batching of the fixed validation batches (`mono`, `cross`, `mixed`, `hybrid`); default:
    /// the training sampler's. Set it when comparing samplers, so every run is early-stopped on
    /// the same validation batches.
    #[serde(default)]
    pub val_sampler: Option<SamplerKind>,
    /// α of the validation batches when `val_sampler = "hybrid"`; default: `sampler.alpha`.
    /// Fix it (e.g. 0.5) when comparing samplers, or an α = 1 run validates on mono batches only.
    #[serde(default)]
    pub val_alpha: Option<f64>,
    /// Seed of the validation batches; default: derived from the run's `seed`. Fix it when
    /// comparing training seeds, so every seed is early-stopped on the same validation batches.
    #[serde(default)]
    pub val_seed: Option<u64>,
}

fn default_holdout() -> u32 {
    10
}

/// `[loss]`: the loss crate's [`LossConfig`] plus the cached-step chunk size.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossSection {
    /// `in_batch` (default: DPR / MNRL), `paper` (Eq. 1 literally), `symmetric`.
    pub kind: LossKind,
    /// `cosine` (default, the paper) or `dot`.
    pub score: ScoreFn,
    /// Temperature τ: logits are score / τ. Default 0.05.
    pub temperature: f64,
    /// `mean` (default) or `sum` over queries.
    pub reduction: Reduction,
    /// Mask candidates sharing the query's parallel group. Default true.
    pub mask_same_group: bool,
    /// Rows embedded at a time in the GradCache-style cached step: bounds activation memory,
    /// the gradients are those of the whole batch. Default 32.
    pub chunk_size: usize,
    /// Use the cached (GradCache) step: activation memory of one chunk, one extra forward.
    /// `false` runs one forward with graph over the whole batch (faster when it fits; same
    /// loss, same dropout masks, gradients equal up to float summation order). Default true.
    pub cached: bool,
    /// Chunk each role's rows longest first, so each chunk pads only to similar lengths (with
    /// small chunks, e.g. 8, the encoder computes almost only real tokens). Same loss and
    /// gradients as batch order; only the dropout masks fall on other rows. Default true.
    pub sort_by_length: bool,
}

impl Default for LossSection {
    fn default() -> Self {
        let l = LossConfig::default();
        Self {
            kind: l.kind,
            score: l.score,
            temperature: l.temperature,
            reduction: l.reduction,
            mask_same_group: l.mask_same_group,
            chunk_size: 32,
            cached: true,
            sort_by_length: true,
        }
    }
}

impl LossSection {
    /// The loss crate's config.
    pub fn loss_config(&self) -> LossConfig {
        LossConfig {
            kind: self.kind,
            score: self.score,
            temperature: self.temperature,
            reduction: self.reduction,
            mask_same_group: self.mask_same_group,
        }
    }
}

/// How the learning rate decays after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Decay {
    /// Linear from `lr` to `lr * min_lr_ratio` at the last step (default).
    #[default]
    Linear,
    /// Constant `lr` after warm-up.
    Constant,
}

/// `[optim]`: AdamW and the schedule. Defaults follow the paper (lr 3e-5, weight decay 1e-2)
/// and PyTorch's AdamW (eps 1e-8, betas 0.9/0.999); burn's own AdamW defaults differ.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSection {
    /// Peak learning rate. Default 3e-5.
    pub lr: f64,
    /// Decoupled weight decay. Default 0.01.
    pub weight_decay: f64,
    /// Adam epsilon. Default 1e-8.
    pub eps: f64,
    /// Adam β1. Default 0.9.
    pub beta1: f64,
    /// Adam β2. Default 0.999.
    pub beta2: f64,
    /// Linear warm-up from 0 over this many optimizer steps. Default 0.
    pub warmup_steps: u64,
    /// Decay after warm-up: `linear` (default) or `constant`.
    pub decay: Decay,
    /// Final lr as a fraction of `lr` for linear decay. Default 0.
    pub min_lr_ratio: f64,
    /// Clip the global L2 norm of the gradient (all parameters together, as PyTorch's
    /// `clip_grad_norm_`). Default 1.0; omit or set 0 for none.
    pub grad_clip_norm: Option<f64>,
    /// Micro-batches per optimizer step (gradients averaged). Default 1.
    pub grad_accum: usize,
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            lr: 3e-5,
            weight_decay: 0.01,
            eps: 1e-8,
            beta1: 0.9,
            beta2: 0.999,
            warmup_steps: 0,
            decay: Decay::Linear,
            min_lr_ratio: 0.0,
            grad_clip_norm: Some(1.0),
            grad_accum: 1,
        }
    }
}

/// `[schedule]`: run length and cadence (all counted in optimizer steps).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleSection {
    /// Optimizer steps. Default 1000.
    pub steps: u64,
    /// Validation loss every N steps (and at the last step); 0 = never. Default 100.
    pub val_every: u64,
    /// Fixed validation batches (same batches at every validation). Default 8.
    pub val_batches: usize,
    /// Write the `last` checkpoint every N steps (and at the end); 0 = only at the end. Default 100.
    pub save_every: u64,
    /// Retrieval evaluation (`[eval]`) every N steps; 0 = only at the end if `eval.benchmark`
    /// is set. Default 0.
    pub eval_every: u64,
}

impl Default for ScheduleSection {
    fn default() -> Self {
        Self { steps: 1000, val_every: 100, val_batches: 8, save_every: 100, eval_every: 0 }
    }
}

/// `[eval]`: retrieval evaluation with the metrics crate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalSection {
    /// `xquad-r` or `mlqa-r`; none = no retrieval evaluation. Default none.
    pub benchmark: Option<String>,
    /// Evaluate only these languages; empty = all.
    pub languages: Vec<String>,
    /// Texts per encoder batch. Default 64.
    pub batch_size: usize,
    /// Evaluate the final model (the `best` checkpoint when validation ran) at the end. Default true.
    pub at_end: bool,
}

impl Default for EvalSection {
    fn default() -> Self {
        Self { benchmark: None, languages: Vec::new(), batch_size: 64, at_end: true }
    }
}

/// `[log]`: extra logs of the run (they never change its result).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// Also write every `metrics.jsonl` scalar (train loss, lr, gradient norm, throughput;
    /// validation loss; evaluation mAP and rank distance) as TensorBoard event files in
    /// `<output_dir>/tensorboard/` (`tensorboard --logdir <output_dir>`). Default false;
    /// `hybrid-ir train --tensorboard` sets it.
    pub tensorboard: bool,
}

impl LogSection {
    /// Whether every field has its default.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// A config file as text: a leading byte order mark dropped (editors on Windows write one, and the
/// TOML parser would stop on it), and bytes that are not UTF-8 an error naming line, column and
/// byte offset (`read_to_string` names neither).
fn read_config_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    hybrid_ir_data::text::decode_file_text(bytes)
        .map_err(|e| TrainError::ConfigParse { path: path.into(), message: e.to_string() })
}

impl TrainConfig {
    /// Parses TOML text (unknown keys refused); `origin` names the source in errors.
    pub fn from_toml_str(text: &str, origin: &Path) -> Result<Self> {
        let value: toml::Table =
            toml::from_str(text).map_err(|e| TrainError::ConfigParse { path: origin.into(), message: e.to_string() })?;
        Self::from_table(value, origin)
    }

    /// Reads a TOML file, applies `overrides` (`key.path=value`), validates nothing yet.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = read_config_text(path)?;
        let mut table: toml::Table =
            toml::from_str(&text).map_err(|e| TrainError::ConfigParse { path: path.into(), message: e.to_string() })?;
        for spec in overrides {
            apply_override(&mut table, spec)?;
        }
        Self::from_table(table, path)
    }

    /// Reads a run directory's `config.toml` (or any config file) with no overrides.
    pub fn read(path: &Path) -> Result<Self> {
        Self::from_toml_str(&read_config_text(path)?, path)
    }

    fn from_table(table: toml::Table, origin: &Path) -> Result<Self> {
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| TrainError::ConfigParse { path: origin.into(), message: e.to_string() })
    }

    /// The config as TOML (what the run directory's `config.toml` holds). Fails only for a path
    /// that is not valid UTF-8, which TOML cannot hold.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| TrainError::ConfigParse {
            path: self.output_dir.join("config.toml"),
            message: format!("the config cannot be written as TOML (a path that is not valid UTF-8?): {e}"),
        })
    }

    /// Stable hash of the config: a checkpoint can only be resumed by the config that wrote it.
    /// Left out: `[log]` (what is logged, not the run) and `loss.cached`, a memory setting (the
    /// cached and the plain step give the same loss and dropout masks, gradients equal up to
    /// float summation order), so a run can be resumed with it switched, e.g. over MPI ranks,
    /// which need the cached step.
    pub fn fingerprint(&self) -> Result<String> {
        let mut canonical = Self { log: LogSection::default(), ..self.clone() };
        canonical.loss.cached = true;
        canonical.hash()
    }

    /// Fingerprints that checkpoints of this config written before [`Self::fingerprint`] left
    /// out `loss.cached` carry (those of a config with `loss.cached = false`), so they still
    /// resume.
    pub fn earlier_fingerprints(&self) -> Result<Vec<String>> {
        if self.loss.cached {
            return Ok(Vec::new());
        }
        Self { log: LogSection::default(), ..self.clone() }.hash().map(|f| vec![f])
    }

    fn hash(&self) -> Result<String> {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.to_toml()?.as_bytes());
        Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Parsed device.
    pub fn device_spec(&self) -> Result<DeviceSpec> {
        Ok(self.model.device.parse::<DeviceSpec>()?)
    }

    /// Prefixes to use; `model_default` is what the model directory says.
    pub fn prefixes(&self, model_default: &PrefixConfig) -> PrefixConfig {
        let custom = PrefixConfig {
            query: self.model.query_prefix.clone().unwrap_or_default(),
            passage: self.model.passage_prefix.clone().unwrap_or_default(),
        };
        self.model.prefixes.resolve(model_default, custom)
    }

    /// Checks every value and reports all problems at once, each naming its field.
    pub fn validate(&self) -> Result<()> {
        let mut p = Vec::new();
        let m = &self.model;
        if !m.dir.join("config.json").is_file() && !m.dir.join(hybrid_ir_model::static_embed::STATIC_SETTINGS_FILE).is_file() {
            p.push(format!(
                "model.dir {} is not a model directory (no config.json); run `cargo xtask fetch-models` \
                 or point it at a Hugging Face BERT/XLM-R directory",
                m.dir.display()
            ));
        }
        if m.query_max_len < 2 {
            p.push(format!("model.query_max_len must be >= 2 (room for the special tokens), got {}", m.query_max_len));
        }
        if m.passage_max_len < 2 {
            p.push(format!("model.passage_max_len must be >= 2, got {}", m.passage_max_len));
        }
        if let Err(e) = m.device.parse::<DeviceSpec>() {
            p.push(format!("model.device: {e}"));
        }
        if m.prefixes == PrefixStyle::Custom && m.query_prefix.is_none() && m.passage_prefix.is_none() {
            p.push("model.prefixes = \"custom\" needs model.query_prefix and/or model.passage_prefix".into());
        }
        if m.prefixes != PrefixStyle::Custom && (m.query_prefix.is_some() || m.passage_prefix.is_some()) {
            p.push("model.query_prefix / model.passage_prefix are only used with model.prefixes = \"custom\"".into());
        }
        if m.backbone == BackboneChoice::Static && (m.trainable_layers.is_some_and(|k| k > 0) || m.bf16_matmuls) {
            p.push("model.trainable_layers / model.bf16_matmuls apply to transformers, not to backbone = \"static\"".into());
        }
        if m.backbone == BackboneChoice::Static && m.freeze_embeddings {
            p.push("model.freeze_embeddings with backbone = \"static\" leaves nothing to train".into());
        }
        if m.query_max_len > 1 << 20 || m.passage_max_len > 1 << 20 {
            p.push(format!(
                "model.query_max_len / passage_max_len ({} / {}) are beyond any model's position table",
                m.query_max_len, m.passage_max_len
            ));
        }
        if self.output_dir.as_os_str().is_empty() {
            p.push("output_dir is empty: name a directory for the run".into());
        }
        let d = &self.data;
        if d.corpora.is_empty() {
            p.push("data.corpora is empty: name at least one corpus (xquad-r, mlqa-r or a file)".into());
        }
        if let Some(a) = d.val_alpha
            && !(0.0..=1.0).contains(&a)
        {
            p.push(format!("data.val_alpha must be in [0, 1], got {a}"));
        }
        if d.holdout_every == 1 {
            p.push("data.holdout_every = 1 would hold out every id (use 0 for no split, or >= 2)".into());
        }
        let sp = &self.sampler;
        if !(0.0..=1.0).contains(&sp.alpha) {
            p.push(format!("sampler.alpha must be in [0, 1], got {}", sp.alpha));
        }
        if sp.batch_size < 2 {
            p.push(format!(
                "sampler.batch_size must be >= 2 (an in-batch contrastive loss needs another pair as a negative), got {}",
                sp.batch_size
            ));
        }
        if let Err(e) = sp.validate()
            && p.iter().all(|m| !m.starts_with("sampler."))
        {
            p.push(format!("sampler: {e}"));
        }
        let l = &self.loss;
        if !(l.temperature.is_finite() && l.temperature > 0.0) {
            p.push(format!("loss.temperature must be finite and > 0, got {}", l.temperature));
        }
        if l.chunk_size == 0 {
            p.push("loss.chunk_size must be >= 1".into());
        }
        let o = &self.optim;
        if !(o.lr.is_finite() && o.lr > 0.0) {
            p.push(format!("optim.lr must be finite and > 0, got {}", o.lr));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            p.push(format!("optim.weight_decay must be finite and >= 0, got {}", o.weight_decay));
        }
        if !(o.eps.is_finite() && o.eps > 0.0) {
            p.push(format!("optim.eps must be finite and > 0, got {}", o.eps));
        }
        for (name, b) in [("beta1", o.beta1), ("beta2", o.beta2)] {
            if !(0.0..1.0).contains(&b) {
                p.push(format!("optim.{name} must be in [0, 1), got {b}"));
            }
        }
        if !(0.0..=1.0).contains(&o.min_lr_ratio) {
            p.push(format!("optim.min_lr_ratio must be in [0, 1], got {}", o.min_lr_ratio));
        }
        if let Some(c) = o.grad_clip_norm
            && !(c.is_finite() && c >= 0.0)
        {
            p.push(format!("optim.grad_clip_norm must be finite and >= 0, got {c}"));
        }
        if o.grad_accum == 0 {
            p.push("optim.grad_accum must be >= 1".into());
        }
        let s = &self.schedule;
        if s.steps == 0 {
            p.push("schedule.steps must be >= 1".into());
        }
        if o.warmup_steps > s.steps {
            p.push(format!("optim.warmup_steps ({}) exceeds schedule.steps ({})", o.warmup_steps, s.steps));
        }
        if s.val_every > 0 && d.holdout_every == 0 {
            p.push("schedule.val_every > 0 needs a validation split: set data.holdout_every >= 2".into());
        }
        if s.val_every > 0 && s.val_batches == 0 {
            p.push("schedule.val_batches must be >= 1 when schedule.val_every > 0".into());
        }
        let e = &self.eval;
        if let Some(b) = &e.benchmark
            && hybrid_ir_data::LareqaBenchmark::parse(b).is_err()
        {
            p.push(format!("eval.benchmark must be xquad-r or mlqa-r, got {b:?}"));
        }
        if e.batch_size == 0 {
            p.push("eval.batch_size must be >= 1".into());
        }
        if s.eval_every > 0 && e.benchmark.is_none() {
            p.push("schedule.eval_every > 0 needs eval.benchmark".into());
        }
        if p.is_empty() { Ok(()) } else { Err(TrainError::ConfigInvalid { problems: p }) }
    }
}

/// Applies one `dotted.key=value` override to a TOML table. The value is parsed as a TOML value
/// (`1e-4`, `true`, `"text"`, `[1, 2]`); anything that does not parse is taken as a string.
/// Intermediate tables are created; whether the key exists is checked later by deserialisation.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> Result<()> {
    let err = |message: &str| TrainError::Override { spec: spec.to_string(), message: message.to_string() };
    let (key, raw) = spec.split_once('=').ok_or_else(|| err("expected key=value, e.g. optim.lr=1e-4"))?;
    let key = key.trim();
    let raw = raw.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(err("empty key segment"));
    }
    let value = parse_value(raw);
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().expect("non-empty key");
    let mut cursor = table;
    for part in parts {
        let entry = cursor.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cursor = entry.as_table_mut().ok_or_else(|| err(&format!("`{part}` is not a table")))?;
    }
    cursor.insert(last.to_string(), value);
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&doc) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}
