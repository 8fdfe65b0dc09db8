//! The same run on another backend: one short training run on burn's pure-Rust Flex CPU
//! backend and, in a build with `--features tch`, on LibTorch's CPU backend (`tch-cuda:0` on a
//! GPU works the same way). The trainer, sampler and loss do not change; only the `Device`.
//!
//! `cargo run --release --example swap_backend` (add `--features tch` with LIBTORCH set)

use std::sync::Arc;

use hybrid_ir::data::{LareqaBenchmark, NegativePolicy, resolve_data_dir};
use hybrid_ir::model::DeviceSpec;
use hybrid_ir::prelude::*;
use hybrid_ir::train::ScheduleSection;

/// Training losses of `steps` steps on each compiled-in CPU device.
pub fn run(out: &std::path::Path, steps: u64) -> Result<Vec<(String, Vec<f64>)>, Box<dyn std::error::Error>> {
    let models = hybrid_ir::data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("models");
    let base = ModelInfo::read(&models.join("all-MiniLM-L6-v2"), &LoadOptions::default())?;
    let info = ModelInfo::static_from(base.bert().ok_or("not a transformer")?, true, false);
    let corpus = ParallelCorpus::from_lareqa(&LareqaBenchmark::XquadR.load(&resolve_data_dir(None))?, NegativePolicy::None)?;
    let corpus = Arc::new(corpus.restrict_languages(&["en", "es"])?);
    let mut results = Vec::new();
    for spec in DeviceSpec::compiled_cpu_devices() {
        let device = spec.try_device()?;
        let sampler =
            SamplerConfig { batch_size: 16, seed: 9, ..SamplerConfig::new(SamplerKind::Cross) }.build(corpus.clone())?;
        let settings = TrainerSettings {
            schedule: ScheduleSection { steps, val_every: 0, save_every: 0, ..ScheduleSection::default() },
            ..TrainerSettings::default()
        };
        let run_dir = out.join(spec.to_string());
        Trainer::builder(info.load(&device)?, TextPipeline::of_model(&info)?, sampler, &run_dir)
            .device(device)
            .settings(settings)
            .build(&RunOptions::default())?
            .run(&RunOptions::default())?;
        let losses = std::fs::read_to_string(run_dir.join("metrics.jsonl"))?
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["kind"] == "train")
            .filter_map(|e| e["loss"].as_f64())
            .collect();
        results.push((spec.to_string(), losses));
    }
    Ok(results)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::temp_dir().join("hybrid-ir-swap-backend");
    let _ = std::fs::remove_dir_all(&out);
    for (device, losses) in run(&out, 5)? {
        println!("{device}: {losses:.5?}");
    }
    Ok(())
}

#[test]
fn runs() {
    let dir = tempfile::tempdir().unwrap();
    let results = run(dir.path(), 3).unwrap();
    let (_, reference) = &results[0];
    assert_eq!(reference.len(), 3);
    // A static model has no dropout: every backend computes the same function, so the losses
    // agree to float rounding.
    for (device, losses) in &results[1..] {
        for (a, b) in reference.iter().zip(losses) {
            assert!((a - b).abs() <= 1e-4 * a.abs().max(1.0), "{device}: {losses:?} vs flex {reference:?}");
        }
    }
}
