//! The paper's comparison (Tables 1 and 2) at a chosen budget: from one start model, train one
//! model per sampler (X-X-mono = α 1, X-Y = α 0, Hybrid = α 0.5 by default) on one benchmark,
//! evaluate each and the untouched start model on the other, and render the tables and the
//! language × language mAP matrices, also as heatmaps with difference heatmaps beside them
//! (each model minus the start model, Hybrid minus X-X-mono and minus X-Y: [`write_heatmaps`]).
//! Optionally also the reverse direction.
//!
//! Every run is an ordinary [`crate::train`] run in `out_dir/train-<corpus>/<label>/` (further
//! seeds in `<label>-seed-<seed>/`), so it is resumable: re-running `reproduce` continues or
//! reuses finished runs.
//!
//! **Seeds and significance.** With `seeds = N`, every sampler trains N models (seeds `seed`,
//! `seed + 1`, …: the sampler order and the dropout masks change; the start model and the
//! validation batches do not). Each column is then reported as mean, standard deviation and a
//! Student-t 95% interval over seeds ([`SeedSummary`]), and every pair of samplers is compared on
//! every headline metric with a paired randomisation test over the evaluation queries (per-query
//! values averaged over seeds; bootstrap interval of the difference), Holm-corrected over all
//! comparisons of a direction ([`compare_report_seeds`], [`holm_jointly`]). Each trained model's
//! report, with its per-query values, is saved as `<run dir>/report-<eval>.json`, so models of
//! different invocations (e.g. with and without mined negatives) can be tested against each
//! other with `hybrid-ir eval compare`. With
//! `trainable_layers = k`, evaluation encodes the frozen bottom once per benchmark
//! ([`FrozenPrefixCache`]) and only the top `k` layers per model.
//!
//! **Across processes.** Under `mpiexec` ([`reproduce`] with a [`Collective`] of several ranks)
//! every training run is data-parallel through the trainer, and every evaluation encoding is
//! split by length-sorted batch over the ranks (the frozen-bottom cache too), then summed: the
//! same embeddings, hence the same report, as one process. Rank 0 alone decides whether a run
//! resumes and writes (run directories, reports, results, heatmaps); every rank reads the
//! finished checkpoints, so the output directory must be on a file system all ranks see.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::module::Module;
use hybrid_ir_collective::{Collective, SingleProcess};
use hybrid_ir_data::sampler::{SamplerConfig, SamplerKind};
use hybrid_ir_eval::{TokenizedBenchmark, load_benchmark, sum_over_ranks};
use hybrid_ir_data::NegativePolicy;
use hybrid_ir_loss::LossKind;
use hybrid_ir_metrics::{
    BenchmarkEmbeddings, EvalOptions, HeadlineMetric, LareqaReport, PairedTestOptions, ReportComparison, SeedSummary,
    compare_report_seeds, holm_jointly,
};
use hybrid_ir_model::{AnyEncoder, FrozenPrefixCache, load_module_into};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointDir, Pointer, verify};
use crate::config::{
    BackboneChoice, DataSection, EvalSection, LogSection, LossSection, ModelSection, OptimSection, PrefixStyle, ScheduleSection,
    StaticInitChoice, TrainConfig,
};
use crate::error::{Result, TrainError};
use crate::from_config::{model_info, pipeline, train};
use crate::progress::Progress;
use crate::trainer::{RunOptions, StopReason};

/// The objective of every run, and which negatives it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ReproduceLoss {
    /// In-batch negatives only (DPR / MNRL): other pairs' positives. Hard negatives a corpus
    /// carries are dropped.
    #[default]
    #[serde(rename = "in-batch")]
    InBatch,
    /// In-batch negatives plus each pair's hard negative (every positive and every hard negative
    /// of the batch). Needs a corpus with negatives (`hybrid-ir mine`).
    #[serde(rename = "in-batch+negatives")]
    InBatchNegatives,
    /// The paper's Eq. (1) read literally: own positive against every hard negative of the
    /// batch. Needs a corpus with negatives.
    #[serde(rename = "paper")]
    Paper,
}

impl ReproduceLoss {
    /// Name on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            ReproduceLoss::InBatch => "in-batch",
            ReproduceLoss::InBatchNegatives => "in-batch+negatives",
            ReproduceLoss::Paper => "paper",
        }
    }

    /// Whether the runs need a hard negative for every pair.
    pub fn needs_negatives(self) -> bool {
        self != ReproduceLoss::InBatch
    }
}

