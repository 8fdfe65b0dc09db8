//! The paper's comparison (Tables 1 and 2) at a chosen budget: from one start model, train one
//! model per sampler (X-X-mono = α 1, X-Y = α 0, Hybrid = α 0.5 by default) on one benchmark,
//! evaluate each and the untouched start model on the other, and render the tables and the
//! language × language mAP matrices. Optionally also the reverse direction.
//!
//! Every run is an ordinary [`crate::train`] run in `out_dir/train-<corpus>/<label>/` (so it is
//! resumable: re-running `reproduce` continues or reuses finished runs). With
//! `trainable_layers = k`, evaluation encodes the frozen bottom once per benchmark
//! ([`FrozenPrefixCache`]) and only the top `k` layers per model.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use burn::module::Module;
use hybrid_ir_data::sampler::{SamplerConfig, SamplerKind};
use hybrid_ir_eval::{TokenizedBenchmark, load_benchmark};
use hybrid_ir_metrics::{BenchmarkEmbeddings, LareqaReport};
use hybrid_ir_model::{AnyEncoder, FrozenPrefixCache, load_module_into};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{CheckpointDir, Pointer, verify};
use crate::config::{
    BackboneChoice, DataSection, EvalSection, LossSection, ModelSection, OptimSection, PrefixStyle, ScheduleSection,
    StaticInitChoice, TrainConfig,
};
use crate::error::{Result, TrainError};
use crate::from_config::{model_info, pipeline, train};
use crate::trainer::{RunOptions, StopReason};

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
    /// Master seed (same for every sampler).
    pub seed: u64,
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
    /// Start model first, then one row per α.
    pub models: Vec<ModelResult>,
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

fn run_config(opts: &ReproduceOptions, train_corpus: &str, alpha: f64, run_dir: &Path) -> Result<TrainConfig> {
    let kind = if alpha >= 1.0 {
        SamplerKind::Mono
    } else if alpha <= 0.0 {
        SamplerKind::Cross
    } else {
        SamplerKind::Hybrid
    };
    let config = TrainConfig {
        seed: opts.seed,
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
            negatives: Default::default(),
            languages: Vec::new(),
            // Every sampler is early-stopped on the same validation batches.
            val_sampler: Some(SamplerKind::Hybrid),
            val_alpha: Some(0.5),
        },
        sampler: SamplerConfig { alpha, batch_size: opts.batch_size, seed: opts.seed, ..SamplerConfig::new(kind) },
        loss: LossSection { cached: false, ..LossSection::default() },
        optim: OptimSection { lr: opts.lr, warmup_steps: (opts.steps / 10).max(1).min(opts.steps), ..OptimSection::default() },
        schedule: ScheduleSection {
            steps: opts.steps,
            val_every: (opts.steps / 4).max(1),
            val_batches: 4,
            save_every: 0,
            ..ScheduleSection::default()
        },
        eval: EvalSection::default(),
    };
    config.validate()?;
    Ok(config)
}

