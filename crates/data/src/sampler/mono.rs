//! X-X-mono: the whole batch in one language, picked uniformly (the paper: "we sample the
//! language used to create the batch equally among all possible languages").

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

/// Monolingual batching. Keeps one epoch queue per language: every (id, language) example is
/// used once per epoch of its language. Languages are picked uniformly per batch, so a language
/// with fewer ids runs out sooner and starts its next epoch sooner (MLQA-R: `es` has 500 ids,
/// `en` 1148, yet both are picked equally often).
pub struct Monolingual {
    corpus: Arc<ParallelCorpus>,
    batch_size: usize,
    rng: SamplerRng,
    /// Languages that have at least one example (the ones that can be picked).
    languages: Vec<u16>,
    queues: Vec<EpochQueue>,
}

#[derive(Serialize, Deserialize)]
struct MonoState {
    sampler: String,
    corpora: Vec<CorpusFingerprint>,
    rng: RngState,
    queues: Vec<EpochQueue>,
}

impl Monolingual {
    /// A monolingual sampler over `corpus`.
    pub fn new(corpus: Arc<ParallelCorpus>, batch_size: usize, seed: u64) -> Result<Self> {
        let mut rng = SamplerRng::seeded(seed);
        let n_langs = corpus.languages().len() as u16;
        let languages: Vec<u16> = (0..n_langs).filter(|&l| !corpus.groups_in(l).is_empty()).collect();
        if languages.is_empty() {
            return Err(DataError::Config(format!("corpus `{}` has no examples", corpus.name())));
        }
        let queues = (0..n_langs).map(|l| EpochQueue::new(corpus.groups_in(l).to_vec(), &mut rng)).collect();
        Ok(Monolingual { corpus, batch_size, rng, languages, queues })
    }

    /// Epochs completed so far by each language's queue (in corpus language order).
    pub fn epochs(&self) -> Vec<u64> {
        self.queues.iter().map(EpochQueue::epoch).collect()
    }
}

impl BatchSampler for Monolingual {
    fn describe(&self) -> String {
        format!("mono(batch={}, languages={})", self.batch_size, self.languages.len())
    }

    fn next_batch(&mut self) -> Batch {
        let lang = self.languages[self.rng.below(self.languages.len())];
        let groups = draw_distinct_clusters(&self.corpus, &mut self.queues[lang as usize], &mut self.rng, self.batch_size);
        Batch {
            kind: BatchKind::Mono,
            corpus: self.corpus.name_arc(),
            pairs: groups.into_iter().map(|g| make_pair(&self.corpus, g, lang, lang)).collect(),
        }
    }

    fn state(&self) -> Result<SamplerState> {
        Ok(to_state(&MonoState {
            sampler: "mono".into(),
            corpora: self.corpora(),
            rng: self.rng.state(),
            queues: self.queues.clone(),
        }))
    }

    fn restore(&mut self, state: &SamplerState) -> Result<()> {
        let s: MonoState = from_state(state, "mono")?;
        check_corpora("mono", &s.corpora, &self.corpora())?;
        // Same corpus, so the queues fit unless the state was damaged; checked all the same,
        // since a queue entry past the corpus would panic at the next batch.
        if s.queues.len() != self.queues.len() {
            return Err(DataError::State(format!(
                "mono: the state has {} language queues, corpus `{}` has {} languages",
                s.queues.len(),
                self.corpus.name(),
                self.queues.len()
            )));
        }
        for (l, queue) in s.queues.iter().enumerate() {
            if !queue.holds_exactly(self.corpus.groups_in(l as u16)) {
                return Err(DataError::State(format!(
                    "mono: the queue of language `{}` does not fit corpus `{}` (damaged state?)",
                    self.corpus.languages()[l],
                    self.corpus.name()
                )));
            }
        }
        let rng = SamplerRng::from_state(&s.rng)?;
        self.rng = rng;
        self.queues = s.queues;
        Ok(())
    }

    fn corpora(&self) -> Vec<CorpusFingerprint> {
        vec![CorpusFingerprint::of(&self.corpus)]
    }
}
