//! Single benchmark runs. Each prints one JSON line on stdout (logs go to stderr), so the
//! driver (`speed all`) and the GPU script can collect them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::tensor::{Distribution, Tensor};
use hybrid_ir_data::sampler::{SamplerConfig, SamplerKind};
use hybrid_ir_data::{LareqaBenchmark, NegativePolicy, ParallelCorpus, resolve_data_dir};
use hybrid_ir_eval::{TokenizedBenchmark, load_benchmark};
use hybrid_ir_loss::{LossConfig, LossKind};
use hybrid_ir_model::{
    AnyEncoder, Backbone, DeviceSpec, LoadOptions, ModelInfo, TextKind, TextPipeline, count_parameters, embed_sequences,
};
use hybrid_ir_train::{OptimSection, StepRunner, StepSettings, TokenizedBatch};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Tokenized training batches, the format `benches/pytorch_bench.py` reads too.
#[derive(Serialize, Deserialize)]
pub struct BatchesFile {
    /// Padding id of the model.
    pub pad_id: u32,
    /// Batches of unpadded token ids (prefixes and special tokens included).
    pub batches: Vec<PairBatch>,
}

/// One contrastive batch.
#[derive(Serialize, Deserialize)]
pub struct PairBatch {
    /// Query token ids.
    pub queries: Vec<Vec<u32>>,
    /// Positive passage token ids, aligned with `queries`.
    pub passages: Vec<Vec<u32>>,
}

/// Unpadded sequences to encode, the format `benches/pytorch_bench.py encode` reads too.
#[derive(Serialize, Deserialize)]
pub struct SequencesFile {
    /// Padding id of the model.
    pub pad_id: u32,
    /// Token ids.
    pub sequences: Vec<Vec<u32>>,
}

/// Arguments of `speed prepare`.
#[derive(clap::Args, Debug, Clone)]
pub struct PrepareArgs {
    /// Hugging Face model directory (tokenizer and prefixes come from it).
    #[arg(long)]
    pub model: PathBuf,
    /// Data root (default: $HYBRID_IR_DATA, else ../shared/data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Output directory: batches.json and sequences.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Pairs per training batch.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Training batches to write (steps cycle through them).
    #[arg(long, default_value_t = 4)]
    pub batches: usize,
    /// Query truncation (tokens, special tokens included).
    #[arg(long, default_value_t = 32)]
    pub query_len: usize,
    /// Passage truncation.
    #[arg(long, default_value_t = 128)]
    pub passage_len: usize,
    /// XQuAD-R candidates to write for the encoding benchmark (0 = all 13,014), taken evenly
    /// across the set so every language is in.
    #[arg(long, default_value_t = 2000)]
    pub sequences: usize,
}

/// `speed prepare`: hybrid (alpha 0.5) MLQA-R batches and XQuAD-R candidate sequences.
pub fn prepare(args: &PrepareArgs) -> Result<()> {
    let info = ModelInfo::read(&args.model, &LoadOptions::default())?;
    let pipeline = TextPipeline::new(&info, info.prefixes.clone(), args.query_len, args.passage_len)?;
    let root = resolve_data_dir(args.data.as_deref());
    let mlqa = LareqaBenchmark::MlqaR.load(&root)?;
    let corpus = Arc::new(ParallelCorpus::from_lareqa(&mlqa, NegativePolicy::None)?);
    let mut config = SamplerConfig::new(SamplerKind::Hybrid);
    config.batch_size = args.batch;
    let mut sampler = config.build(corpus)?;
    let batches = (0..args.batches)
        .map(|_| {
            let t = TokenizedBatch::new(&pipeline, &sampler.next_batch())?;
            Ok(PairBatch { queries: t.queries, passages: t.positives })
        })
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(&args.out)?;
    write_json(&args.out.join("batches.json"), &BatchesFile { pad_id: pipeline.pad_id(), batches })?;

    let bench = load_benchmark("xquad-r", args.data.as_deref(), &[])?;
    let n = bench.candidates.len();
    let take = if args.sequences == 0 { n } else { args.sequences.min(n) };
    let texts: Vec<&str> = (0..take).map(|k| &*bench.candidates[k * n / take].sentence).collect();
    let sequences = pipeline.tokenize(&texts, TextKind::Passage)?;
    write_json(&args.out.join("sequences.json"), &SequencesFile { pad_id: pipeline.pad_id(), sequences })?;
    println!("{}", json!({"mode": "prepare", "out": args.out, "batches": args.batches, "batch": args.batch, "sequences": take}));
    Ok(())
}