impl std::str::FromStr for ReproduceLoss {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [ReproduceLoss::InBatch, ReproduceLoss::InBatchNegatives, ReproduceLoss::Paper]
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("`{s}` is not a loss: use in-batch, in-batch+negatives or paper"))
    }
}

fn one() -> usize {
    1
}

/// What `hybrid-ir reproduce` runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReproduceOptions {
    /// Start model directory.
    pub model_dir: PathBuf,
    /// Training benchmark (`mlqa-r` or `xquad-r`).
    pub train: String,
    /// Evaluation benchmark.
    pub eval: String,
    /// Also run the reverse direction (train on `eval`, evaluate on `train`).
    pub reverse: bool,
    /// One model per α (1 = X-X-mono, 0 = X-Y, otherwise Hybrid).
    pub alphas: Vec<f64>,
    /// Optimizer steps per model.
    pub steps: u64,
    /// Pairs per batch.
    pub batch_size: usize,
    /// Peak learning rate (linear warm-up over 10% of the steps, linear decay).
    pub lr: f64,
    /// Train only the top N layers (None: all).
    pub trainable_layers: Option<usize>,
    /// `transformer` (the model directory's own) or `static` (a token table over its tokenizer).
    #[serde(default)]
    pub backbone: BackboneChoice,
    /// Start of a static table (`model` or `random`).
    #[serde(default)]
    pub static_init: StaticInitChoice,
    /// Query truncation.
    pub query_max_len: usize,
    /// Passage truncation.
    pub passage_max_len: usize,
    /// Evaluate only these languages (empty: all).
    pub eval_languages: Vec<String>,
    /// Where runs and results go.
    pub out_dir: PathBuf,
    /// Master seed (same for every sampler); seed k of `seeds` is `seed + k`.
    pub seed: u64,
    /// Training seeds per sampler (default 1).
    #[serde(default = "one")]
    pub seeds: usize,
    /// Objective and negatives of every run (default in-batch).
    #[serde(default)]
    pub loss: ReproduceLoss,
    /// Paired tests between samplers (resamples, seed, interval coverage, level).
    #[serde(default)]
    pub significance: PairedTestOptions,
    /// Data root.
    pub data_dir: Option<PathBuf>,
    /// Device (`cpu`, `tch-cuda:0`, …).
    pub device: String,
    /// Texts per encoder batch at evaluation.
    pub eval_batch_size: usize,
    /// Draw progress bars.
    pub progress: bool,
}

/// One evaluated model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelResult {
    /// `start`, `X-X-mono`, `X-Y`, `Hybrid`.
    pub label: String,
    /// α of the sampler (None for the start model).
    pub alpha: Option<f64>,
    /// Run directory (None for the start model).
    pub run_dir: Option<PathBuf>,
    /// Training seed (None for the start model).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Validation loss before training and the best one `(step, loss)`.
    pub val: Option<((u64, f64), (u64, f64))>,
    /// Training wall time in seconds (this invocation).
    pub train_seconds: f64,
    /// Evaluation report.
    pub report: LareqaReport,
}

/// One direction (train on A, evaluate on B).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DirectionResult {
    /// Training benchmark.
    pub train: String,
    /// Evaluation benchmark.
    pub eval: String,
    /// Start model first, then one row per α and seed (α-major).
    pub models: Vec<ModelResult>,
    /// Per sampler: every headline metric over its seeds.
    #[serde(default)]
    pub summaries: Vec<SamplerSummary>,
    /// Every pair of samplers (B against A, in `alphas` order) on every headline metric, Holm
    /// over all rows of the direction.
    #[serde(default)]
    pub comparisons: Vec<SamplerComparison>,
}

/// One sampler's headline metrics over its seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplerSummary {
    /// Sampler label.
    pub label: String,
    /// One entry per [`HeadlineMetric`], in table order.
    pub metrics: Vec<(HeadlineMetric, SeedSummary)>,
}

/// Sampler B against sampler A.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamplerComparison {
    /// Label of A.
    pub a: String,
    /// Label of B.
    pub b: String,
    /// The paired tests (difference = B − A).
    pub comparison: ReportComparison,
}

/// Label of a sampler α.
pub fn sampler_label(alpha: f64) -> String {
    if alpha >= 1.0 {
        "X-X-mono".into()
    } else if alpha <= 0.0 {
        "X-Y".into()
    } else if (alpha - 0.5).abs() < 1e-12 {
        "Hybrid".into()
    } else {
        format!("Hybrid α={alpha}")
    }
}

