//! `speed all`: the benchmark matrix, each configuration in its own process.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use hybrid_ir_model::DeviceSpec;
use serde_json::Value;

use crate::report::print_tables;

/// Arguments of `speed all`.
#[derive(clap::Args, Debug, Clone)]
pub struct AllArgs {
    /// Hugging Face model directory (the PyTorch side loads the same one).
    #[arg(long, default_value = "models/multilingual-e5-small")]
    pub model: PathBuf,
    /// Data root (default: $HYBRID_IR_DATA, else ../shared/data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Working directory for the prepared inputs.
    #[arg(long, default_value = "target/speed")]
    pub work: PathBuf,
    /// JSON lines of every run are written here.
    #[arg(long, default_value = "target/speed/results.jsonl")]
    pub out: PathBuf,
    /// Python interpreter with torch + transformers (default: ~/.cache/hybrid-ir/torch-venv, else python3).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the PyTorch runs (no ratios then).
    #[arg(long)]
    pub no_pytorch: bool,
    /// Pairs per training batch.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Timed training steps per configuration (after 2 warm-up steps); a multiple of the 4
    /// prepared batches weighs every batch alike.
    #[arg(long, default_value_t = 8)]
    pub steps: usize,
    /// XQuAD-R candidates encoded per engine (0 = all 13,014).
    #[arg(long, default_value_t = 2000)]
    pub sequences: usize,
    /// Rows per chunk for the length-sorted configurations (lever 1).
    #[arg(long, default_value_t = 8)]
    pub sorted_chunk: usize,
    /// Threads for PyTorch (the Rust engines use every core: rayon / OpenMP).
    #[arg(long, default_value_t = std::thread::available_parallelism().map_or(1, |n| n.get()))]
    pub threads: usize,
}

/// Runs the matrix and prints the tables.
pub fn run_all(args: &AllArgs) -> Result<()> {
    let exe = std::env::current_exe().context("locating the speed binary")?;
    let python = args.python.clone().unwrap_or_else(crate::default_python);
    let script = hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("pytorch_bench.py");
    let model = args.model.display().to_string();
    let work = args.work.display().to_string();
    let batches = args.work.join("batches.json").display().to_string();
    let sequences = args.work.join("sequences.json").display().to_string();

    let mut prepare = vec!["prepare".to_string(), "--model".into(), model.clone(), "--out".into(), work];
    prepare.extend(["--batch".into(), args.batch.to_string(), "--sequences".into(), args.sequences.to_string()]);
    if let Some(d) = &args.data {
        prepare.extend(["--data".into(), d.display().to_string()]);
    }
    run_json(Command::new(&exe).args(&prepare), "prepare")?;

    let machine = crate::machine::describe();
    eprintln!("{}", crate::machine::summary(&machine));
    let mut results: Vec<Value> = vec![machine];
    let devices = DeviceSpec::compiled_cpu_devices();
    let steps = args.steps.to_string();
    let chunk = args.sorted_chunk.to_string();
    let threads = args.threads.to_string();

    // GEMM peak of each engine: the physical limit the training step is measured against.
    for d in &devices {
        results.push(run_json(Command::new(&exe).args(["gemm", "--device", &d.to_string()]), "gemm")?);
    }
    if !args.no_pytorch {
        results.push(run_json(Command::new(&python).arg(&script).args(["gemm", "--n", "1024", "--threads", &threads]), "pytorch gemm")?);
    }

    // Training step: PyTorch's algorithm first (one padded block, plain backward, all
    // parameters), then lever 1 (length-sorted chunks), then levers 1 + 2 (frozen embeddings).
    let variants: [(&str, Vec<&str>); 3] = [
        ("same algorithm", vec![]),
        ("lever 1: sorted chunks", vec!["--sort-by-length", "--chunk-size", &chunk]),
        ("levers 1+2: + frozen embeddings", vec!["--sort-by-length", "--chunk-size", &chunk, "--freeze-embeddings"]),
    ];
    // LibTorch only: the same step with burn's own decomposed ops (what the fused kernels
    // replace) and with bf16 matmuls (mixed precision; the CPU here has AVX512-BF16).
    let libtorch_variants: [(&str, Vec<&str>); 2] =
        [("same algorithm, burn's ops", vec!["--burn-kernels"]), ("bf16 matmuls", vec!["--bf16"])];
    for d in &devices {
        let extra_variants = if matches!(d, DeviceSpec::Flex) { &[][..] } else { &libtorch_variants[..] };
        for (label, extra) in variants.iter().chain(extra_variants) {
            let mut cmd = Command::new(&exe);
            cmd.args(["train-step", "--model", &model, "--batches", &batches, "--device", &d.to_string(), "--steps", &steps]);
            cmd.args(extra);
            let mut v = run_json(&mut cmd, &format!("train-step {d} {label}"))?;
            v["variant"] = Value::from(*label);
            results.push(v);
        }
    }
    if !args.no_pytorch {
        for (label, extra) in [
            ("same algorithm", vec![]),
            ("frozen embeddings", vec!["--freeze-embeddings"]),
            ("bf16 autocast", vec!["--dtype", "bf16"]),
        ] {
            let mut cmd = Command::new(&python);
            cmd.arg(&script).args(["train-step", "--model", &model, "--batches", &batches, "--steps", &steps, "--threads", &threads]);
            cmd.args(extra);
            let mut v = run_json(&mut cmd, &format!("pytorch train-step {label}"))?;
            v["variant"] = Value::from(label);
            results.push(v);
        }
    }

    // Encoding: length-sorted batches of 64 on every engine.
    for d in &devices {
        results.push(run_json(
            Command::new(&exe).args(["encode", "--model", &model, "--sequences", &sequences, "--device", &d.to_string()]),
            &format!("encode {d}"),
        )?);
    }
    if !args.no_pytorch {
        results.push(run_json(
            Command::new(&python).arg(&script).args(["encode", "--model", &model, "--sequences", &sequences, "--batch", "64", "--threads", &threads]),
            "pytorch encode",
        )?);
    }

    if let Some(parent) = args.out.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let lines: Vec<String> = results.iter().map(Value::to_string).collect();
    std::fs::write(&args.out, lines.join("\n") + "\n").with_context(|| format!("writing {}", args.out.display()))?;
    print_tables(&results);
    eprintln!("results: {}", args.out.display());
    Ok(())
}

/// Runs a child that prints one JSON line last on stdout; its stderr passes through.
pub(crate) fn run_json(cmd: &mut Command, what: &str) -> Result<Value> {
    eprintln!("== {what}");
    let out = cmd.stderr(std::process::Stdio::inherit()).output().with_context(|| format!("starting {what}"))?;
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find(|l| l.trim_start().starts_with('{')).with_context(|| format!("{what}: no JSON line"))?;
    serde_json::from_str(last).with_context(|| format!("{what}: bad JSON line {last}"))
}
