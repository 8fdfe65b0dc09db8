//! Two MPI ranks train the same model as one process (docs/distributed.md), on every compiled-in
//! CPU device: `mpiexec -n 2` of this test binary against one process, same config (global
//! batch 8, each rank embeds 4 pairs), 3 steps: the training loss of each step equal to 1e-5
//! relative and every parameter equal to 1e-5 after the 3 steps. Once with the in-batch loss
//! with parallel-id masking (hybrid batches hold translations of one id), once with the paper's
//! Eq. (1) over hard negatives.
//!
//! And one step on a hand-made batch where every pair has a translation on the other rank
//! (parallel-id masking across ranks): loss, gradient norm and every parameter's gradient (sum
//! and sum of squares) equal to 1e-5 relative, and the masking is not vacuous.
//!
//! Ranks whose samplers are seeded differently stop at the first step with an error on every
//! rank (each would otherwise train on its own batch).
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
    // The paper's rate. AdamW divides by the gradient's running RMS, so a parameter whose gradient
    // is tiny moves by ~lr whatever its size: float noise in such a gradient (the sum over ranks
    // adds in another order) moves it by up to ~lr too, and the 1e-5 bound scales with lr.
    c.optim.lr = 3e-5;
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
        let one = masked_step(&device, true, Arc::new(hybrid_ir_collective::SingleProcess));
        let path = root.path().join(format!("step-{}.json", device.replace(':', "_")));
        let ranks: StepStats = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1e-6);
        assert!(close(one.loss, ranks.loss), "masked step on {device}: loss {} vs {}", one.loss, ranks.loss);
        assert!(close(one.norm, ranks.norm), "masked step on {device}: norm {} vs {}", one.norm, ranks.norm);
        assert_eq!(one.grads.len(), ranks.grads.len());
        // Per parameter, against the global norm: some gradients are 0 in exact arithmetic (e.g.
        // attention key biases, which softmax cancels) and hold only float noise, where a
        // comparison relative to themselves would measure the noise.
        let scale = 1e-5 * one.norm;
        for (k, (a, b)) in one.grads.iter().zip(&ranks.grads).enumerate() {
            let (norm_a, norm_b) = (a[1].sqrt(), b[1].sqrt());
            assert!((norm_a - norm_b).abs() <= scale, "masked step on {device}: gradient {k}: norm {norm_a} vs {norm_b}");
            assert!((a[0] - b[0]).abs() <= scale * a[2].sqrt(), "masked step on {device}: gradient {k}: sum {} vs {}", a[0], b[0]);
        }
        let unmasked = masked_step(&device, false, Arc::new(hybrid_ir_collective::SingleProcess));
        assert!((unmasked.loss - one.loss).abs() > 1e-3, "the masking changes nothing: {} vs {}", unmasked.loss, one.loss);
        eprintln!("masked step on {device}: loss {} (unmasked {}), norm {}", one.loss, unmasked.loss, one.norm);
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StepStats {
    loss: f64,
    norm: f64,
    /// Per parameter (module order): sum, sum of squares and number of values of its gradient.
    grads: Vec<[f64; 3]>,
}

