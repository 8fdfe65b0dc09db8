//! The training loop: sampler → tokenized batch → cached contrastive step → (accumulate) →
//! global-norm clipping → AdamW with the scheduled lr; validation, checkpoints, evaluation.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use hybrid_ir_data::sampler::{BatchSampler, SamplerConfig};
use hybrid_ir_data::{LareqaBenchmark, ParallelCorpus, load_user_corpus, resolve_data_dir};
use hybrid_ir_metrics::LareqaReport;
use hybrid_ir_model::{BertEncoder, LoadOptions, ModelMeta, load_module, load_weights, read_meta, save_module};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checkpoint::{
    CheckpointDir, MODEL_FILE, OPTIMIZER_FILE, Pointer, RngRecord, TrainState, VerifiedCheckpoint, step_dir_name, verify,
};
use crate::config::{DataSection, ModelSection, TrainConfig};
use crate::encode::{TextPipeline, TokenizedBatch};
use crate::error::{Result, TrainError};
use crate::eval::{TokenizedBenchmark, load_benchmark};
use crate::runlog::{MetricsEvent, MetricsLog, git_commit};
use crate::schedule::LrSchedule;
use crate::step::{StepRunner, step_seed};

/// How one invocation runs (not part of the config: does not change the result).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from the run directory's `last` checkpoint instead of starting fresh.
    pub resume: bool,
    /// Stop (saving a checkpoint) once this optimizer step is done, even if the schedule is
    /// longer: `stop_after_step = N/2`, then `resume`, gives the same weights as N straight.
    pub stop_after_step: Option<u64>,
    /// Set from outside (Ctrl-C) to save and stop after the current step.
    pub stop_flag: Option<Arc<AtomicBool>>,
    /// Draw a progress bar on stderr.
    pub progress: bool,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// All `schedule.steps` done.
    Completed,
    /// `stop_after_step` reached.
    StopAfter,
    /// The stop flag was set (Ctrl-C).
    Interrupted,
}

/// What a finished (or stopped) run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Run directory.
    pub run_dir: PathBuf,
    /// Optimizer steps done.
    pub step: u64,
    /// Why the run ended.
    pub stop: StopReason,
    /// Validation losses `(step, loss)` of this run's history (step 0 = before training).
    pub val_history: Vec<(u64, f64)>,
    /// Lowest validation loss and its step.
    pub best_val: Option<(u64, f64)>,
    /// Last training loss.
    pub last_train_loss: Option<f64>,
    /// Final retrieval evaluation, if configured and the run completed.
    pub final_eval: Option<LareqaReport>,
    /// The `last` checkpoint directory.
    pub last_checkpoint: PathBuf,
}

/// Runs (or resumes) a training run described by `config`.
pub fn train(config: &TrainConfig, options: &RunOptions) -> Result<RunSummary> {
    config.validate()?;
    let mut trainer = Trainer::prepare(config, options)?;
    trainer.run(options)
}