/// `name` as one safe path component: characters other than letters, digits, `-`, `_` and `.`
/// become `_`, and leading dots are dropped, so a label or corpus name (`../../x.jsonl`,
/// `Hybrid α=0.3`) can never leave the output directory.
pub fn path_component(name: &str) -> String {
    let cleaned: String =
        name.chars().map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    let trimmed = cleaned.trim_start_matches('.');
    if trimmed.is_empty() { "_".to_string() } else { trimmed.to_string() }
}

/// A corpus as a name for directories: a benchmark name as it is, a file by its stem.
fn corpus_component(corpus: &str) -> String {
    let name = Path::new(corpus).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| corpus.to_string());
    path_component(&name)
}

/// Run directory of sampler `label`'s `k`-th seed: the first seed keeps the plain label, so a
/// one-seed run is where it always was and adding seeds reuses it.
fn run_dir_of(opts: &ReproduceOptions, train_corpus: &str, label: &str, k: usize) -> PathBuf {
    let name = if k == 0 { path_component(label) } else { path_component(&format!("{label}-seed-{}", opts.seed + k as u64)) };
    opts.out_dir.join(format!("train-{}", corpus_component(train_corpus))).join(name)
}

fn run_config(
    opts: &ReproduceOptions,
    train_corpus: &str,
    alpha: f64,
    seed: u64,
    run_dir: &Path,
    world: usize,
) -> Result<TrainConfig> {
    let kind = if alpha >= 1.0 {
        SamplerKind::Mono
    } else if alpha <= 0.0 {
        SamplerKind::Cross
    } else {
        SamplerKind::Hybrid
    };
    let config = TrainConfig {
        seed,
        output_dir: run_dir.to_path_buf(),
        model: ModelSection {
            dir: opts.model_dir.clone(),
            prefixes: PrefixStyle::Model,
            query_prefix: None,
            passage_prefix: None,
            query_max_len: opts.query_max_len,
            passage_max_len: opts.passage_max_len,
            device: opts.device.clone(),
            trainable_layers: opts.trainable_layers,
            backbone: opts.backbone,
            static_init: opts.static_init,
            freeze_embeddings: false,
            bf16_matmuls: false,
        },
        data: DataSection {
            corpora: vec![train_corpus.to_string()],
            data_dir: opts.data_dir.clone(),
            holdout_every: 10,
            negatives: NegativePolicy::None,
            drop_negatives: opts.loss == ReproduceLoss::InBatch,
            languages: Vec::new(),
            // Every sampler and seed is early-stopped on the same validation batches.
            val_sampler: Some(SamplerKind::Hybrid),
            val_alpha: Some(0.5),
            val_seed: Some(opts.seed),
        },
        sampler: SamplerConfig { alpha, batch_size: opts.batch_size, seed, ..SamplerConfig::new(kind) },
        loss: LossSection {
            // The plain step is the faster one in one process; ranks join their embeddings in the
            // cached one. Same loss and dropout masks (and the fingerprint leaves it out), so a
            // run started on one process is reused or resumed over ranks and the other way round.
            cached: world > 1,
            kind: if opts.loss == ReproduceLoss::Paper { LossKind::Paper } else { LossKind::InBatch },
            ..LossSection::default()
        },
        optim: OptimSection { lr: opts.lr, warmup_steps: (opts.steps / 10).max(1).min(opts.steps), ..OptimSection::default() },
        schedule: ScheduleSection {
            steps: opts.steps,
            val_every: (opts.steps / 4).max(1),
            val_batches: 4,
            save_every: 0,
            ..ScheduleSection::default()
        },
        eval: EvalSection::default(),
        log: LogSection::default(),
    };
    config.validate()?;
    Ok(config)
}

fn bar(progress: bool, len: u64, what: &str) -> Progress {
    Progress::new(progress, what, "texts", len)
}

/// Rank 0's answer on every rank (a shared file system may show the others a directory rank 0
/// is still writing, or a stale view of it).
fn rank0_decides(collective: &dyn Collective, answer: impl FnOnce() -> Result<bool>) -> Result<bool> {
    let mut byte = vec![if collective.rank() == 0 { u8::from(answer()?) } else { 0 }];
    collective.broadcast(0, &mut byte)?;
    Ok(byte.first() == Some(&1))
}