fn bar(progress: bool, len: u64, what: &str) -> ProgressBar {
    let bar = if progress { ProgressBar::new(len) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} {msg} ETA {eta_precise}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Trains (or reuses) one model per α on `train_corpus` and evaluates them and the start
/// model on `eval_name`.
fn direction(
    opts: &ReproduceOptions,
    train_corpus: &str,
    eval_name: &str,
    stop: &Option<Arc<AtomicBool>>,
) -> Result<DirectionResult> {
    let spec: hybrid_ir_model::DeviceSpec = opts.device.parse()?;
    let plain = spec.try_device()?;

    // Train first (the expensive, resumable part), then evaluate everything together.
    let mut runs = Vec::new();
    for &alpha in &opts.alphas {
        let label = sampler_label(alpha);
        let run_dir = opts.out_dir.join(format!("train-{}", corpus_component(train_corpus))).join(path_component(&label));
        let config = run_config(opts, train_corpus, alpha, &run_dir)?;
        let resume = CheckpointDir::of_run(&run_dir).resolve(Pointer::Last)?.is_some();
        tracing::info!("{label} (α = {alpha}) on {train_corpus}: {} steps{}", opts.steps, if resume { ", resuming" } else { "" });
        let started = Instant::now();
        let summary =
            train(&config, &RunOptions { resume, stop_flag: stop.clone(), progress: opts.progress, ..Default::default() })?;
        if summary.stop != StopReason::Completed {
            return Err(TrainError::Other(format!(
                "interrupted while training {label}; run the same command again to resume from {}",
                run_dir.display()
            )));
        }
        let val = summary.val_history.first().copied().zip(summary.best_val);
        runs.push((label, alpha, run_dir, val, started.elapsed().as_secs_f64()));
    }

    // Every run of this direction shares the start model, its info and pipeline.
    let first = run_config(opts, train_corpus, opts.alphas[0], &opts.out_dir)?;
    let info = model_info(&first)?;
    let pipeline = pipeline(&first, &info)?;
    let bench = TokenizedBenchmark::new(load_benchmark(eval_name, opts.data_dir.as_deref(), &opts.eval_languages)?, &pipeline)?;
    let base = info.load(&plain)?.valid();
    let nq = bench.queries.len() as u64;
    let nc = bench.candidates.len() as u64;
    // A transformer that trains only its top layers shares its frozen bottom with the start
    // model: encode that once ([`FrozenPrefixCache`]) and only the top per model.
    let caches = match &base {
        AnyEncoder::Bert(bert) => {
            let n_layers = bert.encoder.layer.len();
            let frozen = n_layers - opts.trainable_layers.filter(|&k| k > 0).unwrap_or(n_layers).min(n_layers);
            let b =
                bar(opts.progress, nq + nc, &format!("{eval_name}: encoding the frozen bottom ({frozen} of {n_layers} layers)"));
            let q = FrozenPrefixCache::build(bert, &bench.queries, pipeline.pad_id(), frozen, opts.eval_batch_size, |d| {
                b.set_position(d as u64)
            })?;
            let c = FrozenPrefixCache::build(bert, &bench.candidates, pipeline.pad_id(), frozen, opts.eval_batch_size, |d| {
                b.set_position(nq + d as u64)
            })?;
            b.finish_and_clear();
            Some((q, c))
        }
        AnyEncoder::Static(_) => None,
    };

    let evaluate = |model: &AnyEncoder, label: &str| -> Result<LareqaReport> {
        let b = bar(opts.progress, nq + nc, &format!("{eval_name}: {label}"));
        let embeddings = match (model, &caches) {
            (AnyEncoder::Bert(bert), Some((q_cache, c_cache))) => BenchmarkEmbeddings {
                queries: q_cache.embed(bert, |d| b.set_position(d as u64))?,
                candidates: c_cache.embed(bert, |d| b.set_position(nq + d as u64))?,
            },
            _ => bench.encode(model, &pipeline, opts.eval_batch_size, |d| b.set_position(d as u64))?,
        };
        b.finish_and_clear();
        let report = bench.evaluate_embeddings(embeddings)?;
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
        val: None,
        train_seconds: 0.0,
        report: evaluate(&base, "start model")?,
    }];
    for (label, alpha, run_dir, val, secs) in runs {
        let ckpts = CheckpointDir::of_run(&run_dir);
        let dir = ckpts
            .resolve(Pointer::Best)?
            .or(ckpts.resolve(Pointer::Last)?)
            .ok_or_else(|| TrainError::checkpoint(ckpts.root(), "the finished run has no checkpoint"))?;
        let model = load_module_into(info.skeleton(&plain), &verify(&dir)?.model_path())?.valid();
        let report = evaluate(&model, &label)?;
        models.push(ModelResult { label, alpha: Some(alpha), run_dir: Some(run_dir), val, train_seconds: secs, report });
    }
    Ok(DirectionResult { train: train_corpus.to_string(), eval: eval_name.to_string(), models })
}

