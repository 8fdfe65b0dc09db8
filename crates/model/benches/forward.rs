//! Forward-throughput bench: sequences/s for a [32, 128] batch with multilingual-e5-small on
//! every compiled-in CPU device (Flex; LibTorch CPU with feature `tch`), next to PyTorch
//! `transformers` on the same machine in the same run (ratio printed).
//!
//! `cargo bench -p hybrid-ir-model --bench forward` (needs `cargo xtask fetch-models`).
//! PyTorch runs through `$HYBRID_IR_PYTHON` (default `python3`); if it has no torch, that row is
//! reported as unavailable. `BENCH_ITERS` sets the timed iterations (default 5, after 1 warm-up).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use hybrid_ir_model::{DeviceSpec, LoadOptions, SentenceEncoder, TokenBatch};

const BATCH: usize = 32;
const LEN: usize = 128;
const WARMUP: usize = 1;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let iters: usize = std::env::var("BENCH_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()));
    let dir = std::env::var_os("HYBRID_IR_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../../models"))
        .join("multilingual-e5-small");
    assert!(dir.join("model.safetensors").is_file(), "{} is missing: run `cargo xtask fetch-models`", dir.display());

    // Synthetic ids shared with forward_torch.py; every position is a real token.
    let seqs: Vec<Vec<u32>> =
        (0..BATCH).map(|i| (0..LEN).map(|j| 5 + ((i * 7919 + j * 104729) % 30000) as u32).collect()).collect();
    let batch = TokenBatch::from_sequences(&seqs, 1);

    println!("forward throughput, multilingual-e5-small, batch {BATCH} x {LEN} tokens, median of {iters} after {WARMUP} warm-up");
    let mut rust_rates = Vec::new();
    for spec in DeviceSpec::compiled_cpu_devices() {
        let device = spec.device();
        let model = SentenceEncoder::load(&dir, &device, &LoadOptions::default()).expect("load e5");
        let mut times = Vec::new();
        for k in 0..WARMUP + iters {
            let t = Instant::now();
            let out = model.embed_token_batch(&batch).expect("forward");
            assert_eq!(out.len(), BATCH);
            if k >= WARMUP {
                times.push(t.elapsed().as_secs_f64());
            }
        }
        let m = median(times);
        println!("  hybrid-ir {spec:<8} {m:8.3} s/batch  {:8.1} seq/s", BATCH as f64 / m);
        rust_rates.push((spec, BATCH as f64 / m));
    }

    let python = std::env::var("HYBRID_IR_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = manifest.join("benches/forward_torch.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(&dir)
        .args([BATCH, LEN, WARMUP, iters].map(|v| v.to_string()))
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let line = String::from_utf8_lossy(&out.stdout);
            let json: serde_json::Value = serde_json::from_str(line.trim()).expect("forward_torch.py prints JSON");
            let m = json["median_s"].as_f64().expect("median_s");
            let torch_rate = BATCH as f64 / m;
            println!("  PyTorch {} ({} threads) {m:8.3} s/batch  {torch_rate:8.1} seq/s", json["torch"], json["threads"]);
            for (spec, rate) in rust_rates {
                println!("  ratio hybrid-ir {spec} / PyTorch = {:.2}", rate / torch_rate);
            }
        }
        Ok(out) => println!("  PyTorch: unavailable ({python} failed: {})", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")),
        Err(e) => println!("  PyTorch: unavailable ({python}: {e})"),
    }
}