/// Trains (or reuses) one model per α on `train_corpus` and evaluates them and the start
/// model on `eval_name`.
fn direction(
    opts: &ReproduceOptions,
    train_corpus: &str,
    eval_name: &str,
    stop: &Option<Arc<AtomicBool>>,
    collective: &Arc<dyn Collective>,
) -> Result<DirectionResult> {
    let spec: hybrid_ir_model::DeviceSpec = opts.device.parse()?;
    let plain = spec.try_device()?;
    let (rank, world) = (collective.rank(), collective.world_size());
    let writes = rank == 0;
    let progress = opts.progress && writes;

    // Train first (the expensive, resumable part), then evaluate everything together.
    let mut runs = Vec::new();
    for (&alpha, k) in opts.alphas.iter().flat_map(|a| (0..opts.seeds).map(move |k| (a, k))) {
        let label = sampler_label(alpha);
        let seed = opts.seed + k as u64;
        let run_dir = run_dir_of(opts, train_corpus, &label, k);
        let config = run_config(opts, train_corpus, alpha, seed, &run_dir, world)?;
        let resume = rank0_decides(collective.as_ref(), || Ok(CheckpointDir::of_run(&run_dir).resolve(Pointer::Last)?.is_some()))?;
        tracing::info!(
            "{label} (α = {alpha}, seed {seed}) on {train_corpus}: {} steps{}",
            opts.steps,
            if resume { ", resuming" } else { "" }
        );
        let started = Instant::now();
        let options = RunOptions {
            resume,
            stop_flag: stop.clone(),
            progress: opts.progress,
            collective: Some(collective.clone()),
            ..Default::default()
        };
        let summary = train(&config, &options)?;
        if summary.stop != StopReason::Completed {
            return Err(TrainError::Other(format!(
                "interrupted while training {label}; run the same command again to resume from {}",
                run_dir.display()
            )));
        }
        let val = summary.val_history.first().copied().zip(summary.best_val);
        runs.push((label, alpha, seed, run_dir, val, started.elapsed().as_secs_f64()));
    }

    // Every run of this direction shares the start model, its info and pipeline.
    let first = run_config(opts, train_corpus, opts.alphas[0], opts.seed, &opts.out_dir, world)?;
    let info = model_info(&first)?;
    let pipeline = pipeline(&first, &info)?;
    let bench = TokenizedBenchmark::new(load_benchmark(eval_name, opts.data_dir.as_deref(), &opts.eval_languages)?, &pipeline)?;
    let base = info.load(&plain)?.valid();
    let nq = bench.queries.len() as u64;
    let nc = bench.candidates.len() as u64;
    // Each rank encodes every `world`-th length-sorted batch; the bars count rank 0's share.
    let split = |n: u64| if world > 1 { n.div_ceil(world as u64) } else { n };
    let (nq, nc) = (split(nq), split(nc));
    let share = (rank, world);
    // A transformer that trains only its top layers shares its frozen bottom with the start
    // model: encode that once ([`FrozenPrefixCache`]) and only the top per model.
    let caches = match &base {
        AnyEncoder::Bert(bert) => {
            let n_layers = bert.encoder.layer.len();
            let frozen = n_layers - opts.trainable_layers.filter(|&k| k > 0).unwrap_or(n_layers).min(n_layers);
            let b = bar(progress, nq + nc, &format!("{eval_name}: encoding the frozen bottom ({frozen} of {n_layers} layers)"));
            let (pad, batch) = (pipeline.pad_id(), opts.eval_batch_size);
            let q = FrozenPrefixCache::build_share(bert, &bench.queries, pad, frozen, batch, share, |d| b.set_position(d as u64))?;
            let c = FrozenPrefixCache::build_share(bert, &bench.candidates, pad, frozen, batch, share, |d| {
                b.set_position(nq + d as u64)
            })?;
            b.finish();
            Some((q, c))
        }
        AnyEncoder::Static(_) => None,
    };

    let evaluate = |model: &AnyEncoder, label: &str| -> Result<LareqaReport> {
        let b = bar(progress, nq + nc, &format!("{eval_name}: {label}"));
        let embeddings = match (model, &caches) {
            (AnyEncoder::Bert(bert), Some((q_cache, c_cache))) => {
                let shares = BenchmarkEmbeddings {
                    queries: q_cache.embed(bert, |d| b.set_position(d as u64))?,
                    candidates: c_cache.embed(bert, |d| b.set_position(nq + d as u64))?,
                };
                sum_over_ranks(collective.as_ref(), shares)?
            }
            _ => bench.encode_across(model, &pipeline, opts.eval_batch_size, collective.as_ref(), |d| b.set_position(d as u64))?,
        };
        b.finish();
        // Per-query values feed the paired tests between samplers; they are dropped from
        // results.json afterwards (they would add megabytes per model).
        let report = bench.evaluate_embeddings_with(embeddings, &EvalOptions { per_query: true, ..EvalOptions::default() })?;
        let s = &report.settings;
        tracing::info!(
            "{label} on {eval_name}: mAP mono {:.4} cross {:.4} multi {:.4}, rank distance {:.1}",
            s.mono.map,
            s.cross.map,
            s.multi.map,
            s.multi.rank_distance.unwrap_or(f64::NAN)
        );
        Ok(report)
    };

    let mut models = vec![ModelResult {
        label: "start".into(),
        alpha: None,
        run_dir: None,
        seed: None,
        val: None,
        train_seconds: 0.0,
        report: evaluate(&base, "start model")?,
    }];
    for (label, alpha, seed, run_dir, val, secs) in runs {
        let ckpts = CheckpointDir::of_run(&run_dir);
        let dir = ckpts
            .resolve(Pointer::Best)?
            .or(ckpts.resolve(Pointer::Last)?)
            .ok_or_else(|| TrainError::checkpoint(ckpts.root(), "the finished run has no checkpoint"))?;
        let model = load_module_into(info.skeleton(&plain), &verify(&dir)?.model_path())?.valid();
        let report = evaluate(&model, &shown_label(&label, Some(seed), opts.seeds))?;
        // The report with its per-query values, beside the run: what `hybrid-ir eval compare`
        // reads to test models of different `reproduce` invocations (e.g. with and without
        // mined negatives) against each other.
        if writes {
            let saved = serde_json::to_vec(&report).map_err(|e| TrainError::Other(format!("report: {e}")))?;
            crate::checkpoint::write_atomic(&run_dir.join(format!("report-{}.json", corpus_component(eval_name))), &saved)?;
        }
        models.push(ModelResult {
            label,
            alpha: Some(alpha),
            run_dir: Some(run_dir),
            seed: Some(seed),
            val,
            train_seconds: secs,
            report,
        });
    }
    let (summaries, comparisons) = across_seeds(opts, &models)?;
    for m in &mut models {
        m.report.per_query = None;
    }
    Ok(DirectionResult { train: train_corpus.to_string(), eval: eval_name.to_string(), models, summaries, comparisons })
}