/// Runs the comparison; writes `results.json`, `results.md` and one mAP heatmap per model
/// (`heatmap-<train>-to-<eval>-<model>.svg`) to `out_dir` and returns them.
pub fn reproduce(opts: &ReproduceOptions, stop: Option<Arc<AtomicBool>>) -> Result<(Vec<DirectionResult>, String)> {
    if opts.alphas.is_empty() {
        return Err(TrainError::Other("--alphas is empty".into()));
    }
    if let Some(a) = opts.alphas.iter().find(|a| !(0.0..=1.0).contains(*a)) {
        return Err(TrainError::Other(format!("alpha {a} is outside [0, 1]")));
    }
    std::fs::create_dir_all(&opts.out_dir).map_err(|e| TrainError::io(&opts.out_dir, e))?;
    // One `reproduce` per output directory (each training run also locks its own directory).
    let _lock = crate::checkpoint::RunDirLock::acquire(&opts.out_dir)?;
    let started = Instant::now();
    let mut results = vec![direction(opts, &opts.train, &opts.eval, &stop)?];
    if opts.reverse {
        results.push(direction(opts, &opts.eval, &opts.train, &stop)?);
    }
    let markdown = render_markdown(&results, opts, started.elapsed().as_secs_f64());
    let json = serde_json::to_vec_pretty(&(opts, &results)).map_err(|e| TrainError::Other(format!("results: {e}")))?;
    crate::checkpoint::write_atomic(&opts.out_dir.join("results.json"), &json)?;
    crate::checkpoint::write_atomic(&opts.out_dir.join("results.md"), markdown.as_bytes())?;
    for d in &results {
        for m in &d.models {
            let title = format!(
                "{}: mAP of {} trained on {} (rows: query language, columns: candidate language)",
                d.eval, m.label, d.train
            );
            let svg = hybrid_ir_metrics::heatmap::heatmap_svg(&title, &m.report.languages, &m.report.map_matrix());
            let name = format!(
                "heatmap-{}-to-{}-{}.svg",
                corpus_component(&d.train),
                corpus_component(&d.eval),
                path_component(&m.label)
            );
            crate::checkpoint::write_atomic(&opts.out_dir.join(name), svg.as_bytes())?;
        }
    }
    Ok((results, markdown))
}

/// Table 1 (mAP mono / cross / multi), Table 2 (rank distance) and the mAP matrices.
pub fn render_markdown(results: &[DirectionResult], opts: &ReproduceOptions, seconds: f64) -> String {
    let mut s = String::new();
    s += &format!(
        "Model `{}`, {} steps × batch {} per sampler, lr {}, {} layers trained, max len {}/{}, seed {}; total {:.1} min.\n\n",
        opts.model_dir.display(),
        opts.steps,
        opts.batch_size,
        opts.lr,
        opts.trainable_layers.map(|k| format!("top {k}")).unwrap_or_else(|| "all".into()),
        opts.query_max_len,
        opts.passage_max_len,
        opts.seed,
        seconds / 60.0
    );
    s += "**Table 1 style: mAP (macro average)**\n\n| train → eval | model | Mo. | Cr. | Mul. | val loss start → best (step) |\n|---|---|---:|---:|---:|---|\n";
    for d in results {
        for m in &d.models {
            let st = &m.report.settings;
            let val = m.val.map(|((_, a), (step, b))| format!("{a:.4} → {b:.4} ({step})")).unwrap_or_default();
            s += &format!(
                "| {} → {} | {} | {:.4} | {:.4} | {:.4} | {val} |\n",
                d.train, d.eval, m.label, st.mono.map, st.cross.map, st.multi.map
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
                m.label,
                st.multi.rank_distance.unwrap_or(f64::NAN),
                st.mono.recall_at_1,
                st.cross.recall_at_1,
                st.multi.recall_at_10
            );
        }
    }
    for d in results {
        for m in &d.models {
            s += &format!(
                "\n**mAP matrix, {} (trained on {}), eval {}: rows = query language, columns = candidate language (×100)**\n\n",
                m.label, d.train, d.eval
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
