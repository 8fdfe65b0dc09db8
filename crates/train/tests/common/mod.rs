//! Shared helpers of the integration tests: model location and a small, fast CPU config.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hybrid_ir_train::TrainConfig;

/// The workspace root.
pub fn workspace() -> PathBuf {
    hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// A fetched model directory; panics (fails the test) with the setup command when missing.
pub fn model_dir(name: &str) -> PathBuf {
    let dir = workspace().join("models").join(name);
    assert!(
        dir.join("model.safetensors").is_file(),
        "model {} is missing: run `cargo xtask fetch-models` first",
        dir.display()
    );
    dir
}

/// A tiny CPU run on all-MiniLM-L6-v2 over three XQuAD-R languages: batch 8, 32 tokens.
pub fn small_config(output_dir: &Path, steps: u64) -> TrainConfig {
    let text = format!(
        r#"
seed = 7
output_dir = "{out}"

[model]
dir = "{model}"
query_max_len = 24
passage_max_len = 32

[data]
corpora = ["xquad-r"]
languages = ["en", "de", "es"]
holdout_every = 5

[sampler]
kind = "hybrid"
alpha = 0.5
batch_size = 8
seed = 3

[loss]
chunk_size = 4

[optim]
lr = 1e-4
warmup_steps = 1

[schedule]
steps = {steps}
val_every = {steps}
val_batches = 4
save_every = 0
"#,
        out = output_dir.display(),
        model = model_dir("all-MiniLM-L6-v2").display(),
    );
    TrainConfig::from_toml_str(&text, Path::new("<test>")).expect("test config parses")
}