/// Per sampler, the headline metrics over its seeds; per pair of samplers, the paired tests
/// (per-query values averaged over seeds), Holm over every row of the direction.
fn across_seeds(opts: &ReproduceOptions, models: &[ModelResult]) -> Result<(Vec<SamplerSummary>, Vec<SamplerComparison>)> {
    let labels: Vec<String> = opts.alphas.iter().map(|&a| sampler_label(a)).collect();
    let reports_of =
        |label: &str| -> Vec<&LareqaReport> { models.iter().filter(|m| m.seed.is_some() && m.label == label).map(|m| &m.report).collect() };
    let mut summaries = Vec::new();
    for label in &labels {
        let reports = reports_of(label);
        let mut metrics = Vec::new();
        for metric in HeadlineMetric::ALL {
            // A metric the benchmark does not define (rank distance with one language) is left out.
            let values: Vec<f64> = reports.iter().filter_map(|r| metric.of(&r.settings)).collect();
            if values.len() == reports.len() && !values.is_empty() {
                metrics.push((metric, SeedSummary::of(&values, opts.significance.confidence)?));
            }
        }
        summaries.push(SamplerSummary { label: label.clone(), metrics });
    }
    let mut comparisons = Vec::new();
    for (i, a) in labels.iter().enumerate() {
        for b in &labels[i + 1..] {
            let comparison = compare_report_seeds(&reports_of(a), &reports_of(b), &opts.significance)?;
            comparisons.push(SamplerComparison { a: a.clone(), b: b.clone(), comparison });
        }
    }
    let mut rows: Vec<ReportComparison> = comparisons.iter().map(|c| c.comparison.clone()).collect();
    holm_jointly(&mut rows);
    for (c, r) in comparisons.iter_mut().zip(rows) {
        c.comparison = r;
    }
    Ok((summaries, comparisons))
}

/// A loss that needs hard negatives is refused up front (before any training) unless every
/// example of every training corpus has one.
fn check_negatives(opts: &ReproduceOptions) -> Result<()> {
    if !opts.loss.needs_negatives() {
        return Ok(());
    }
    let root = hybrid_ir_data::resolve_data_dir(opts.data_dir.as_deref());
    let corpora = if opts.reverse { vec![&opts.train, &opts.eval] } else { vec![&opts.train] };
    for name in corpora {
        let stats = hybrid_ir_data::load_corpus(name, &root, NegativePolicy::None)?.stats();
        if stats.with_negative < stats.examples {
            return Err(TrainError::Other(format!(
                "--loss {} needs a hard negative for every pair, but `{name}` has {} of {} examples with one: mine them \
                 with `hybrid-ir mine --corpus {name} --out mined.jsonl` and train on that file (--train mined.jsonl --one-way)",
                opts.loss.name(),
                stats.with_negative,
                stats.examples
            )));
        }
    }
    Ok(())
}

