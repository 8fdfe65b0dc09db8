//! Two MPI ranks train the same model as one process (docs/distributed.md), on every compiled-in
//! CPU device: `mpiexec -n 2` of this test binary against one process, same config (global
//! batch 8, each rank embeds 4 pairs), 3 steps: the training loss of each step equal to 1e-5
//! relative and every parameter equal to 1e-5 after the 3 steps. Once with the in-batch loss
//! with parallel-id masking (hybrid batches hold translations of one id), once with the paper's
//! Eq. (1) over hard negatives.
//!
//! Dropout stays on: each rank's slice is whole chunks (`chunk_size` 4, chunks in batch order),
//! so every row is embedded with the dropout mask it gets in one process.
#![cfg(feature = "mpi")]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::store::ModuleSnapshot;
use burn::tensor::Device;
use hybrid_ir_collective::testing::{assert_ranks_succeeded, spawn_ranks_with};
use hybrid_ir_collective::{Collective, DistributedChoice};
use hybrid_ir_train::{RunOptions, StopReason, TrainConfig, load_run_model, train};

const OUT_VAR: &str = "HYBRID_IR_TEST_OUT";
const STEPS: u64 = 3;

/// The two objectives compared: (name, loss kind, hard negatives).
const CASES: [&str; 2] = ["in_batch", "paper"];

/// XQuAD-R in three languages with the next sentence of the answer's paragraph as the hard
/// negative, only rows that have one (Eq. 1 needs a negative for every pair of a batch), as a
/// user corpus file.
fn write_negatives_corpus(root: &Path) -> PathBuf {
    use hybrid_ir_data::{LareqaBenchmark, NegativePolicy, ParallelCorpus, resolve_data_dir};
    let dataset = LareqaBenchmark::XquadR.load(&resolve_data_dir(None)).unwrap();
    let corpus = ParallelCorpus::from_lareqa(&dataset, NegativePolicy::SameParagraph).unwrap();
    let corpus = corpus.restrict_languages(&["en", "de", "es"]).unwrap();
    let mut lines = String::new();
    for group in corpus.groups() {
        for (lang, example) in &group.versions {
            let Some(negative) = &example.negative else { continue };
            let row = serde_json::json!({
                "id": &*group.id,
                "lang": corpus.languages()[*lang as usize].to_string(),
                "query": &*example.query,
                "positive": &*example.positive,
                "negative": &**negative,
            });
            lines += &format!("{row}\n");
        }
    }
    let path = root.join("xquad-r-negatives.jsonl");
    std::fs::write(&path, lines).unwrap();
    path
}

fn config(out: &Path, device: &str, case: &str) -> TrainConfig {
    let mut c = common::small_config(out, STEPS);
    c.model.device = device.to_string();
    c.loss.sort_by_length = false;
    c.loss.chunk_size = 4;
    c.schedule.val_every = 0;
    // X-Y batches: all-MiniLM-L6-v2 is an English model, so cross-lingual batches keep the loss
    // far from 0 (an easy monolingual batch reaches ~1e-3, where the loss is the difference of
    // two ~20-sized logits and a relative comparison would measure f32 cancellation).
    c.sampler.kind = hybrid_ir_data::sampler::SamplerKind::Cross;
    if case == "paper" {
        c.loss.kind = hybrid_ir_loss::LossKind::Paper;
        let corpus = out.parent().unwrap().join("xquad-r-negatives.jsonl");
        c.data.corpora = vec![corpus.to_str().unwrap().to_string()];
    }
    c
}

fn run_dir(root: &Path, who: &str, device: &str, case: &str) -> PathBuf {
    root.join(format!("{who}-{}-{case}", device.replace(':', "_")))
}

