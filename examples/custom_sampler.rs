//! A sampler of your own, trained by the project's trainer: a **language-pair curriculum**
//! that gives X-Y batches for one (query, passage) language pair at a time, moving to the next
//! pair every few batches. It implements `BatchSampler` (batches, state, restore), so the
//! trainer checkpoints it and resumes it exactly.
//!
//! `cargo run --release --example custom_sampler` (fetch the models first: `cargo xtask fetch-models`)

use std::collections::HashSet;
use std::sync::Arc;

use hybrid_ir::data::{DataError, LareqaBenchmark, NegativePolicy, resolve_data_dir};
use hybrid_ir::prelude::*;
use hybrid_ir::train::ScheduleSection;

/// X-Y batches following a fixed list of language pairs, `per_pair` batches each.
struct PairCurriculum {
    corpus: Arc<ParallelCorpus>,
    pairs: Vec<(u16, u16)>,
    per_pair: u64,
    batch_size: usize,
    /// Batches drawn so far and the next group to look at: the whole state.
    drawn: u64,
    cursor: usize,
}

impl BatchSampler for PairCurriculum {
    fn describe(&self) -> String {
        format!("pair-curriculum({} pairs x {} batches)", self.pairs.len(), self.per_pair)
    }

    fn next_batch(&mut self) -> Batch {
        let (q, p) = self.pairs[(self.drawn / self.per_pair) as usize % self.pairs.len()];
        let groups = self.corpus.groups();
        let (mut pairs, mut clusters) = (Vec::new(), HashSet::new());
        for _ in 0..groups.len() {
            let g = &groups[self.cursor % groups.len()];
            self.cursor += 1;
            // Both languages present, and one pair per answer cluster: no false negatives.
            if let (Some(qe), Some(pe)) = (g.version(q), g.version(p))
                && clusters.insert(g.cluster)
            {
                let lang = |l: u16| self.corpus.languages()[l as usize].clone();
                pairs.push(Pair {
                    id: g.id.clone(),
                    group_key: g.cluster as u64,
                    query_lang: lang(q),
                    passage_lang: lang(p),
                    query: qe.query.clone(),
                    positive: pe.positive.clone(),
                    context: None,
                    negative: None,
                });
            }
            if pairs.len() == self.batch_size {
                break;
            }
        }
        self.drawn += 1;
        Batch { kind: BatchKind::Custom("curriculum".into()), corpus: self.corpus.name_arc(), pairs }
    }

    fn state(&self) -> Result<SamplerState, DataError> {
        Ok(serde_json::json!({ "sampler": "pair-curriculum", "drawn": self.drawn, "cursor": self.cursor }))
    }

    fn restore(&mut self, state: &SamplerState) -> Result<(), DataError> {
        let field = |k: &str| state[k].as_u64().ok_or_else(|| DataError::State(format!("pair-curriculum: no `{k}` in {state}")));
        self.drawn = field("drawn")?;
        self.cursor = field("cursor")? as usize;
        Ok(())
    }
}

/// Trains a static-embedding model over all-MiniLM-L6-v2's vocabulary with the curriculum for
/// `steps` steps in `out`, resumes it for `more`, and returns the loss of each step.
pub fn run(out: &std::path::Path, steps: u64, more: u64) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let root = resolve_data_dir(None);
    let corpus = Arc::new(ParallelCorpus::from_lareqa(&LareqaBenchmark::XquadR.load(&root)?, NegativePolicy::None)?);
    let lang = |l: &str| corpus.language_index(l).ok_or(format!("no {l}"));
    let pairs = vec![(lang("en")?, lang("de")?), (lang("en")?, lang("es")?), (lang("de")?, lang("es")?)];
    let models = hybrid_ir::data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("models");
    let base = ModelInfo::read(&models.join("all-MiniLM-L6-v2"), &LoadOptions::default())?;
    let info = ModelInfo::static_from(base.bert().ok_or("not a transformer")?, true, false);
    let make = |total: u64| -> Result<_, Box<dyn std::error::Error>> {
        let sampler =
            PairCurriculum { corpus: corpus.clone(), pairs: pairs.clone(), per_pair: 2, batch_size: 16, drawn: 0, cursor: 0 };
        let settings = TrainerSettings {
            schedule: ScheduleSection { steps: total, val_every: 0, save_every: 1, ..ScheduleSection::default() },
            ..TrainerSettings::default()
        };
        Ok(Trainer::builder(info.load(&Device::flex())?, TextPipeline::of_model(&info)?, Box::new(sampler), out)
            .settings(settings))
    };
    let first = make(steps + more)?
        .build(&RunOptions::default())?
        .run(&RunOptions { stop_after_step: Some(steps), ..Default::default() })?;
    assert_eq!(first.step, steps);
    let resume = RunOptions { resume: true, ..Default::default() };
    let second = make(steps + more)?.build(&resume)?.run(&resume)?;
    assert_eq!(second.step, steps + more);
    let log = std::fs::read_to_string(out.join("metrics.jsonl"))?;
    let losses: Vec<f64> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["kind"] == "train")
        .filter_map(|e| e["loss"].as_f64())
        .collect();
    Ok(losses)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = std::env::temp_dir().join("hybrid-ir-custom-sampler");
    let _ = std::fs::remove_dir_all(&out);
    let losses = run(&out, 6, 6)?;
    println!("losses per step: {losses:.3?}");
    Ok(())
}

#[test]
fn runs() {
    let dir = tempfile::tempdir().unwrap();
    let losses = run(dir.path(), 3, 3).unwrap();
    assert_eq!(losses.len(), 6, "one train event per step, resumed run included");
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0), "{losses:?}");
}