/// Arguments of `speed train-step`.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainStepArgs {
    /// Hugging Face model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Batches written by `speed prepare`.
    #[arg(long)]
    pub batches: PathBuf,
    /// `cpu` (Flex), `tch-cpu`, `tch-cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Untimed steps first.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Timed steps (batch i % batches each).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Rows per chunk (0 = the whole batch in one chunk, PyTorch's algorithm).
    #[arg(long, default_value_t = 0)]
    pub chunk_size: usize,
    /// Chunk rows longest first (lever 1: with small chunks, almost no padding).
    #[arg(long)]
    pub sort_by_length: bool,
    /// GradCache step (one extra forward, bounded memory) instead of one plain backward.
    #[arg(long)]
    pub cached: bool,
    /// Freeze the embedding block (lever 2: no gradient or AdamW state for the 250k-row matrix).
    #[arg(long)]
    pub freeze_embeddings: bool,
    /// Learning rate.
    #[arg(long, default_value_t = 3e-5)]
    pub lr: f64,
    /// burn's decomposed LayerNorm / softmax / dropout ops on LibTorch too, instead of libtorch's
    /// fused kernels (`hybrid_ir_model::kernels`); for comparison.
    #[arg(long)]
    pub burn_kernels: bool,
    /// Mixed precision (`[model] bf16_matmuls`): layer matmuls in bf16, the rest in f32.
    #[arg(long)]
    pub bf16: bool,
    /// Split every batch over MPI ranks when started by `mpiexec -n N` (auto), or not (off);
    /// needs `--cached`. The JSON line (rank 0's) adds the ranks and the bytes sent per step.
    #[arg(long, value_name = "MODE", default_value = "auto", value_parser = hybrid_ir_collective::DistributedChoice::parse)]
    pub distributed: hybrid_ir_collective::DistributedChoice,
}

/// The PyTorch baseline's algorithm as typed trainer parts: in-batch InfoNCE on cosine / 0.05,
/// AdamW (0.9, 0.999, 1e-8, wd 0.01), no clipping, no group masking (the sampler's batches have
/// no duplicate answers, and PyTorch's side has no mask).
fn bench_runner(args: &TrainStepArgs, batch_size: usize) -> Result<(StepRunner, StepSettings)> {
    let chunk = if args.chunk_size == 0 { batch_size.max(1) } else { args.chunk_size };
    let loss =
        LossConfig { kind: LossKind::InBatch, temperature: 0.05, mask_same_group: false, ..LossConfig::default() }.build()?;
    let step = StepSettings { chunk_size: chunk, cached: args.cached, sort_by_length: args.sort_by_length };
    let optim = OptimSection { lr: args.lr, weight_decay: 0.01, eps: 1e-8, grad_clip_norm: Some(0.0), ..OptimSection::default() };
    Ok((StepRunner::new(&optim, loss, &step, 42)?, step))
}

