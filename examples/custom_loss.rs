//! A contrastive loss of your own, plugged into the trainer: a **hardest-negative triplet
//! loss** on cosine scores, `mean_i relu(m − s(q_i, p_i) + max_{j≠i} s(q_i, p_j))`, with
//! translations of the query (same group key) never counted as negatives.
//!
//! `cargo run --release --example custom_loss`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use burn::tensor::{Tensor, TensorData};
use hybrid_ir::data::{LareqaBenchmark, NegativePolicy, resolve_data_dir};
use hybrid_ir::loss::{LossError, LossSettings};
use hybrid_ir::prelude::*;
use hybrid_ir::train::{OptimSection, ScheduleSection};

#[derive(Debug)]
struct HardestTriplet {
    margin: f64,
    settings: LossSettings,
    /// How often the trainer called us (the test checks the loss really was used).
    calls: Arc<AtomicUsize>,
}

impl ContrastiveLoss for HardestTriplet {
    fn name(&self) -> &'static str {
        "hardest_triplet"
    }

    fn settings(&self) -> &LossSettings {
        &self.settings
    }

    fn forward(&self, batch: ContrastiveBatch<'_>) -> Result<Tensor<1>, LossError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let (rows, _) = batch.validate()?;
        let unit = |t: Tensor<2>| t.clone() / t.powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
        let scores = unit(batch.queries).matmul(unit(batch.positives).transpose()); // [B, B]
        let positive = diagonal(scores.clone(), rows);
        // Push the positive and every same-group candidate far down before taking the maximum.
        let keys = batch.group_keys.map(<[u64]>::to_vec).unwrap_or_else(|| (0..rows as u64).collect());
        let same: Vec<f32> = (0..rows * rows).map(|k| if keys[k / rows] == keys[k % rows] { 4.0 } else { 0.0 }).collect();
        let penalty = Tensor::<2>::from_data(TensorData::new(same, [rows, rows]), &scores.device());
        let hardest = (scores - penalty).max_dim(1).reshape([rows]);
        Ok((hardest - positive).add_scalar(self.margin).clamp_min(0.0).mean())
    }
}

/// `scores[i, i]` as a `[rows]` tensor.
fn diagonal(scores: Tensor<2>, rows: usize) -> Tensor<1> {
    let eye = Tensor::<2>::eye(rows, &scores.device());
    (scores * eye).sum_dim(1).reshape([rows])
}

/// Trains a static model with the triplet loss; returns (validation losses, loss calls).
pub fn run(out: &std::path::Path, steps: u64) -> Result<(Vec<(u64, f64)>, usize), Box<dyn std::error::Error>> {
    let corpus = ParallelCorpus::from_lareqa(&LareqaBenchmark::XquadR.load(&resolve_data_dir(None))?, NegativePolicy::None)?;
    let corpus = corpus.restrict_languages(&["en", "de", "es"])?;
    let (train, held) = corpus.split_holdout(5);
    let models = hybrid_ir::data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("models");
    let base = ModelInfo::read(&models.join("all-MiniLM-L6-v2"), &LoadOptions::default())?;
    let info = ModelInfo::static_from(base.bert().ok_or("not a transformer")?, true, false);
    let sampler = |corpus: ParallelCorpus, seed: u64| {
        SamplerConfig { batch_size: 16, seed, ..SamplerConfig::new(SamplerKind::Hybrid) }.build(Arc::new(corpus))
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let loss = HardestTriplet { margin: 0.3, settings: LossSettings::default(), calls: calls.clone() };
    let settings = TrainerSettings {
        optim: OptimSection { lr: 5e-3, ..OptimSection::default() },
        schedule: ScheduleSection { steps, val_every: steps, val_batches: 4, save_every: 0, ..ScheduleSection::default() },
        ..TrainerSettings::default()
    };
    let summary = Trainer::builder(info.load(&Device::flex())?, TextPipeline::of_model(&info)?, sampler(train, 1)?, out)
        .loss(Box::new(loss))
        .validation(sampler(held, 2)?, 4)
        .settings(settings)
        .build(&RunOptions::default())?
        .run(&RunOptions::default())?;
    Ok((summary.val_history, calls.load(Ordering::Relaxed)))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::temp_dir().join("hybrid-ir-custom-loss");
    let _ = std::fs::remove_dir_all(&out);
    let (val, calls) = run(&out, 20)?;
    println!("validation triplet loss (step, loss): {val:.4?}; the loss ran {calls} times");
    Ok(())
}

#[test]
fn runs() {
    let dir = tempfile::tempdir().unwrap();
    let (val, calls) = run(dir.path(), 8).unwrap();
    assert!(calls >= 8, "the trainer must call the custom loss (called {calls} times)");
    let (first, last) = (val.first().unwrap().1, val.last().unwrap().1);
    assert!(last < first, "the triplet loss on the validation batches must fall: {val:?}");
}
