//! The TOML layer over [`Trainer`]: a [`TrainConfig`] becomes a backbone, a text pipeline,
//! training and validation samplers, a loss, settings and an evaluation benchmark, handed to the
//! one trainer. Nothing here trains; it only builds parts.

use std::sync::Arc;

use burn::tensor::Device;
use hybrid_ir_data::sampler::{BatchSampler, SamplerConfig};
use hybrid_ir_data::{ParallelCorpus, load_corpus, resolve_data_dir};
use hybrid_ir_eval::{TokenizedBenchmark, load_benchmark};
use hybrid_ir_model::{AnyEncoder, LoadOptions, ModelInfo, TextPipeline};

use crate::config::{BackboneChoice, DataSection, StaticInitChoice, TrainConfig};
use crate::error::{Result, TrainError};
use crate::step::step_seed;
use crate::trainer::{RunOptions, RunRecord, RunSummary, Trainer, TrainerBuilder, TrainerSettings};

/// Runs (or resumes) a training run described by `config`.
pub fn train(config: &TrainConfig, options: &RunOptions) -> Result<RunSummary> {
    config.validate()?;
    builder_from_config(config)?.build(options)?.run(options)
}

/// The model info `config` trains: the model directory as it is, or a static table over its
/// tokenizer (`[model] backbone = "static"`).
pub fn model_info(config: &TrainConfig) -> Result<ModelInfo> {
    let info = ModelInfo::read(&config.model.dir, &LoadOptions::default())?;
    Ok(match (config.model.backbone, info.bert()) {
        (BackboneChoice::Static, Some(meta)) => {
            ModelInfo::static_from(meta, true, config.model.static_init == StaticInitChoice::Random)
        }
        _ => info,
    })
}

/// The text pipeline of `config`: its prefixes and truncation over `info`'s tokenizer.
pub fn pipeline(config: &TrainConfig, info: &ModelInfo) -> Result<TextPipeline> {
    Ok(TextPipeline::new(info, config.prefixes(&info.prefixes), config.model.query_max_len, config.model.passage_max_len)?)
}

/// Checks the `[model]` settings that depend on the model itself (e.g. its layer count).
pub fn check_model_settings(config: &TrainConfig, info: &ModelInfo) -> Result<()> {
    if let (Some(k), Some(meta)) = (config.model.trainable_layers, info.bert())
        && k > meta.config.num_hidden_layers
    {
        return Err(TrainError::ConfigInvalid {
            problems: vec![format!(
                "model.trainable_layers = {k} but {} has only {} layers (0 or omitted: all)",
                info.name, meta.config.num_hidden_layers
            )],
        });
    }
    Ok(())
}

/// The start model of `config` on `device`, frozen and set up as `[model]` says.
pub fn start_model(config: &TrainConfig, info: &ModelInfo, device: &Device) -> Result<AnyEncoder> {
    check_model_settings(config, info)?;
    // A random static table is drawn from the backend RNG: seed it so the run is reproducible.
    device.seed(step_seed(config.seed, u64::MAX - 1, 0));
    let m = &config.model;
    Ok(info.load(device)?.with_training_settings(m.trainable_layers, m.freeze_embeddings, m.bf16_matmuls))
}

/// Everything [`train`] hands to the trainer, assembled from `config` (not yet built: add parts
/// or change settings before [`TrainerBuilder::build`]).
pub fn builder_from_config(config: &TrainConfig) -> Result<TrainerBuilder<AnyEncoder>> {
    let spec = config.device_spec()?;
    let plain_device = spec.try_device()?;
    let train_device = plain_device.clone().autodiff();
    let info = model_info(config)?;
    let pipeline = pipeline(config, &info)?;

    let (train_corpora, held_corpora) = load_corpora(&config.data)?;
    for c in &train_corpora {
        let s = c.stats();
        tracing::info!(corpus = %s.corpus, ids = s.ids, examples = s.examples, languages = %s.languages.join(","), "training corpus");
    }
    let sampler = config.sampler.build_multi(train_corpora)?;
    let loss = config.loss.loss_config().build()?;
    let model = start_model(config, &info, &train_device)?;
    tracing::info!(model = %info.name, backbone = info.kind(), "loaded start model");

    let settings = TrainerSettings {
        seed: config.seed,
        optim: config.optim,
        schedule: config.schedule,
        step: (&config.loss).into(),
        eval_batch_size: config.eval.batch_size,
        eval_at_end: config.eval.at_end,
    };
    let data = format!(
        "{} (languages: {})",
        config.data.corpora.join(", "),
        if config.data.languages.is_empty() { "all".to_string() } else { config.data.languages.join(", ") }
    );
    let mut builder = Trainer::builder(model, pipeline.clone(), sampler, config.output_dir.clone())
        .loss(loss)
        .device(plain_device)
        .settings(settings)
        .tensorboard(config.log.tensorboard)
        .record(RunRecord {
            config_toml: Some(config.to_toml()?),
            fingerprint: Some(config.fingerprint()?),
            also_resumes: config.earlier_fingerprints()?,
            model: info.source_dir.display().to_string(),
            data,
        });
    if config.schedule.val_every > 0 && !held_corpora.is_empty() {
        builder = builder.validation(validation_sampler(config, held_corpora)?, config.schedule.val_batches);
    }
    if let Some(name) = &config.eval.benchmark {
        let bench = load_benchmark(name, config.data.data_dir.as_deref(), &config.eval.languages)?;
        builder = builder.evaluation(TokenizedBenchmark::new(bench, &pipeline)?);
    }
    Ok(builder)
}

/// The sampler of the fixed validation batches: the training sampler's config with
/// `data.val_sampler` / `data.val_alpha` and a seed of its own (`data.val_seed`, else one derived
/// from the run's seed).
fn validation_sampler(config: &TrainConfig, held: Vec<Arc<ParallelCorpus>>) -> Result<Box<dyn BatchSampler>> {
    let mut val_cfg: SamplerConfig = config.sampler.clone();
    if let Some(kind) = config.data.val_sampler {
        val_cfg.kind = kind;
    }
    if let Some(alpha) = config.data.val_alpha {
        val_cfg.alpha = alpha;
    }
    val_cfg.seed = config.data.val_seed.unwrap_or_else(|| step_seed(config.seed, u64::MAX, 0));
    Ok(val_cfg.build_multi(held)?)
}

/// Training corpora (train part) and held-out parts, loaded and split as `[data]` says.
pub fn load_corpora(data: &DataSection) -> Result<(Vec<Arc<ParallelCorpus>>, Vec<Arc<ParallelCorpus>>)> {
    let mut train = Vec::new();
    let mut held = Vec::new();
    for name in &data.corpora {
        let corpus = load_corpus(name, &resolve_data_dir(data.data_dir.as_deref()), data.negatives)?;
        let corpus = if data.drop_negatives { corpus.without_negatives() } else { corpus };
        let corpus = if data.languages.is_empty() {
            corpus
        } else {
            let keep: Vec<&str> =
                data.languages.iter().map(String::as_str).filter(|l| corpus.language_index(l).is_some()).collect();
            if keep.is_empty() {
                return Err(TrainError::Other(format!(
                    "corpus {name} has none of data.languages {:?} (it has {})",
                    data.languages,
                    corpus.languages().join(", ")
                )));
            }
            corpus.restrict_languages(&keep)?
        };
        if data.holdout_every >= 2 {
            let (t, h) = corpus.split_holdout(data.holdout_every);
            train.push(Arc::new(t));
            held.push(Arc::new(h));
        } else {
            train.push(Arc::new(corpus));
        }
    }
    Ok((train, held))
}
