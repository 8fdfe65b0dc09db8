//! The one trainer: sampler → tokenized batch → cached contrastive step → (accumulate) →
//! global-norm clipping → AdamW with the scheduled lr; validation, checkpoints, evaluation.
//!
//! [`Trainer`] takes parts, not a config: any [`Backbone`], any [`BatchSampler`] for training
//! and for validation, any [`ContrastiveLoss`], a burn [`Device`] and [`TrainerSettings`]
//! (optimizer, schedule, step and seed), assembled with [`Trainer::builder`].
//! [`crate::train`] is the thin layer that builds these parts from a TOML config.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::tensor::Device;
use hybrid_ir_collective::{Collective, SingleProcess};
use hybrid_ir_data::sampler::BatchSampler;
use hybrid_ir_eval::TokenizedBenchmark;
use hybrid_ir_loss::ContrastiveLoss;
use hybrid_ir_metrics::LareqaReport;
use hybrid_ir_model::{Backbone, TextPipeline, count_parameters, load_module_into, save_module};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    CheckpointDir, MODEL_FILE, OPTIMIZER_FILE, Pointer, RngRecord, RunDirLock, TrainState, VerifiedCheckpoint, step_dir_name,
    verify,
};
use crate::config::{OptimSection, ScheduleSection};
use crate::encode::TokenizedBatch;
use crate::error::{Result, TrainError};
use crate::progress::{Progress, ProgressMode};
use crate::runlog::{MetricsEvent, MetricsLog, git_commit};
use crate::schedule::LrSchedule;
use crate::step::{StepRunner, StepSettings, step_seed};

/// How one invocation runs (not part of the config: does not change the result).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from the run directory's `last` checkpoint instead of starting fresh.
    pub resume: bool,
    /// With `resume`: when `last` is corrupt, continue from the newest checkpoint that verifies
    /// (named in the log). Without it, a corrupt `last` is an error that names that checkpoint.
    pub resume_intact: bool,
    /// Stop (saving a checkpoint) once this optimizer step is done, even if the schedule is
    /// longer: `stop_after_step = N/2`, then `resume`, gives the same weights as N straight.
    pub stop_after_step: Option<u64>,
    /// Set from outside (Ctrl-C) to save and stop after the current step.
    pub stop_flag: Option<Arc<AtomicBool>>,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// The ranks of a data-parallel run (default: one process). Every rank builds the same
    /// trainer; each embeds its slice of every global batch, the gradients are summed, and only
    /// rank 0 writes (checkpoints, logs, run card). See docs/distributed.md.
    pub collective: Option<Arc<dyn Collective>>,
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

/// The plain-value settings of a run: optimizer, schedule, how a step computes the loss, the
/// seed and evaluation cadence. A TOML config's `[optim]`, `[schedule]`, `[loss]` (chunking)
/// and `seed` become these; library users build them as typed values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerSettings {
    /// Master seed: dropout masks of step `s`, micro-batch `m` are seeded from `(seed, s, m)`.
    pub seed: u64,
    /// AdamW, warm-up and decay, clipping, accumulation.
    pub optim: OptimSection,
    /// Steps, validation / checkpoint / evaluation cadence, validation batches.
    pub schedule: ScheduleSection,
    /// Chunk size, cached or not, length-sorted chunks.
    pub step: StepSettings,
    /// Texts per encoder batch when evaluating.
    pub eval_batch_size: usize,
    /// Evaluate the final model (the `best` checkpoint when validation ran) at the end.
    pub eval_at_end: bool,
}

impl Default for TrainerSettings {
    fn default() -> Self {
        Self {
            seed: 42,
            optim: OptimSection::default(),
            schedule: ScheduleSection::default(),
            step: StepSettings::default(),
            eval_batch_size: 64,
            eval_at_end: true,
        }
    }
}

/// What a run records about where its parts came from (the run card, `config.toml`, the
/// checkpoint fingerprint). [`crate::train`] fills it from the TOML config.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    /// The resolved config, written to `config.toml` and the run card.
    pub config_toml: Option<String>,
    /// Fingerprint a checkpoint must carry to be resumed by this run (default: a hash of the
    /// settings and the parts' descriptions).
    pub fingerprint: Option<String>,
    /// Other fingerprints a checkpoint may carry and still be resumed: what an earlier release
    /// wrote for the same config ([`crate::TrainConfig::earlier_fingerprints`]).
    pub also_resumes: Vec<String>,
    /// Where the model came from (run card).
    pub model: String,
    /// What the data is (run card).
    pub data: String,
}