/// `speed train-step`.
pub fn train_step(args: &TrainStepArgs) -> Result<()> {
    let file: BatchesFile = read_json(&args.batches)?;
    if file.batches.is_empty() {
        bail!("{}: no batches", args.batches.display());
    }
    let batch_size = file.batches[0].queries.len();
    let (runner, step) = bench_runner(args, batch_size)?;
    let collective: std::sync::Arc<dyn hybrid_ir_collective::Collective> = std::sync::Arc::from(args.distributed.connect()?);
    let mut runner = runner.with_collective(collective.clone())?;
    hybrid_ir_model::kernels::set_libtorch_kernels(!args.burn_kernels);
    let info = ModelInfo::read(&args.model, &LoadOptions::default())?;
    let device = args.device.try_device()?.autodiff();
    let mut model = info.load(&device)?.with_training_settings(None, args.freeze_embeddings, args.bf16);
    let (_, trainable) = count_parameters(&model);
    let batches: Vec<TokenizedBatch> = file
        .batches
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if b.queries.len() != b.passages.len() {
                bail!("{}: batch {i} has {} queries and {} passages", args.batches.display(), b.queries.len(), b.passages.len());
            }
            Ok(TokenizedBatch {
                queries: b.queries.clone(),
                positives: b.passages.clone(),
                negatives: Vec::new(),
                group_keys: (0..b.queries.len() as u64).collect(),
                pad_id: file.pad_id,
                chunk_orders: Default::default(),
            }
            .with_chunk_order(step.sort_by_length))
        })
        .collect::<Result<_>>()?;

    let (mut step_s, mut grad_s, mut opt_s, mut losses) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut padded, mut real) = (0usize, 0usize);
    // Under `speed op-count`: the timed steps' operators go to the preloaded counter.
    let op_count_out = crate::opcount::start_counting()?;
    for i in 0..args.warmup + args.steps {
        let batch = &batches[i % batches.len()];
        crate::opcount::count_step(op_count_out.is_some() && i >= args.warmup);
        let started = Instant::now();
        // `gradients` reads the loss and the gradient norm back to the host: a sync point.
        let out = runner.gradients(&model, i as u64 + 1, std::slice::from_ref(batch))?;
        let after_grads = Instant::now();
        model = runner.apply(model, out.grads, args.lr)?;
        sync(&model)?;
        let done = Instant::now();
        losses.push(out.losses[0]);
        if i >= args.warmup {
            step_s.push((done - started).as_secs_f64());
            grad_s.push((after_grads - started).as_secs_f64());
            opt_s.push((done - after_grads).as_secs_f64());
            let (p, r) = batch.token_counts(step.chunk_size);
            padded += p;
            real += r;
        }
        eprintln!("step {i}: loss {:.4}, {:.3} s", out.losses[0], (done - started).as_secs_f64());
    }
    if let Some(out) = &op_count_out {
        crate::opcount::finish_counting(out)?;
    }
    let sent_per_step = collective.bytes_sent() as f64 / (args.warmup + args.steps).max(1) as f64;
    if collective.rank() != 0 {
        return Ok(());
    }
    let step_median = median(&step_s);
    let total: f64 = step_s.iter().sum();
    let steps = args.steps.max(1);
    println!(
        "{}",
        json!({
            "engine": engine_name(args.device),
            "mode": "train-step",
            "device": args.device.to_string(),
            "model": info.name,
            "batch_size": batch_size,
            "chunk_size": step.chunk_size,
            "sort_by_length": args.sort_by_length,
            "cached": args.cached,
            "freeze_embeddings": args.freeze_embeddings,
            "burn_kernels": args.burn_kernels,
            "bf16": args.bf16,
            "updated_params": trainable,
            "steps": args.steps,
            "step_s_median": step_median,
            "step_s_all": step_s,
            "grad_s_median": median(&grad_s),
            "grad_s_all": grad_s,
            "opt_s_median": median(&opt_s),
            "examples_per_s": batch_size as f64 / step_median,
            "real_tokens_per_s": real as f64 / total,
            "padded_tokens": padded / steps,
            "real_tokens": real / steps,
            "peak_rss_bytes": peak_rss_bytes(),
            "losses": losses,
            "ranks": collective.world_size(),
            "bytes_sent_per_step_per_rank": sent_per_step,
            "threads_per_rank": rayon::current_num_threads(),
        })
    );
    Ok(())
}

/// Arguments of `speed encode`.
#[derive(clap::Args, Debug, Clone)]
pub struct EncodeArgs {
    /// Hugging Face model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Sequences written by `speed prepare`.
    #[arg(long)]
    pub sequences: PathBuf,
    /// `cpu` (Flex), `tch-cpu`, `tch-cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Sequences per forward pass (length-sorted).
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Untimed passes over the first batch first.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Mixed precision: the layers' matmuls in bf16 (`BertEncoder::bf16_matmuls`).
    #[arg(long)]
    pub bf16: bool,
    /// burn's decomposed LayerNorm / softmax / dropout ops on LibTorch too, instead of libtorch's
    /// fused kernels (`hybrid_ir_model::kernels`); for comparison.
    #[arg(long)]
    pub burn_kernels: bool,
}