/// Runs the comparison in this process; see [`reproduce_across`].
pub fn reproduce(opts: &ReproduceOptions, stop: Option<Arc<AtomicBool>>) -> Result<(Vec<DirectionResult>, String)> {
    reproduce_across(opts, stop, Arc::new(SingleProcess))
}

/// Runs the comparison over the ranks of `collective` (every rank calls it; see the module
/// docs); rank 0 writes `results.json`, `results.md`, one mAP heatmap per model
/// (`heatmap-<train>-to-<eval>-<model>.svg`) and the difference heatmaps of [`write_heatmaps`]
/// to `out_dir`. Every rank returns the results.
pub fn reproduce_across(
    opts: &ReproduceOptions,
    stop: Option<Arc<AtomicBool>>,
    collective: Arc<dyn Collective>,
) -> Result<(Vec<DirectionResult>, String)> {
    if opts.alphas.is_empty() {
        return Err(TrainError::Other("--alphas is empty".into()));
    }
    if let Some(a) = opts.alphas.iter().find(|a| !(0.0..=1.0).contains(*a)) {
        return Err(TrainError::Other(format!("alpha {a} is outside [0, 1]")));
    }
    let labels: Vec<String> = opts.alphas.iter().map(|&a| sampler_label(a)).collect();
    for (i, label) in labels.iter().enumerate() {
        if let Some(first) = labels[..i].iter().position(|l| l == label) {
            return Err(TrainError::Other(format!(
                "alphas {} and {} are both {label}: give each sampler once",
                opts.alphas[first], opts.alphas[i]
            )));
        }
    }
    if opts.seeds == 0 {
        return Err(TrainError::Other("seeds 0: train at least one seed per sampler".into()));
    }
    check_negatives(opts)?;
    let writes = collective.rank() == 0;
    // One `reproduce` per output directory (each training run also locks its own directory).
    let _lock = if writes {
        std::fs::create_dir_all(&opts.out_dir).map_err(|e| TrainError::io(&opts.out_dir, e))?;
        Some(crate::checkpoint::RunDirLock::acquire(&opts.out_dir)?)
    } else {
        None
    };
    collective.barrier()?;
    let started = Instant::now();
    let mut results = vec![direction(opts, &opts.train, &opts.eval, &stop, &collective)?];
    if opts.reverse {
        results.push(direction(opts, &opts.eval, &opts.train, &stop, &collective)?);
    }
    let markdown = render_markdown(&results, opts, started.elapsed().as_secs_f64());
    if !writes {
        return Ok((results, markdown));
    }
    let json = serde_json::to_vec_pretty(&(opts, &results)).map_err(|e| TrainError::Other(format!("results: {e}")))?;
    crate::checkpoint::write_atomic(&opts.out_dir.join("results.json"), &json)?;
    crate::checkpoint::write_atomic(&opts.out_dir.join("results.md"), markdown.as_bytes())?;
    for d in &results {
        write_heatmaps(&opts.out_dir, opts.seeds, d)?;
    }
    Ok((results, markdown))
}