/// Assembles a [`Trainer`] from parts; see [`Trainer::builder`].
pub struct TrainerBuilder<B: Backbone> {
    model: B,
    pipeline: TextPipeline,
    sampler: Box<dyn BatchSampler>,
    output_dir: PathBuf,
    loss: Option<Box<dyn ContrastiveLoss>>,
    validation: Option<(Box<dyn BatchSampler>, usize)>,
    device: Option<Device>,
    settings: TrainerSettings,
    evaluation: Option<TokenizedBenchmark>,
    record: RunRecord,
    tensorboard: bool,
}

impl<B: Backbone> TrainerBuilder<B> {
    /// The contrastive loss (default: in-batch InfoNCE on cosine, τ = 0.05, parallel-id masking).
    pub fn loss(mut self, loss: Box<dyn ContrastiveLoss>) -> Self {
        self.loss = Some(loss);
        self
    }

    /// Validation: `batches` fixed batches drawn once from `sampler` (the same batches at every
    /// validation; the lowest loss marks the `best` checkpoint). Cadence: `schedule.val_every`.
    pub fn validation(mut self, sampler: Box<dyn BatchSampler>, batches: usize) -> Self {
        self.validation = Some((sampler, batches));
        self
    }

    /// The plain device to train on (the trainer uses its autodiff form). Default: the device
    /// the model is on.
    pub fn device(mut self, device: Device) -> Self {
        self.device = Some(device);
        self
    }

    /// All plain-value settings at once.
    pub fn settings(mut self, settings: TrainerSettings) -> Self {
        self.settings = settings;
        self
    }

    /// AdamW and the learning-rate schedule.
    pub fn optim(mut self, optim: OptimSection) -> Self {
        self.settings.optim = optim;
        self
    }

    /// Run length and cadence.
    pub fn schedule(mut self, schedule: ScheduleSection) -> Self {
        self.settings.schedule = schedule;
        self
    }

    /// Master seed (dropout masks).
    pub fn seed(mut self, seed: u64) -> Self {
        self.settings.seed = seed;
        self
    }

    /// Retrieval evaluation on a tokenized benchmark (every `schedule.eval_every` steps and at
    /// the end).
    pub fn evaluation(mut self, benchmark: TokenizedBenchmark) -> Self {
        self.evaluation = Some(benchmark);
        self
    }

    /// What the run card and checkpoints record about the parts.
    pub fn record(mut self, record: RunRecord) -> Self {
        self.record = record;
        self
    }

    /// Also write the `metrics.jsonl` scalars as TensorBoard event files in
    /// `<output_dir>/tensorboard/` (default false; `[log] tensorboard` in a config). Not part of
    /// the fingerprint: a run can be resumed with it on or off.
    pub fn tensorboard(mut self, on: bool) -> Self {
        self.tensorboard = on;
        self
    }

    /// Checks the settings, prepares the run directory and, with `options.resume`, restores the
    /// model, optimizer and sampler from the `last` checkpoint.
    pub fn build(self, options: &RunOptions) -> Result<Trainer<B>> {
        Trainer::prepare(self, options)
    }
}

/// The training loop over any backbone, sampler and loss.
pub struct Trainer<B: Backbone> {
    /// Held for the trainer's lifetime: one writer per run directory (rank 0 only).
    _lock: Option<RunDirLock>,
    /// The ranks the steps are split over.
    collective: Arc<dyn Collective>,
    settings: TrainerSettings,
    record: RunRecord,
    fingerprint: String,
    run_dir: PathBuf,
    pipeline: TextPipeline,
    /// `None` only while the optimizer owns it inside a step (so tensors can update in place).
    model: Option<B>,
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

impl<B: Backbone> Trainer<B> {
    /// Starts assembling a run: `model` (on any device; frozen parameters stay frozen) read
    /// through `pipeline`, trained on batches of `sampler`, writing to `output_dir`.
    pub fn builder(
        model: B,
        pipeline: TextPipeline,
        sampler: Box<dyn BatchSampler>,
        output_dir: impl Into<PathBuf>,
    ) -> TrainerBuilder<B> {
        TrainerBuilder {
            model,
            pipeline,
            sampler,
            output_dir: output_dir.into(),
            loss: None,
            validation: None,
            device: None,
            settings: TrainerSettings::default(),
            evaluation: None,
            record: RunRecord::default(),
            tensorboard: false,
        }
    }