/// `speed encode`.
pub fn encode(args: &EncodeArgs) -> Result<()> {
    let file: SequencesFile = read_json(&args.sequences)?;
    hybrid_ir_model::kernels::set_libtorch_kernels(!args.burn_kernels);
    let (info, model) = load_plain(&args.model, args.device)?;
    let model = model.with_training_settings(None, false, args.bf16);
    for _ in 0..args.warmup {
        let n = args.batch.min(file.sequences.len());
        embed_sequences(&model, &file.sequences[..n], file.pad_id, args.batch, |_| {})?;
    }
    let started = Instant::now();
    embed_sequences(&model, &file.sequences, file.pad_id, args.batch, |_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    let real: usize = file.sequences.iter().map(Vec::len).sum();
    println!(
        "{}",
        json!({
            "engine": engine_name(args.device),
            "mode": "encode",
            "device": args.device.to_string(),
            "model": info.name,
            "sequences": file.sequences.len(),
            "batch": args.batch,
            "sorted": true,
            "burn_kernels": args.burn_kernels,
            "bf16": args.bf16,
            "seconds": seconds,
            "seq_per_s": file.sequences.len() as f64 / seconds,
            "real_tokens": real,
            "real_tokens_per_s": real as f64 / seconds,
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
    Ok(())
}

/// Arguments of `speed eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// Hugging Face model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Data root (default: $HYBRID_IR_DATA, else ../shared/data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// `xquad-r` or `mlqa-r`.
    #[arg(long, default_value = "xquad-r")]
    pub benchmark: String,
    /// `cpu` (Flex), `tch-cpu`, `tch-cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Sequences per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Truncation of queries and candidates (tokens).
    #[arg(long, default_value_t = 128)]
    pub max_len: usize,
}

/// `speed eval`: tokenize, encode (length-sorted) and evaluate a whole benchmark.
pub fn eval(args: &EvalArgs) -> Result<()> {
    let (info, model) = load_plain(&args.model, args.device)?;
    let pipeline = TextPipeline::new(&info, info.prefixes.clone(), args.max_len, args.max_len)?;
    let t0 = Instant::now();
    let bench = TokenizedBenchmark::new(load_benchmark(&args.benchmark, args.data.as_deref(), &[])?, &pipeline)?;
    let t1 = Instant::now();
    let nq = bench.queries.len();
    let embeddings = bench.encode(&model, &pipeline, args.batch, |_| {})?;
    let t2 = Instant::now();
    let report = bench.evaluate_embeddings(embeddings)?;
    let t3 = Instant::now();
    let s = &report.settings;
    println!(
        "{}",
        json!({
            "engine": engine_name(args.device),
            "mode": "eval",
            "device": args.device.to_string(),
            "model": info.name,
            "benchmark": args.benchmark,
            "queries": nq,
            "candidates": bench.candidates.len(),
            "load_tokenize_s": (t1 - t0).as_secs_f64(),
            "encode_s": (t2 - t1).as_secs_f64(),
            "metrics_s": (t3 - t2).as_secs_f64(),
            "total_s": (t3 - t0).as_secs_f64(),
            "map_mono": s.mono.map,
            "map_cross": s.cross.map,
            "map_multi": s.multi.map,
            "rank_distance": s.multi.rank_distance,
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
    Ok(())
}

/// Arguments of `speed compare-devices`.
#[derive(clap::Args, Debug, Clone)]
pub struct CompareArgs {
    /// Hugging Face model directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Sequences written by `speed prepare`.
    #[arg(long)]
    pub sequences: PathBuf,
    /// Reference device.
    #[arg(long, default_value = "tch-cpu")]
    pub a: DeviceSpec,
    /// Device under test.
    #[arg(long, default_value = "tch-cuda:0")]
    pub b: DeviceSpec,
    /// Sequences compared (the first N).
    #[arg(long, default_value_t = 256)]
    pub limit: usize,
    /// Largest allowed max |difference|; exit status 1 above it.
    #[arg(long, default_value_t = 1e-3)]
    pub tolerance: f32,
}

/// `speed compare-devices`.
pub fn compare_devices(args: &CompareArgs) -> Result<()> {
    let file: SequencesFile = read_json(&args.sequences)?;
    let seqs = &file.sequences[..args.limit.min(file.sequences.len())];
    let embed = |spec: DeviceSpec| -> Result<ndarray::Array2<f32>> {
        let (_, model) = load_plain(&args.model, spec)?;
        Ok(embed_sequences(&model, seqs, file.pad_id, 64, |_| {})?)
    };
    let a = embed(args.a)?;
    let b = embed(args.b)?;
    let max_abs = a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    let ok = max_abs <= args.tolerance;
    println!(
        "{}",
        json!({"mode": "compare-devices", "a": args.a.to_string(), "b": args.b.to_string(), "sequences": seqs.len(),
               "max_abs_diff": max_abs, "tolerance": args.tolerance, "ok": ok})
    );
    if !ok {
        bail!("max |{} - {}| = {max_abs:e} exceeds {:e}", args.a, args.b, args.tolerance);
    }
    Ok(())
}

/// Arguments of `speed gemm`.
#[derive(clap::Args, Debug, Clone)]
pub struct GemmArgs {
    /// `cpu` (Flex), `tch-cpu`, `tch-cuda:N`.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Square matrix size.
    #[arg(long, default_value_t = 1024)]
    pub n: usize,
    /// Products per timing.
    #[arg(long, default_value_t = 20)]
    pub reps: usize,
}

/// `speed gemm`: f32 n×n products, median of 3 timings of `reps` independent products, each
/// read back to the host (so a lazy or asynchronous backend cannot skip or defer work; the
/// n² read-back is < 1% of the n³ product at n = 1024).
pub fn gemm(args: &GemmArgs) -> Result<()> {
    let device = args.device.device();
    let a = Tensor::<2>::random([args.n, args.n], Distribution::Default, &device);
    let b = Tensor::<2>::random([args.n, args.n], Distribution::Default, &device);
    let _ = a.clone().matmul(b.clone()).into_data();
    let mut times = Vec::new();
    let mut checksum = 0.0f64;
    for _ in 0..3 {
        let started = Instant::now();
        for r in 0..args.reps {
            // A different left operand each time: nothing can be reused between products.
            let left = a.clone().add_scalar(r as f64);
            // The product path the encoder's dense layers take (on Flex: a direct gemm call).
            // One value read back: it waits for the product (CUDA is asynchronous) without timing
            // a copy of the whole result (64 MB at n = 4096, as long as the product on a GPU).
            let product = hybrid_ir_model::kernels::matmul(left, b.clone()).slice([0..1, 0..1]).into_data();
            checksum += f64::from(product.as_slice::<f32>().map_or(0.0, |v| v[0]));
        }
        times.push(started.elapsed().as_secs_f64() / args.reps as f64);
    }
    let t = median(&times);
    let gflops = 2.0 * (args.n as f64).powi(3) / t / 1e9;
    println!(
        "{}",
        json!({"engine": engine_name(args.device), "mode": "gemm", "device": args.device.to_string(), "n": args.n,
               "gflops": gflops, "checksum": checksum})
    );
    Ok(())
}

fn load_plain(dir: &Path, spec: DeviceSpec) -> Result<(ModelInfo, AnyEncoder)> {
    let info = ModelInfo::read(dir, &LoadOptions::default())?;
    let model = info.load(&spec.try_device()?).with_context(|| format!("loading {}", dir.display()))?;
    Ok((info, model))
}

/// Waits for queued device work (CUDA is asynchronous) so timings cover it.
fn sync<B: Backbone>(model: &B) -> Result<()> {
    model.device().sync().map_err(|e| anyhow::anyhow!("device sync failed: {e:?}"))
}

/// `hybrid-ir/<backend>` name used in the tables.
pub fn engine_name(spec: DeviceSpec) -> String {
    match spec.to_string().as_str() {
        "cpu" => "hybrid-ir/flex".into(),
        other => format!("hybrid-ir/{other}"),
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

/// Peak resident set size of this process (`VmHWM`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    std::fs::write(path, serde_json::to_vec(value)?).with_context(|| format!("writing {}", path.display()))
}