#[test]
fn two_ranks_train_the_same_model_as_one_process() {
    let root = tempfile::tempdir().unwrap();
    let root_str = root.path().to_str().unwrap().to_string();
    let name = "two_ranks_train_the_same_model_as_one_process";
    if std::env::var(OUT_VAR).is_err() {
        write_negatives_corpus(root.path());
    }
    let Some(out) = spawn_ranks_with(name, 2, &[(OUT_VAR, &root_str)]) else {
        return rank_body();
    };
    assert_ranks_succeeded(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("rank done: world 2").count(), 2, "{stdout}");

    for spec in hybrid_ir_model::DeviceSpec::compiled_cpu_devices() {
        let device = spec.to_string();
        for case in CASES {
            eprintln!("[{name}] {case} on {device}");
            let one = run_dir(root.path(), "one", &device, case);
            let summary = train(&config(&one, &device, case), &RunOptions::default()).unwrap();
            assert_eq!((summary.step, summary.stop), (STEPS, StopReason::Completed));
            compare(&one, &run_dir(root.path(), "mpi", &device, case), case);
        }
    }
}

/// What each rank runs: both cases on every device, into the directory the parent named.
fn rank_body() {
    let root = PathBuf::from(std::env::var(OUT_VAR).expect("the parent names the output root"));
    let collective: Arc<dyn Collective> = Arc::from(DistributedChoice::Mpi.connect().unwrap());
    for spec in hybrid_ir_model::DeviceSpec::compiled_cpu_devices() {
        let device = spec.to_string();
        for case in CASES {
            let dir = run_dir(&root, "mpi", &device, case);
            let options = RunOptions { collective: Some(collective.clone()), ..Default::default() };
            let summary = train(&config(&dir, &device, case), &options).unwrap();
            assert_eq!(summary.step, STEPS);
        }
    }
    // Only rank 0 wrote: one metrics log per run, written once.
    println!("rank done: world {}", collective.world_size());
}

fn train_losses(run: &Path) -> Vec<f64> {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "train")
        .map(|v| v["loss"].as_f64().unwrap())
        .collect()
}

fn weights(run: &Path) -> Vec<(String, Vec<f32>)> {
    let model = load_run_model(run, false, &Device::flex()).unwrap().model;
    let mut out: Vec<(String, Vec<f32>)> = model
        .collect(None, None, false)
        .into_iter()
        .map(|t| (t.name.clone(), f32_values(&t)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn compare(one: &Path, ranks: &Path, case: &str) {
    let (a, b) = (train_losses(one), train_losses(ranks));
    eprintln!("{case}: one process {a:?}, two ranks {b:?}");
    assert_eq!(a.len(), STEPS as usize, "{case}: one process logged {a:?}");
    assert_eq!(b.len(), STEPS as usize, "{case}: the ranks logged {b:?} (rank 0 alone writes the log)");
    for (step, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(x.is_finite() && *x > 0.0, "{case}: loss {x} at step {}", step + 1);
        assert!((x - y).abs() <= 1e-5 * x.abs(), "{case}: step {}: one process {x}, two ranks {y}", step + 1);
    }
    let (wa, wb) = (weights(one), weights(ranks));
    assert_eq!(wa.len(), wb.len());
    let mut worst = (0.0_f32, String::new());
    for ((na, va), (nb, vb)) in wa.iter().zip(&wb) {
        assert_eq!(na, nb);
        for (x, y) in va.iter().zip(vb) {
            if (x - y).abs() > worst.0 {
                worst = ((x - y).abs(), na.clone());
            }
        }
    }
    assert!(worst.0 <= 1e-5, "{case}: parameter {} differs by {} between one process and two ranks", worst.1, worst.0);
    // Not vacuous: the runs moved the weights, and the losses are those of different batches.
    let base = weights_of_base();
    let moved = base.iter().zip(&wa).filter(|((_, b), (_, a))| b != a).count();
    assert!(moved > 10, "{case}: only {moved} tensors changed by training");
    eprintln!("{case}: losses {a:?}; largest parameter difference {:.2e} ({})", worst.0, worst.1);
}

fn weights_of_base() -> Vec<(String, Vec<f32>)> {
    let dir = common::model_dir("all-MiniLM-L6-v2");
    let base = hybrid_ir_model::SentenceEncoder::load(&dir, &Device::flex(), &Default::default()).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = base
        .encoder
        .collect(None, None, false)
        .into_iter()
        .map(|t| (t.name.clone(), f32_values(&t)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn f32_values(t: &burn::store::burn_pack::Tensor) -> Vec<f32> {
    assert_eq!(t.dtype, burn::tensor::DType::F32, "{}", t.name);
    t.to_bytes().unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}