/// One step's loss and gradients on 4 English pairs followed by the same 4 ids in German: with
/// two ranks, every pair's translation is on the other rank.
fn masked_step(device: &str, mask: bool, collective: Arc<dyn Collective>) -> StepStats {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::tensor::Tensor;
    use hybrid_ir_data::{LareqaBenchmark, NegativePolicy, ParallelCorpus, resolve_data_dir};
    use hybrid_ir_model::TextKind;
    use hybrid_ir_train::from_config::{model_info, pipeline, start_model};
    use hybrid_ir_train::{StepRunner, StepSettings, TokenizedBatch};

    let dataset = LareqaBenchmark::XquadR.load(&resolve_data_dir(None)).unwrap();
    let corpus = ParallelCorpus::from_lareqa(&dataset, NegativePolicy::None).unwrap().restrict_languages(&["en", "de"]).unwrap();
    let groups: Vec<_> = corpus.groups().iter().filter(|g| g.versions.len() == 2).step_by(7).take(4).collect();
    let mut queries = Vec::new();
    let mut positives = Vec::new();
    let mut keys = Vec::new();
    for lang in 0..2 {
        for g in &groups {
            let e = &g.versions[lang].1;
            queries.push(e.query.to_string());
            positives.push(e.positive.to_string());
            keys.push(u64::from(g.cluster));
        }
    }
    let mut config = config(Path::new("unused"), device, "in_batch");
    config.loss.mask_same_group = mask;
    let info = model_info(&config).unwrap();
    let pipeline = pipeline(&config, &info).unwrap();
    let plain = config.device_spec().unwrap().try_device().unwrap();
    let model = start_model(&config, &info, &plain.autodiff()).unwrap();
    let batch = TokenizedBatch {
        queries: pipeline.tokenize(&queries, TextKind::Query).unwrap(),
        positives: pipeline.tokenize(&positives, TextKind::Passage).unwrap(),
        negatives: Vec::new(),
        group_keys: keys,
        pad_id: pipeline.pad_id(),
        chunk_orders: Default::default(),
    };
    let settings = StepSettings { chunk_size: 4, cached: true, sort_by_length: false };
    let loss = config.loss.loss_config().build().unwrap();
    let runner = StepRunner::new(&config.optim, loss, &settings, 11).unwrap().with_collective(collective).unwrap();
    let out = runner.gradients(&model, 1, &[batch]).unwrap();

    struct Stats<'a>(&'a burn::optim::GradientsParams, Vec<[f64; 3]>);
    impl ModuleVisitor for Stats<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(param.id) {
                let v = hybrid_ir_model::tensor_values(g).unwrap();
                let sum = v.iter().map(|&x| f64::from(x)).sum();
                let squares = v.iter().map(|&x| f64::from(x).powi(2)).sum();
                self.1.push([sum, squares, v.len() as f64]);
            }
        }
    }
    let mut stats = Stats(&out.grads, Vec::new());
    model.visit(&mut stats);
    assert!(stats.1.len() > 10);
    StepStats { loss: out.losses[0], norm: out.norm, grads: stats.1 }
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
    for spec in hybrid_ir_model::DeviceSpec::compiled_cpu_devices() {
        let stats = masked_step(&spec.to_string(), true, collective.clone());
        if collective.rank() == 0 {
            let path = root.join(format!("step-{}.json", spec.to_string().replace(':', "_")));
            std::fs::write(path, serde_json::to_vec(&stats).unwrap()).unwrap();
        }
    }
    // Samplers seeded differently per rank: refused at the first step on every rank, no hang.
    let mut divergent = config(&root.join("divergent"), "cpu", "in_batch");
    divergent.sampler.seed += collective.rank() as u64;
    let options = RunOptions { collective: Some(collective.clone()), ..Default::default() };
    let err = train(&divergent, &options).unwrap_err().to_string();
    assert!(err.contains("step 1: rank") && err.contains("another global batch"), "{err}");
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
    named_values(&load_run_model(run, false, &Device::flex()).unwrap().model)
}

/// Every tensor of `module` as `(name, f32 values)`, sorted by name.
fn named_values(module: &impl ModuleSnapshot) -> Vec<(String, Vec<f32>)> {
    let mut out: Vec<(String, Vec<f32>)> =
        module.collect(None, None, false).into_iter().map(|t| (t.name.clone(), f32_values(&t))).collect();
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
    named_values(&hybrid_ir_model::SentenceEncoder::load(&dir, &Device::flex(), &Default::default()).unwrap().encoder)
}

fn f32_values(t: &burn::store::burn_pack::Tensor) -> Vec<f32> {
    assert_eq!(t.dtype, burn::tensor::DType::F32, "{}", t.name);
    t.to_bytes().unwrap().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}