/// Training corpora (train part) and held-out parts, loaded and split as `[data]` says.
pub fn load_corpora(data: &DataSection) -> Result<(Vec<Arc<ParallelCorpus>>, Vec<Arc<ParallelCorpus>>)> {
    let mut train = Vec::new();
    let mut held = Vec::new();
    for name in &data.corpora {
        let corpus = match LareqaBenchmark::parse(name) {
            Ok(bench) => {
                let root = resolve_data_dir(data.data_dir.as_deref());
                ParallelCorpus::from_lareqa(&bench.load(&root)?, data.negatives)
            }
            Err(_) => load_user_corpus(Path::new(name))?,
        };
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

/// Applies `[model]`'s training settings: freezes the embeddings and all but the top
/// `trainable_layers` layers, and sets the matmul precision (`bf16_matmuls`).
pub fn configure_model(model: BertEncoder, section: &ModelSection) -> BertEncoder {
    let BertEncoder { embeddings, mut encoder, pooler, bf16_matmuls: _ } = model;
    let n = encoder.layer.len();
    let trainable = section.trainable_layers.unwrap_or(n).min(n);
    // `freeze()` (not just `no_grad()`): frozen parts also run without dropout, a deterministic
    // feature extractor, which is faster (burn Flex draws dropout masks on one thread) and lets
    // evaluation cache their outputs across models that share them.
    let embeddings = if section.freeze_embeddings || trainable < n { embeddings.freeze() } else { embeddings };
    encoder.layer =
        std::mem::take(&mut encoder.layer).into_iter().enumerate().map(|(i, l)| if i < n - trainable { l.freeze() } else { l }).collect();
    BertEncoder { embeddings, encoder, pooler, bf16_matmuls: section.bf16_matmuls }
}

/// `(all parameters, parameters that train)`.
pub fn count_parameters(model: &BertEncoder) -> (usize, usize) {
    struct Count(usize, usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            let n = t.shape().num_elements();
            self.0 += n;
            if t.is_require_grad() {
                self.1 += n;
            }
        }
    }
    let mut c = Count(0, 0);
    model.visit(&mut c);
    (c.0, c.1)
}

struct Trainer {
    config: TrainConfig,
    run_dir: PathBuf,
    meta: ModelMeta,
    plain_device: Device,
    pipeline: TextPipeline,
    /// `None` only while the optimizer owns it inside a step (so tensors can update in place).
    model: Option<BertEncoder>,
    runner: StepRunner,
    sampler: Box<dyn BatchSampler>,
    val_batches: Vec<TokenizedBatch>,
    eval_bench: Option<TokenizedBenchmark>,
    schedule: LrSchedule,
    checkpoints: CheckpointDir,
    log: MetricsLog,
    step: u64,
    examples_seen: u64,
    best_val: Option<(u64, f64)>,
    last_saved: Option<u64>,
    lr: f64,
}

impl Trainer {
    fn model(&self) -> &BertEncoder {
        self.model.as_ref().expect("model present between steps")
    }

    fn prepare(config: &TrainConfig, options: &RunOptions) -> Result<Self> {
        let run_dir = config.output_dir.clone();
        std::fs::create_dir_all(&run_dir).map_err(|e| TrainError::io(&run_dir, e))?;
        let checkpoints = CheckpointDir::of_run(&run_dir);
        let resume_from: Option<VerifiedCheckpoint> = if options.resume {
            let dir = checkpoints.resolve(Pointer::Last)?.ok_or_else(|| {
                TrainError::checkpoint(checkpoints.root().join("last"), "nothing to resume: the run has no checkpoint yet")
            })?;
            let ckpt = verify(&dir)?;
            if ckpt.state.config_fingerprint != config.fingerprint() {
                return Err(TrainError::checkpoint(
                    &dir,
                    format!(
                        "was written with a different config (fingerprint {} vs {}); resume with the run's own \
                         config.toml ({})",
                        ckpt.state.config_fingerprint,
                        config.fingerprint(),
                        run_dir.join("config.toml").display()
                    ),
                ));
            }
            Some(ckpt)
        } else {
            if checkpoints.resolve(Pointer::Last)?.is_some() {
                return Err(TrainError::Other(format!(
                    "{} already holds a run; pass --resume to continue it or choose another output_dir",
                    run_dir.display()
                )));
            }
            None
        };
        crate::checkpoint::write_atomic(&run_dir.join("config.toml"), config.to_toml().as_bytes())?;

        let spec = config.device_spec()?;
        let plain_device = spec.device();
        let train_device = spec.autodiff_device();
        let meta = read_meta(&config.model.dir, &LoadOptions::default())?;
        let prefixes = config.prefixes(&meta.prefixes);
        let pipeline = TextPipeline::new(&meta, prefixes, config.model.query_max_len, config.model.passage_max_len)?;

        let (train_corpora, held_corpora) = load_corpora(&config.data)?;
        for c in &train_corpora {
            let s = c.stats();
            tracing::info!(corpus = %s.corpus, ids = s.ids, examples = s.examples, languages = %s.languages.join(","), "training corpus");
        }
        let mut sampler = config.sampler.build_multi(train_corpora)?;
        tracing::info!("sampler: {}", sampler.describe());

        let val_batches = if config.schedule.val_every > 0 && !held_corpora.is_empty() {
            let mut val_cfg: SamplerConfig = config.sampler.clone();
            if let Some(kind) = config.data.val_sampler {
                val_cfg.kind = kind;
            }
            if let Some(alpha) = config.data.val_alpha {
                val_cfg.alpha = alpha;
            }
            val_cfg.seed = step_seed(config.seed, u64::MAX, 0);
            let mut val_sampler = val_cfg.build_multi(held_corpora)?;
            (0..config.schedule.val_batches)
                .map(|_| Ok(pipeline.tokenize_batch(&val_sampler.next_batch())?.with_chunk_order(config.loss.sort_by_length)))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };

        let eval_bench = match &config.eval.benchmark {
            Some(name) => {
                let bench = load_benchmark(name, config.data.data_dir.as_deref(), &config.eval.languages)?;
                Some(TokenizedBenchmark::new(bench, &pipeline)?)
            }
            None => None,
        };

        let mut runner = StepRunner::new(config)?;
        let schedule = LrSchedule::new(&config.optim, config.schedule.steps);
        let (model, step, examples_seen, best_val, last_saved, lr) = match &resume_from {
            Some(ckpt) => {
                let model = configure_model(load_module(&meta, &ckpt.model_path(), &train_device)?, &config.model);
                runner.optim = runner.optim.load(ckpt.optimizer_path()).map_err(|e| {
                    TrainError::checkpoint(ckpt.optimizer_path(), format!("cannot load optimizer state: {e}"))
                })?;
                sampler.restore(&ckpt.state.sampler)?;
                tracing::info!(step = ckpt.state.step, dir = %ckpt.dir.display(), "resuming");
                let s = &ckpt.state;
                (model, s.step, s.examples_seen, s.best_val, Some(s.step), s.lr)
            }
            None => {
                let (encoder, report) = load_weights(&meta, &train_device)?;
                tracing::info!(model = %meta.name, tensors = report.applied, "loaded base model");
                (configure_model(encoder, &config.model), 0, 0, None, None, 0.0)
            }
        };
        let (total, trainable) = count_parameters(&model);
        tracing::info!(total, trainable, "parameters");
        let log = MetricsLog::open(&run_dir, resume_from.as_ref().map(|c| c.state.step))?;
        Ok(Self {
            config: config.clone(),
            run_dir,
            meta,
            plain_device,
            pipeline,
            model: Some(model),
            runner,
            sampler,
            val_batches,
            eval_bench,
            schedule,
            checkpoints,
            log,
            step,
            examples_seen,
            best_val,
            last_saved,
            lr,
        })
    }

    fn validation_loss(&self) -> Result<f64> {
        let model = self.model().valid();
        let mut sum = 0.0;
        for b in &self.val_batches {
            // Plain-device (`valid()`) model: no dropout, no graph.
            sum += self.runner.cached.evaluate(&model, b, Some(&b.group_keys))?;
        }
        Ok(sum / self.val_batches.len().max(1) as f64)
    }

    /// One optimizer step. Returns `(mean loss, grad norm, batch kinds, pairs)`.
    fn train_step(&mut self) -> Result<(f64, f64, String, usize)> {
        let step = self.step + 1;
        let mut kinds: Vec<String> = Vec::new();
        let mut batches = Vec::with_capacity(self.config.optim.grad_accum);
        for _ in 0..self.config.optim.grad_accum {
            let batch = self.sampler.next_batch();
            kinds.push(batch.kind.label().to_string());
            batches.push(self.pipeline.tokenize_batch(&batch)?.with_chunk_order(self.config.loss.sort_by_length));
        }
        let pairs = batches.iter().map(TokenizedBatch::len).sum();
        let out = self.runner.gradients(self.model(), step, &batches)?;
        if let Some((micro, &value)) = out.losses.iter().enumerate().find(|(_, l)| !l.is_finite()) {
            return Err(TrainError::NonFiniteLoss {
                step,
                value,
                batch_kind: kinds[micro].clone(),
                last_good_step: self.last_saved,
            });
        }
        if !out.norm.is_finite() {
            return Err(TrainError::NonFiniteGradient { step, last_good_step: self.last_saved });
        }
        let lr = self.schedule.lr_at(step);
        let model = self.model.take().expect("model present between steps");
        self.model = Some(self.runner.apply(model, out.grads, lr));
        self.lr = lr;
        self.step = step;
        self.examples_seen += pairs as u64;
        let mut unique: Vec<String> = Vec::new();
        for kind in kinds {
            if !unique.contains(&kind) {
                unique.push(kind);
            }
        }
        let loss = out.losses.iter().sum::<f64>() / out.losses.len() as f64;
        Ok((loss, out.norm, unique.join("+"), pairs))
    }

    fn state(&self) -> TrainState {
        TrainState {
            format_version: crate::checkpoint::FORMAT_VERSION,
            step: self.step,
            examples_seen: self.examples_seen,
            lr: self.lr,
            scheduler: self.schedule,
            sampler: self.sampler.state(),
            rng: RngRecord {
                scheme: "dropout seed of micro-batch m of step s = splitmix(seed, s, m); chunk seeds from it (loss::chunk_seed)"
                    .into(),
                seed: self.config.seed,
                next_step_seed: step_seed(self.config.seed, self.step + 1, 0),
            },
            best_val: self.best_val,
            config_fingerprint: self.config.fingerprint(),
            model_name: self.meta.name.clone(),
        }
    }

    fn save(&mut self, is_best: bool) -> Result<PathBuf> {
        let state = self.state();
        let model = self.model();
        let optim = &self.runner.optim;
        let dir = self.checkpoints.save(&state, |tmp| {
            save_module(model, &tmp.join(MODEL_FILE))?;
            optim
                .save(tmp.join(OPTIMIZER_FILE))
                .map_err(|e| TrainError::checkpoint(tmp.join(OPTIMIZER_FILE), format!("cannot write: {e}")))
        })?;
        let name = step_dir_name(self.step);
        self.checkpoints.set_pointer(Pointer::Last, &name)?;
        if is_best {
            self.checkpoints.set_pointer(Pointer::Best, &name)?;
        }
        self.checkpoints.prune()?;
        self.last_saved = Some(self.step);
        tracing::debug!(step = self.step, best = is_best, dir = %dir.display(), "checkpoint saved");
        Ok(dir)
    }

    fn validate_now(&mut self) -> Result<bool> {
        let loss = self.validation_loss()?;
        if !loss.is_finite() {
            return Err(TrainError::NonFiniteLoss {
                step: self.step,
                value: loss,
                batch_kind: "validation".into(),
                last_good_step: self.last_saved,
            });
        }
        let best = self.best_val.is_none_or(|(_, b)| loss < b);
        if best {
            self.best_val = Some((self.step, loss));
        }
        tracing::info!(step = self.step, val_loss = loss, best, "validation");
        self.log.push(MetricsEvent::Val { step: self.step, loss, best })?;
        Ok(best)
    }

    fn evaluate(&self, model: &BertEncoder) -> Result<Option<LareqaReport>> {
        let Some(bench) = &self.eval_bench else { return Ok(None) };
        let report = bench.evaluate(model, &self.pipeline, self.config.eval.batch_size, |_| {})?;
        Ok(Some(report))
    }

    fn log_eval(&mut self, report: &LareqaReport) -> Result<()> {
        let s = &report.settings;
        tracing::info!(
            step = self.step,
            mono = s.mono.map,
            cross = s.cross.map,
            multi = s.multi.map,
            rank_distance = s.multi.rank_distance,
            "retrieval evaluation on {}",
            report.benchmark
        );
        self.log.push(MetricsEvent::Eval {
            step: self.step,
            benchmark: report.benchmark.clone(),
            map_mono: s.mono.map,
            map_cross: s.cross.map,
            map_multi: s.multi.map,
            rank_distance: s.multi.rank_distance,
        })
    }

    fn run(&mut self, options: &RunOptions) -> Result<RunSummary> {
        let total = self.config.schedule.steps;
        let sched = self.config.schedule;
        if self.step == 0 && !self.val_batches.is_empty() {
            self.validate_now()?;
            self.best_val = self.best_val.map(|(_, l)| (0, l));
        }
        let bar = if options.progress { ProgressBar::new(total) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] step {pos}/{len} {msg} ETA {eta_precise}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_position(self.step);
        let mut last_loss = None;
        let mut stop = StopReason::Completed;
        while self.step < total {
            let started = Instant::now();
            let (loss, norm, kind, pairs) = self.train_step()?;
            let rate = pairs as f64 / started.elapsed().as_secs_f64().max(1e-9);
            last_loss = Some(loss);
            self.log.push(MetricsEvent::Train {
                step: self.step,
                loss,
                lr: self.lr,
                grad_norm: norm,
                batch_kind: kind.clone(),
                examples_per_s: rate,
            })?;
            bar.set_position(self.step);
            bar.set_message(format!("loss {loss:.4} ({kind}) | {rate:.1} ex/s"));
            tracing::debug!(step = self.step, loss, lr = self.lr, grad_norm = norm, kind = %kind, "step");

            let last = self.step == total;
            let mut saved = false;
            if !self.val_batches.is_empty() && sched.val_every > 0 && (self.step % sched.val_every == 0 || last) {
                let best = self.validate_now()?;
                if best {
                    self.save(true)?;
                    saved = true;
                }
            }
            if sched.eval_every > 0 && self.step % sched.eval_every == 0 && !last {
                let model = self.model().valid();
                if let Some(report) = self.evaluate(&model)? {
                    self.log_eval(&report)?;
                }
            }
            let interrupted = options.stop_flag.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
            let stop_after = options.stop_after_step.is_some_and(|s| self.step >= s);
            let periodic = sched.save_every > 0 && self.step % sched.save_every == 0;
            if !saved && (last || interrupted || stop_after || periodic) {
                self.save(false)?;
            }
            if interrupted {
                stop = StopReason::Interrupted;
                tracing::warn!(step = self.step, "interrupted: checkpoint saved, exiting");
                break;
            }
            if stop_after && !last {
                stop = StopReason::StopAfter;
                break;
            }
        }
        bar.finish_and_clear();
        if self.last_saved != Some(self.step) {
            // Resumed at the final step, or nothing saved yet: make `last` current.
            self.save(false)?;
        }

        let mut final_eval = None;
        if stop == StopReason::Completed && self.config.eval.at_end && self.eval_bench.is_some() {
            let model = match self.checkpoints.resolve(Pointer::Best)? {
                Some(dir) => load_module(&self.meta, &verify(&dir)?.model_path(), &self.plain_device)?,
                None => self.model().valid(),
            };
            final_eval = self.evaluate(&model)?;
            if let Some(report) = &final_eval {
                self.log_eval(report)?;
                let path = self.run_dir.join("final_eval.json");
                let json = serde_json::to_vec_pretty(report).expect("report serialises");
                crate::checkpoint::write_atomic(&path, &json)?;
            }
        }
        self.log.write_svg(&self.run_dir.join("loss.svg"))?;
        let summary = RunSummary {
            run_dir: self.run_dir.clone(),
            step: self.step,
            stop,
            val_history: self
                .log
                .events()
                .iter()
                .filter_map(|e| match e {
                    MetricsEvent::Val { step, loss, .. } => Some((*step, *loss)),
                    _ => None,
                })
                .collect(),
            best_val: self.best_val,
            last_train_loss: last_loss,
            final_eval,
            last_checkpoint: self.checkpoints.resolve(Pointer::Last)?.expect("saved above"),
        };
        self.write_run_card(&summary)?;
        Ok(summary)
    }

    fn write_run_card(&self, summary: &RunSummary) -> Result<()> {
        let (total, trainable) = count_parameters(self.model());
        let mut s = String::new();
        s += &format!("# Run card: {}\n\n", self.run_dir.display());
        s += &format!("- commit: `{}`\n", git_commit());
        s += &format!("- model: `{}` ({} parameters, {} trained)\n", self.meta.source_dir.display(), total, trainable);
        s += &format!("- prefixes: query {:?}, passage {:?}\n", self.pipeline.prefixes.query, self.pipeline.prefixes.passage);
        s += &format!("- data: {} (languages: {})\n", self.config.data.corpora.join(", "), if self.config.data.languages.is_empty() { "all".to_string() } else { self.config.data.languages.join(", ") });
        s += &format!("- sampler: {}\n", self.sampler.describe());
        s += &format!("- steps: {} of {} ({:?}); pairs seen: {}\n", summary.step, self.config.schedule.steps, summary.stop, self.examples_seen);
        if let Some(l) = summary.last_train_loss {
            s += &format!("- last training loss: {l:.4}\n");
        }
        if let Some((first_step, first)) = summary.val_history.first() {
            s += &format!("- validation loss: {first:.4} at step {first_step}");
            if let Some((b_step, b)) = summary.best_val {
                s += &format!(", best {b:.4} at step {b_step}");
            }
            s += "\n";
        }
        if let Some(r) = &summary.final_eval {
            let m = &r.settings;
            s += &format!(
                "- final evaluation ({}, {} languages, best checkpoint): mAP mono {:.4}, cross {:.4}, multi {:.4}; rank distance {:.1}\n",
                r.benchmark,
                r.languages.len(),
                m.mono.map,
                m.cross.map,
                m.multi.map,
                m.multi.rank_distance.unwrap_or(f64::NAN)
            );
        }
        s += "\nFiles: `config.toml` (resolved config), `metrics.jsonl`, `loss.svg`, `checkpoints/{last,best}`";
        s += if summary.final_eval.is_some() { ", `final_eval.json`.\n" } else { ".\n" };
        s += &format!("\n## Config\n\n```toml\n{}```\n", self.config.to_toml());
        crate::checkpoint::write_atomic(&self.run_dir.join("run.md"), s.as_bytes())
    }
}

/// Installs a Ctrl-C handler that sets the returned flag (call once per process). A second
/// Ctrl-C while the flag is already set exits immediately.
pub fn install_ctrlc_handler() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond Ctrl-C: exiting without saving");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: finishing the current step, saving a checkpoint, then exiting (Ctrl-C again to abort)");
    })
    .map_err(|e| TrainError::Other(format!("cannot install the Ctrl-C handler: {e}")))?;
    Ok(flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_seeds_differ_by_step_and_micro_batch() {
        let a = step_seed(1, 1, 0);
        assert_ne!(a, step_seed(1, 2, 0));
        assert_ne!(a, step_seed(1, 1, 1));
        assert_ne!(a, step_seed(2, 1, 0));
        assert_eq!(a, step_seed(1, 1, 0));
    }
}