    /// The model as it is now (on the training device).
    pub fn model(&self) -> &B {
        self.model.as_ref().expect("model present between steps")
    }

    /// Optimizer steps done.
    pub fn step(&self) -> u64 {
        self.step
    }

    fn prepare(parts: TrainerBuilder<B>, options: &RunOptions) -> Result<Self> {
        let TrainerBuilder {
            model,
            pipeline,
            mut sampler,
            output_dir: run_dir,
            loss,
            validation,
            device,
            settings,
            evaluation,
            mut record,
            tensorboard,
        } = parts;
        check_settings(&settings)?;
        let collective: Arc<dyn Collective> = options.collective.clone().unwrap_or_else(|| Arc::new(SingleProcess));
        // Rank 0 writes; the other ranks read the checkpoints it writes (a shared filesystem).
        let writer = collective.rank() == 0;
        let loss = match loss {
            Some(loss) => loss,
            None => hybrid_ir_loss::LossConfig::default().build()?,
        };
        let fingerprint = match &record.fingerprint {
            Some(f) => f.clone(),
            None => parts_fingerprint(&settings, sampler.as_ref(), loss.as_ref(), &model),
        };
        if record.data.is_empty() {
            record.data = sampler.describe();
        }
        if run_dir.as_os_str().is_empty() {
            return Err(TrainError::Other("the output directory is empty; name a directory for the run".into()));
        }
        let checkpoints = CheckpointDir::of_run(&run_dir);
        let lock = if writer {
            std::fs::create_dir_all(&run_dir).map_err(|e| TrainError::io(&run_dir, e))?;
            let lock = RunDirLock::acquire(&run_dir)?;
            let stale = checkpoints.remove_stale_temporaries()?;
            if stale > 0 {
                tracing::info!(removed = stale, "removed temporary checkpoint directories left by a killed run");
            }
            Some(lock)
        } else {
            None
        };
        // The other ranks look at the run directory only once rank 0 has prepared it.
        collective.barrier()?;
        let resume_from: Option<VerifiedCheckpoint> = if options.resume {
            let ckpt = resume_checkpoint(&checkpoints, options.resume_intact)?;
            let dir = ckpt.dir.clone();
            if ckpt.state.config_fingerprint != fingerprint && !record.also_resumes.contains(&ckpt.state.config_fingerprint) {
                return Err(TrainError::checkpoint(
                    &dir,
                    format!(
                        "was written with a different config or other parts (fingerprint {} vs {}); resume with the run's \
                         own config ({}) and the same parts",
                        ckpt.state.config_fingerprint,
                        fingerprint,
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
        if let Some(toml) = record.config_toml.as_ref().filter(|_| writer) {
            crate::checkpoint::write_atomic(&run_dir.join("config.toml"), toml.as_bytes())?;
        }

        let plain_device = device.map_or_else(|| model.device().without_autodiff(), Device::without_autodiff);
        let train_device = plain_device.clone().autodiff();
        // A model built on a plain device gets autodiff with `train()`, which applies each
        // parameter's configured trainability (frozen parts stay frozen); `fork` then moves it,
        // keeping which parameters train. A model already on the training device is left as it is.
        let model = if model.device().is_autodiff() { model } else { model.train() };
        let model = if model.device() == train_device { model } else { model.fork(&train_device) };
        let token_check = pipeline.query_tokenizer.vocab_size().max(pipeline.passage_tokenizer.vocab_size());
        if token_check > model.vocab_size() {
            return Err(TrainError::Other(format!(
                "the tokenizer has {token_check} tokens but the model's embedding table has only {} rows",
                model.vocab_size()
            )));
        }
        tracing::info!("sampler: {}", sampler.describe());

        // Validation and evaluation decide what rank 0 writes; the other ranks skip them.
        let evaluation = evaluation.filter(|_| writer);
        let val_batches = match validation {
            Some((mut val_sampler, n)) if writer && settings.schedule.val_every > 0 => (0..n)
                .map(|_| {
                    Ok(TokenizedBatch::new(&pipeline, &val_sampler.next_batch())?.with_chunk_order(settings.step.sort_by_length))
                })
                .collect::<Result<Vec<_>>>()?,
            _ => Vec::new(),
        };

        let mut runner = StepRunner::new(&settings.optim, loss, &settings.step, settings.seed)?.with_collective(collective.clone())?;
        if collective.world_size() > 1 {
            // Launchers report a lost process by its PID: this line maps PIDs to ranks.
            let (pids, _) = collective.all_gather_u64(&[u64::from(std::process::id())])?;
            let pids: Vec<String> = pids.iter().enumerate().map(|(rank, pid)| format!("rank {rank}: pid {pid}")).collect();
            tracing::info!(via = %collective.describe(), "data-parallel training over {}", pids.join(", "));
        }
        let schedule = LrSchedule::new(&settings.optim, settings.schedule.steps);
        let (model, step, examples_seen, best_val, last_saved, lr) = match &resume_from {
            Some(ckpt) => {
                // Loading keeps each parameter's device and whether it trains.
                let model = load_module_into(model, &ckpt.model_path())?;
                runner.optim = runner
                    .optim
                    .load(ckpt.optimizer_path())
                    .map_err(|e| TrainError::checkpoint(ckpt.optimizer_path(), format!("cannot load optimizer state: {e}")))?;
                sampler.restore(&ckpt.state.sampler)?;
                tracing::info!(step = ckpt.state.step, dir = %ckpt.dir.display(), "resuming");
                let s = &ckpt.state;
                (model, s.step, s.examples_seen, s.best_val, Some(s.step), s.lr)
            }
            None => (model, 0, 0, None, None, 0.0),
        };
        let (total, trainable) = count_parameters(&model);
        tracing::info!(total, trainable, backbone = model.kind(), "parameters");
        if trainable == 0 {
            return Err(TrainError::Other("no parameter of the model trains (everything is frozen)".into()));
        }
        let mut log = if writer {
            MetricsLog::open(&run_dir, resume_from.as_ref().map(|c| c.state.step))?
        } else {
            MetricsLog::in_memory()
        };
        if tensorboard && writer {
            let file = log.enable_tensorboard()?;
            tracing::info!(file = %file.display(), "TensorBoard event file");
        }
        Ok(Self {
            _lock: lock,
            collective,
            settings,
            record,
            fingerprint,
            run_dir,
            pipeline,
            model: Some(model),
            runner,
            sampler,
            val_batches,
            eval_bench: evaluation,
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
        let mut batches = Vec::with_capacity(self.settings.optim.grad_accum);
        for _ in 0..self.settings.optim.grad_accum {
            let batch = self.sampler.next_batch();
            if batch.pairs.len() < 2 {
                return Err(TrainError::Other(format!(
                    "step {step}: the sampler gave a batch of {} pair(s) from {}; an in-batch contrastive loss needs at \
                     least 2 (with 1 the loss is a constant 0 and nothing is learned)",
                    batch.pairs.len(),
                    batch.corpus
                )));
            }
            kinds.push(batch.kind.label().to_string());
            batches.push(TokenizedBatch::new(&self.pipeline, &batch)?.with_chunk_order(self.settings.step.sort_by_length));
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
        self.model = Some(self.runner.apply(model, out.grads, lr)?);
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

    fn state(&self) -> Result<TrainState> {
        let sampler = self.sampler.state().map_err(|e| TrainError::Other(format!("checkpoint at step {}: {e}", self.step)))?;
        Ok(TrainState {
            format_version: crate::checkpoint::FORMAT_VERSION,
            step: self.step,
            examples_seen: self.examples_seen,
            lr: self.lr,
            scheduler: self.schedule,
            sampler,
            rng: RngRecord {
                scheme: "dropout seed of micro-batch m of step s = splitmix(seed, s, m); chunk seeds from it (loss::chunk_seed)"
                    .into(),
                seed: self.settings.seed,
                next_step_seed: step_seed(self.settings.seed, self.step + 1, 0),
            },
            best_val: self.best_val,
            config_fingerprint: self.fingerprint.clone(),
            model_name: self.record.model.clone(),
        })
    }

    /// Whether this process writes the run's files (rank 0).
    fn writes(&self) -> bool {
        self.collective.rank() == 0
    }

    fn save(&mut self, is_best: bool) -> Result<PathBuf> {
        if !self.writes() {
            self.last_saved = Some(self.step);
            return Ok(self.checkpoints.root().join(step_dir_name(self.step)));
        }
        let state = self.state()?;
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

    fn evaluate(&self, model: &B) -> Result<Option<LareqaReport>> {
        let Some(bench) = &self.eval_bench else {
            return Ok(None);
        };
        let report = bench.evaluate(model, &self.pipeline, self.settings.eval_batch_size, |_| {})?;
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

    /// Trains until the schedule ends, `options.stop_after_step` or the stop flag; saves
    /// checkpoints, validates, evaluates and writes the run card.
    pub fn run(&mut self, options: &RunOptions) -> Result<RunSummary> {
        let total = self.settings.schedule.steps;
        let sched = self.settings.schedule;
        if self.step == 0 && !self.val_batches.is_empty() {
            self.validate_now()?;
            self.best_val = self.best_val.map(|(_, l)| (0, l));
        }
        let what = format!("training {}", self.run_dir.display());
        let bar = Progress::with_mode(ProgressMode::detect(options.progress && self.writes()), &what, "steps", total, self.step);
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
            let interrupted = self.agree(options.stop_flag.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)))?;
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
        bar.finish();
        if self.last_saved != Some(self.step) {
            // Resumed at the final step, or nothing saved yet: make `last` current.
            self.save(false)?;
        }
        // The other ranks read `last` below: wait until rank 0 has written it.
        self.collective.barrier()?;

        let mut final_eval = None;
        if stop == StopReason::Completed && self.settings.eval_at_end && self.eval_bench.is_some() {
            let model = match self.checkpoints.resolve(Pointer::Best)? {
                Some(dir) => load_module_into(self.model().valid(), &verify(&dir)?.model_path())?,
                None => self.model().valid(),
            };
            final_eval = self.evaluate(&model)?;
            if let Some(report) = &final_eval {
                self.log_eval(report)?;
                let path = self.run_dir.join("final_eval.json");
                let json = serde_json::to_vec_pretty(report).map_err(|e| TrainError::Other(format!("report: {e}")))?;
                crate::checkpoint::write_atomic(&path, &json)?;
            }
        }
        if self.writes() {
            self.log.write_svg(&self.run_dir.join("loss.svg"))?;
        }
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
        if self.writes() {
            self.write_run_card(&summary)?;
        }
        Ok(summary)
    }

    /// `flag` if any rank has it set (every rank gets the same answer, so all stop at the same
    /// step: a Ctrl-C reaches the ranks at slightly different times).
    fn agree(&self, flag: bool) -> Result<bool> {
        if self.collective.world_size() == 1 {
            return Ok(flag);
        }
        let mut any = [f32::from(u8::from(flag))];
        self.collective.all_reduce_sum(&mut any)?;
        Ok(any[0] > 0.0)
    }

    fn write_run_card(&self, summary: &RunSummary) -> Result<()> {
        let (total, trainable) = count_parameters(self.model());
        let mut s = String::new();
        s += &format!("# Run card: {}\n\n", self.run_dir.display());
        s += &format!("- commit: `{}`\n", git_commit());
        s += &format!(
            "- model: `{}`, {} backbone ({} parameters, {} trained)\n",
            self.record.model,
            self.model().kind(),
            total,
            trainable
        );
        s += &format!("- prefixes: query {:?}, passage {:?}\n", self.pipeline.prefixes.query, self.pipeline.prefixes.passage);
        s += &format!("- data: {}\n", self.record.data);
        s += &format!("- sampler: {}\n", self.sampler.describe());
        s += &format!(
            "- steps: {} of {} ({:?}); pairs seen: {}\n",
            summary.step, self.settings.schedule.steps, summary.stop, self.examples_seen
        );
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
        s += if self.record.config_toml.is_some() { "\nFiles: `config.toml` (resolved config), " } else { "\nFiles: " };
        s += "`metrics.jsonl`, `loss.svg`, `checkpoints/{last,best}`";
        if self.run_dir.join("tensorboard").is_dir() {
            s += ", `tensorboard/` (event files)";
        }
        s += if summary.final_eval.is_some() { ", `final_eval.json`.\n" } else { ".\n" };
        match &self.record.config_toml {
            Some(toml) => s += &format!("\n## Config\n\n```toml\n{toml}```\n"),
            None => {
                let json =
                    serde_json::to_string_pretty(&self.settings).map_err(|e| TrainError::Other(format!("settings: {e}")))?;
                s += &format!("\n## Settings\n\n```json\n{json}\n```\n");
            }
        }
        crate::checkpoint::write_atomic(&self.run_dir.join("run.md"), s.as_bytes())
    }
}

/// The checkpoint to resume from: `last` when it verifies; otherwise, with `use_intact`, the
/// newest checkpoint directory that does (else an error naming it).
fn resume_checkpoint(checkpoints: &CheckpointDir, use_intact: bool) -> Result<VerifiedCheckpoint> {
    let (last_dir, last_error) = match checkpoints.resolve(Pointer::Last) {
        Ok(Some(dir)) => match verify(&dir) {
            Ok(ckpt) => return Ok(ckpt),
            Err(e) => (Some(dir), e),
        },
        Ok(None) => (None, TrainError::checkpoint(checkpoints.root().join("last"), "nothing to resume: the run has no checkpoint yet")),
        Err(e) => (None, e),
    };
    // Newest first: step directories sort by their zero-padded step number.
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(checkpoints.root())
        .map(|it| {
            it.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("step-")))
                .filter(|p| Some(p) != last_dir.as_ref())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    let intact = dirs.iter().rev().find_map(|d| verify(d).ok());
    match intact {
        Some(ckpt) if use_intact => {
            tracing::warn!("`last` cannot be used ({last_error}); resuming from the newest intact checkpoint {}", ckpt.dir.display());
            Ok(ckpt)
        }
        Some(ckpt) => Err(TrainError::checkpoint(
            checkpoints.root().join("last"),
            format!(
                "cannot be used: {last_error}. The newest intact checkpoint is {} (step {}): resume from it with \
                 --resume --resume-intact",
                ckpt.dir.display(),
                ckpt.state.step
            ),
        )),
        None => Err(last_error),
    }
}

/// Refuses settings no run can use (the TOML layer reports these per field; library users get
/// the same checks).
fn check_settings(s: &TrainerSettings) -> Result<()> {
    let mut p = Vec::new();
    if s.schedule.steps == 0 {
        p.push("schedule.steps must be >= 1".to_string());
    }
    if s.optim.grad_accum == 0 {
        p.push("optim.grad_accum must be >= 1".to_string());
    }
    if !(s.optim.lr.is_finite() && s.optim.lr > 0.0) {
        p.push(format!("optim.lr must be finite and > 0, got {}", s.optim.lr));
    }
    if s.step.chunk_size == 0 {
        p.push("loss.chunk_size must be >= 1".to_string());
    }
    if s.eval_batch_size == 0 {
        p.push("eval.batch_size must be >= 1".to_string());
    }
    if p.is_empty() { Ok(()) } else { Err(TrainError::ConfigInvalid { problems: p }) }
}

/// Default fingerprint of a run assembled from parts: the settings plus what the parts say of
/// themselves, so a resume with another sampler, loss or model shape is refused.
fn parts_fingerprint<B: Backbone>(
    settings: &TrainerSettings,
    sampler: &dyn BatchSampler,
    loss: &dyn ContrastiveLoss,
    model: &B,
) -> String {
    use sha2::{Digest, Sha256};
    let (total, trainable) = count_parameters(model);
    let text = format!(
        "{}\n{}\n{:?}\n{} {} {total} {trainable}",
        serde_json::to_string(settings).unwrap_or_default(),
        sampler.describe(),
        loss,
        model.kind(),
        model.dim()
    );
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
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
