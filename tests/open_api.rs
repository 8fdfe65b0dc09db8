//! Cross-crate integration through the open API: a user sampler, a user loss and the static
//! backbone go through the one trainer, checkpoint, resume bit for bit, and are evaluated by the
//! eval crate; parts that cannot be resumed are refused clearly.

use std::path::Path;
use std::sync::Arc;

use burn::store::ModuleSnapshot;
use burn::tensor::Tensor;
use hybrid_ir::data::{DataError, LareqaBenchmark, NegativePolicy, resolve_data_dir};
use hybrid_ir::loss::{LossError, LossSettings};
use hybrid_ir::model::{StaticInit, load_module_into};
use hybrid_ir::prelude::*;
use hybrid_ir::train::checkpoint::{CheckpointDir, Pointer, verify};
use hybrid_ir::train::{ScheduleSection, TrainError};

/// Monolingual batches, one language after the other, ids in corpus order.
struct LanguageRounds {
    corpus: Arc<ParallelCorpus>,
    batch_size: usize,
    next: u64,
    resumable: bool,
}

impl BatchSampler for LanguageRounds {
    fn describe(&self) -> String {
        "language-rounds".into()
    }

    fn next_batch(&mut self) -> Batch {
        let langs = self.corpus.languages().len() as u64;
        let lang = (self.next % langs) as u16;
        let round = (self.next / langs) as usize;
        let ids = self.corpus.groups_in(lang);
        let pairs = (0..self.batch_size)
            .map(|k| {
                let g = &self.corpus.groups()[ids[(round * self.batch_size + k) % ids.len()] as usize];
                let e = g.version(lang).expect("the id exists in its language");
                Pair {
                    id: g.id.clone(),
                    group_key: g.cluster as u64,
                    query_lang: self.corpus.languages()[lang as usize].clone(),
                    passage_lang: self.corpus.languages()[lang as usize].clone(),
                    query: e.query.clone(),
                    positive: e.positive.clone(),
                    context: None,
                    negative: None,
                }
            })
            .collect();
        self.next += 1;
        Batch { kind: BatchKind::Custom("rounds".into()), corpus: self.corpus.name_arc(), pairs }
    }

    fn state(&self) -> Result<SamplerState, DataError> {
        if !self.resumable {
            return Err(DataError::State("language-rounds was built without resume support".into()));
        }
        Ok(serde_json::json!({ "next": self.next }))
    }

    fn restore(&mut self, state: &SamplerState) -> Result<(), DataError> {
        self.next = state["next"].as_u64().ok_or_else(|| DataError::State(format!("no `next` in {state}")))?;
        Ok(())
    }
}

/// Twice the in-batch loss: a user loss wrapping a built-in one.
#[derive(Debug)]
struct Doubled(Box<dyn ContrastiveLoss>, LossSettings);

impl ContrastiveLoss for Doubled {
    fn name(&self) -> &'static str {
        "doubled"
    }
    fn settings(&self) -> &LossSettings {
        &self.1
    }
    fn forward(&self, batch: ContrastiveBatch<'_>) -> Result<Tensor<1>, LossError> {
        Ok(self.0.forward(batch)?.mul_scalar(2.0))
    }
}

fn models() -> std::path::PathBuf {
    hybrid_ir::data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("models")
}

fn parts(resumable: bool) -> (ModelInfo, Arc<ParallelCorpus>) {
    let base = ModelInfo::read(&models().join("all-MiniLM-L6-v2"), &LoadOptions::default()).unwrap();
    // The table starts from the transformer's word embeddings, not at random: burn's RNG is
    // process-global, and the other test of this binary runs in parallel.
    let info = ModelInfo::static_from(base.bert().unwrap(), true, false);
    assert!(matches!(&info.source, hybrid_ir::model::ModelSource::Static { init: StaticInit::FromModel(_), .. }));
    let corpus =
        ParallelCorpus::from_lareqa(&LareqaBenchmark::XquadR.load(&resolve_data_dir(None)).unwrap(), NegativePolicy::None)
            .unwrap();
    let _ = resumable;
    (info, Arc::new(corpus.restrict_languages(&["en", "de"]).unwrap()))
}