/// Writes the mAP heatmaps of one direction to `out_dir` and returns their paths: one per model
/// (`heatmap-<train>-to-<eval>-<model>.svg`, viridis fitted to its values) and, on a diverging
/// scale centred at 0, each trained model minus the start model (`…-<model>_minus_start.svg`)
/// and each Hybrid (0 < α < 1) minus X-X-mono and minus X-Y of the same seed
/// (`…-<Hybrid>_minus_<X-X-mono|X-Y>.svg`). With `seeds > 1` model names carry their seed.
pub fn write_heatmaps(out_dir: &Path, seeds: usize, d: &DirectionResult) -> Result<Vec<PathBuf>> {
    use hybrid_ir_metrics::heatmap::{difference_heatmap_svg, heatmap_svg, matrix_difference};
    let shown = |m: &ModelResult| match m.seed {
        Some(seed) if seeds > 1 => format!("{} seed {seed}", m.label),
        _ => m.label.clone(),
    };
    let mut written = Vec::new();
    let mut write = |name: &str, svg: String| {
        let (train, eval) = (corpus_component(&d.train), corpus_component(&d.eval));
        let path = out_dir.join(format!("heatmap-{train}-to-{eval}-{}.svg", path_component(name)));
        crate::checkpoint::write_atomic(&path, svg.as_bytes())?;
        written.push(path);
        Ok::<(), TrainError>(())
    };
    for m in &d.models {
        let title = format!("{}: mAP of {} trained on {}, by query and candidate language", d.eval, shown(m), d.train);
        write(&shown(m), heatmap_svg(&title, &m.report.languages, &m.report.map_matrix()))?;
    }
    let difference = |a: &ModelResult, b: &ModelResult, b_name: &str| {
        let (labels, values) =
            matrix_difference(&a.report.languages, &a.report.map_matrix(), &b.report.languages, &b.report.map_matrix());
        let title =
            format!("{}: mAP of {} minus {b_name}, trained on {}, by query and candidate language", d.eval, shown(a), d.train);
        (format!("{} minus {b_name}", shown(a)), difference_heatmap_svg(&title, &labels, &values))
    };
    let start = d.models.iter().find(|m| m.alpha.is_none());
    for m in d.models.iter().filter(|m| m.alpha.is_some()) {
        if let Some(start) = start {
            let (name, svg) = difference(m, start, "start");
            write(&name, svg)?;
        }
    }
    for h in d.models.iter().filter(|m| m.alpha.is_some_and(|a| a > 0.0 && a < 1.0)) {
        for other in d.models.iter().filter(|m| m.seed == h.seed && m.alpha.is_some_and(|a| a <= 0.0 || a >= 1.0)) {
            let (name, svg) = difference(h, other, &other.label);
            write(&name, svg)?;
        }
    }
    Ok(written)
}

