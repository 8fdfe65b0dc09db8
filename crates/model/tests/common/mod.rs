//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use hybrid_ir_model::{LoadOptions, SentenceEncoder};

/// `models/` of the workspace, or `$HYBRID_IR_MODELS`. The package dir is read at run time first,
/// as `hybrid_ir_data::paths::package_dir` does (this crate does not depend on the data crate).
pub fn models_dir() -> PathBuf {
    std::env::var_os("HYBRID_IR_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())).join("../../models"))
}

/// A fetched model directory; panics with the setup command when it is missing.
pub fn model_dir(name: &str) -> PathBuf {
    let dir = models_dir().join(name);
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run `cargo xtask fetch-models` first",
        dir.display()
    );
    dir
}

/// Loads a fetched model on `device` with the directory's own settings.
pub fn load(name: &str, device: &burn::tensor::Device) -> SentenceEncoder {
    SentenceEncoder::load(&model_dir(name), device, &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// Largest absolute component difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Cosine similarity in f64.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}