fn trainer(
    info: &ModelInfo,
    corpus: &Arc<ParallelCorpus>,
    out: &Path,
    steps: u64,
    resumable: bool,
    options: &RunOptions,
) -> Result<Trainer<AnyEncoder>, TrainError> {
    let device = Device::flex();
    let sampler = LanguageRounds { corpus: corpus.clone(), batch_size: 8, next: 0, resumable };
    let loss = Doubled(LossConfig::default().build().unwrap(), LossSettings::default());
    let settings = TrainerSettings {
        schedule: ScheduleSection { steps, val_every: 0, save_every: 1, ..ScheduleSection::default() },
        // Clipping on (the default, 1.0): the 11.7M-value table's gradient norm must be the same
        // in the straight and the resumed run (it once was not: docs/reliability.md).
        ..TrainerSettings::default()
    };
    Trainer::builder(info.load(&device).unwrap(), TextPipeline::of_model(info).unwrap(), Box::new(sampler), out)
        .loss(Box::new(loss))
        .settings(settings)
        .build(options)
}

fn weights(info: &ModelInfo, run: &Path) -> Vec<(String, Vec<u8>)> {
    let dir = CheckpointDir::of_run(run).resolve(Pointer::Last).unwrap().unwrap();
    let model = load_module_into(info.skeleton(&Device::flex()), &verify(&dir).unwrap().model_path()).unwrap();
    let mut out: Vec<_> =
        model.collect(None, None, false).into_iter().map(|t| (t.name.clone(), t.to_bytes().unwrap().to_vec())).collect();
    out.sort();
    out
}

#[test]
fn user_sampler_and_loss_train_resume_exactly_and_evaluate() {
    let (info, corpus) = parts(true);
    let dir = tempfile::tempdir().unwrap();
    let (straight, split) = (dir.path().join("straight"), dir.path().join("split"));
    let plain = RunOptions::default();
    let a = trainer(&info, &corpus, &straight, 4, true, &plain).unwrap().run(&plain).unwrap();
    assert_eq!(a.step, 4);

    let half = RunOptions { stop_after_step: Some(2), ..Default::default() };
    assert_eq!(trainer(&info, &corpus, &split, 4, true, &half).unwrap().run(&half).unwrap().step, 2);
    let resume = RunOptions { resume: true, ..Default::default() };
    let mut resumed = trainer(&info, &corpus, &split, 4, true, &resume).unwrap();
    assert_eq!(resumed.step(), 2);
    assert_eq!(resumed.run(&resume).unwrap().step, 4);
    assert_eq!(weights(&info, &straight), weights(&info, &split), "2 + resume + 2 must equal 4 straight, bit for bit");

    // The trained model is evaluated by the eval crate like any other.
    let pipeline = TextPipeline::of_model(&info).unwrap();
    let bench = TokenizedBenchmark::new(load_benchmark("xquad-r", None, &["en".to_string()]).unwrap(), &pipeline).unwrap();
    let dir_last = CheckpointDir::of_run(&split).resolve(Pointer::Last).unwrap().unwrap();
    let model = load_module_into(info.skeleton(&Device::flex()), &verify(&dir_last).unwrap().model_path()).unwrap();
    let report = bench.evaluate(&model, &pipeline, 128, |_| {}).unwrap();
    assert!(report.settings.mono.map > 0.0 && report.settings.mono.map <= 1.0);
}

#[test]
fn a_sampler_that_cannot_save_its_state_stops_at_the_first_checkpoint() {
    let (info, corpus) = parts(false);
    let dir = tempfile::tempdir().unwrap();
    let plain = RunOptions::default();
    let err = trainer(&info, &corpus, dir.path(), 3, false, &plain).unwrap().run(&plain).unwrap_err();
    let message = format!("{err}");
    assert!(message.contains("language-rounds") && message.contains("resume"), "{message}");
    assert!(message.contains("step 1"), "the error names the checkpoint's step: {message}");
}