/// Table 1 (mAP mono / cross / multi), Table 2 (rank distance) and the mAP matrices.
pub fn render_markdown(results: &[DirectionResult], opts: &ReproduceOptions, seconds: f64) -> String {
    let mut s = String::new();
    let seeds = if opts.seeds > 1 { format!("seeds {}–{}", opts.seed, opts.seed + opts.seeds as u64 - 1) } else { format!("seed {}", opts.seed) };
    s += &format!(
        "Model `{}`, {} steps × batch {} per sampler, lr {}, {} layers trained, max len {}/{}, loss {}, {seeds}; total {:.1} min.\n\n",
        opts.model_dir.display(),
        opts.steps,
        opts.batch_size,
        opts.lr,
        opts.trainable_layers.map(|k| format!("top {k}")).unwrap_or_else(|| "all".into()),
        opts.query_max_len,
        opts.passage_max_len,
        opts.loss.name(),
        seconds / 60.0
    );
    let shown = |m: &ModelResult| shown_label(&m.label, m.seed, opts.seeds);
    s += "**Table 1 style: mAP (macro average)**\n\n| train → eval | model | Mo. | Cr. | Mul. | val loss start → best (step) |\n|---|---|---:|---:|---:|---|\n";
    for d in results {
        for m in &d.models {
            let st = &m.report.settings;
            let val = m.val.map(|((_, a), (step, b))| format!("{a:.4} → {b:.4} ({step})")).unwrap_or_default();
            s += &format!(
                "| {} → {} | {} | {:.4} | {:.4} | {:.4} | {val} |\n",
                d.train,
                d.eval,
                shown(m),
                st.mono.map,
                st.cross.map,
                st.multi.map
            );
        }
    }
    s += "\n**Table 2 style: mean rank distance in multilingual retrieval (lower = less language bias)**\n\n| train → eval | model | rank distance | R@1 mono | R@1 cross | R@10 multi |\n|---|---|---:|---:|---:|---:|\n";
    for d in results {
        for m in &d.models {
            let st = &m.report.settings;
            s += &format!(
                "| {} → {} | {} | {:.1} | {:.4} | {:.4} | {:.4} |\n",
                d.train,
                d.eval,
                shown(m),
                st.multi.rank_distance.unwrap_or(f64::NAN),
                st.mono.recall_at_1,
                st.cross.recall_at_1,
                st.multi.recall_at_10
            );
        }
    }
    if opts.seeds > 1 {
        s += &format!(
            "\n**Across seeds: mean ± standard deviation [{:.0}% Student-t interval of the mean] over {} seeds**\n\n",
            opts.significance.confidence * 100.0,
            opts.seeds
        );
        s += &format!(
            "| train → eval | sampler | {} |\n|---|---|{}\n",
            HeadlineMetric::ALL.map(column_title).join(" | "),
            "---:|".repeat(HeadlineMetric::ALL.len())
        );
        for d in results {
            for sum in &d.summaries {
                let cells: Vec<String> = HeadlineMetric::ALL
                    .iter()
                    .map(|metric| match sum.metrics.iter().find(|(m, _)| m == metric) {
                        Some((m, v)) => seed_cell(*m, v),
                        None => "–".into(),
                    })
                    .collect();
                s += &format!("| {} → {} | {} | {} |\n", d.train, d.eval, sum.label, cells.join(" | "));
            }
        }
    }
    if results.iter().any(|d| !d.comparisons.is_empty()) {
        let o = &opts.significance;
        s += &format!(
            "\n**Paired significance between samplers**: B − A on the evaluation queries{}, two-sided \
             randomisation test ({} sign flips, seed {}), {:.0}% paired-bootstrap interval, Holm over the {} \
             comparisons of each direction; * = significant at {}. For rank distance lower is better.\n\n",
            if opts.seeds > 1 { " (each query's value averaged over the seeds)" } else { "" },
            o.resamples,
            o.seed,
            o.confidence * 100.0,
            results.iter().map(|d| d.comparisons.iter().map(|c| c.comparison.metrics.len()).sum::<usize>()).max().unwrap_or(0),
            o.alpha
        );
        s += "| train → eval | B vs A | metric | A | B | B − A | interval | p | p (Holm) |\n|---|---|---|---:|---:|---:|---|---:|---:|\n";
        for d in results {
            for c in &d.comparisons {
                for m in &c.comparison.metrics {
                    let t = &m.test;
                    let digits = if m.metric == HeadlineMetric::RankDistance { 1 } else { 4 };
                    s += &format!(
                        "| {} → {} | {} vs {} | {} | {:.digits$} | {:.digits$} | {:+.digits$}{} | [{:+.digits$}, {:+.digits$}] | {:.4} | {:.4} |\n",
                        d.train,
                        d.eval,
                        c.b,
                        c.a,
                        column_title(m.metric),
                        t.mean_a,
                        t.mean_b,
                        t.difference,
                        if m.significant { " *" } else { "" },
                        t.ci_low,
                        t.ci_high,
                        t.p_value,
                        m.p_holm
                    );
                }
            }
        }
    }
    for d in results {
        for m in &d.models {
            s += &format!(
                "\n**mAP matrix, {} (trained on {}), eval {}: rows = query language, columns = candidate language (×100)**\n\n",
                shown(m),
                d.train,
                d.eval
            );
            let langs = &m.report.languages;
            s += &format!("| q \\ c | {} |\n|---|{}\n", langs.join(" | "), "---:|".repeat(langs.len()));
            for (x, row) in langs.iter().zip(m.report.map_matrix()) {
                let cells: Vec<String> =
                    row.iter().map(|v| v.map(|v| format!("{:.1}", v * 100.0)).unwrap_or_else(|| "–".into())).collect();
                s += &format!("| {x} | {} |\n", cells.join(" | "));
            }
        }
    }
    s
}

/// A model's name in tables and logs: its sampler label, with the seed when there are several.
fn shown_label(label: &str, seed: Option<u64>, seeds: usize) -> String {
    match seed {
        Some(seed) if seeds > 1 => format!("{label} (seed {seed})"),
        _ => label.to_string(),
    }
}

/// Column title of a headline metric in the tables.
fn column_title(metric: HeadlineMetric) -> &'static str {
    match metric {
        HeadlineMetric::MapMono => "mAP mono",
        HeadlineMetric::MapCross => "mAP cross",
        HeadlineMetric::MapMulti => "mAP multi",
        HeadlineMetric::RankDistance => "rank distance",
        HeadlineMetric::RecallAt1Mono => "R@1 mono",
        HeadlineMetric::RecallAt1Cross => "R@1 cross",
        HeadlineMetric::RecallAt10Multi => "R@10 multi",
    }
}

/// `mean ± sd [low, high]` with the table's digits.
fn seed_cell(metric: HeadlineMetric, v: &SeedSummary) -> String {
    let digits = if metric == HeadlineMetric::RankDistance { 1 } else { 4 };
    match (v.sd, v.ci_low, v.ci_high) {
        (Some(sd), Some(lo), Some(hi)) => format!("{:.digits$} ± {sd:.digits$} [{lo:.digits$}, {hi:.digits$}]", v.mean),
        _ => format!("{:.digits$}", v.mean),
    }
}
