//! LAReQA's X-X: each pair is monolingual, in a language drawn per pair, so one batch mixes
//! languages (in-batch negatives then come from other languages than the positive).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::queue::EpochQueue;
use super::rng::{RngState, SamplerRng};
use super::{
    Batch, BatchKind, BatchSampler, CorpusFingerprint, SamplerState, check_corpora, draw_distinct_clusters, from_state,
    make_pair, to_state,
};
use crate::corpus::ParallelCorpus;
use crate::error::{DataError, Result};

/// Mixed-language monolingual pairs. One epoch queue over all ids: each id is used once per
/// epoch, in a language drawn uniformly among the languages where it exists.
pub struct MixedLanguage {
    corpus: Arc<ParallelCorpus>,
    batch_size: usize,
    rng: SamplerRng,
    queue: EpochQueue,
}

#[derive(Serialize, Deserialize)]
struct MixedState {
    sampler: String,
    corpora: Vec<CorpusFingerprint>,
    rng: RngState,
    queue: EpochQueue,
}

impl MixedLanguage {
    /// A mixed-language sampler over `corpus`.
    pub fn new(corpus: Arc<ParallelCorpus>, batch_size: usize, seed: u64) -> Result<Self> {
        if corpus.groups().is_empty() {
            return Err(DataError::Config(format!("corpus `{}` has no examples", corpus.name())));
        }
        let mut rng = SamplerRng::seeded(seed);
        let queue = EpochQueue::new((0..corpus.groups().len() as u32).collect(), &mut rng);
        Ok(MixedLanguage { corpus, batch_size, rng, queue })
    }
}

impl BatchSampler for MixedLanguage {
    fn describe(&self) -> String {
        format!("mixed(batch={})", self.batch_size)
    }

    fn next_batch(&mut self) -> Batch {
        let corpus = &self.corpus;
        let groups = draw_distinct_clusters(corpus, &mut self.queue, &mut self.rng, self.batch_size);
        let pairs = groups
            .into_iter()
            .map(|g| {
                let versions = &corpus.groups()[g as usize].versions;
                let lang = versions[self.rng.below(versions.len())].0;
                make_pair(corpus, g, lang, lang)
            })
            .collect();
        Batch { kind: BatchKind::Mixed, corpus: corpus.name_arc(), pairs }
    }

    fn state(&self) -> Result<SamplerState> {
        Ok(to_state(&MixedState {
            sampler: "mixed".into(),
            corpora: self.corpora(),
            rng: self.rng.state(),
            queue: self.queue.clone(),
        }))
    }

    fn restore(&mut self, state: &SamplerState) -> Result<()> {
        let s: MixedState = from_state(state, "mixed")?;
        check_corpora("mixed", &s.corpora, &self.corpora())?;
        // Same corpus, so the queue fits unless the state was damaged; a queue entry past the
        // corpus would panic at the next batch.
        let all: Vec<u32> = (0..self.corpus.groups().len() as u32).collect();
        if !s.queue.holds_exactly(&all) {
            return Err(DataError::State(format!(
                "mixed: the queue does not fit corpus `{}` (damaged state?)",
                self.corpus.name()
            )));
        }
        let rng = SamplerRng::from_state(&s.rng)?;
        self.rng = rng;
        self.queue = s.queue;
        Ok(())
    }

    fn corpora(&self) -> Vec<CorpusFingerprint> {
        vec![CorpusFingerprint::of(&self.corpus)]
    }
}
