//! X-Y: every pair has query language != passage language.

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

/// How X-Y batches choose languages (the paper does not say; its Figure 2 suggests per row).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrossPairing {
    /// Each pair draws its own ordered (X, Y), X != Y, uniformly among the id's languages.
    #[default]
    PerPair,
    /// The batch draws one ordered (X, Y) uniformly among the language pairs that have ids;
    /// every pair uses it.
    PerBatch,
}

/// Cross-lingual batching.
///
/// Epochs: with [`CrossPairing::PerPair`] one queue over every id that exists in at least two
/// languages, so each such id is used once per epoch (in one random direction). With
/// [`CrossPairing::PerBatch`] one queue per ordered language pair, created when the pair is first
/// drawn, so each id is used once per epoch of every pair it belongs to. A pair with fewer ids
/// than the batch size yields smaller batches.
pub struct CrossLingual {
    corpus: Arc<ParallelCorpus>,
    batch_size: usize,
    pairing: CrossPairing,
    rng: SamplerRng,
    /// PerPair: the single queue.
    queue: Option<EpochQueue>,
    /// PerBatch: ordered language pairs with at least one id, and their queues.
    language_pairs: Vec<(u16, u16)>,
    pair_queues: Vec<Option<EpochQueue>>,
}

#[derive(Serialize, Deserialize)]
struct CrossState {
    sampler: String,
    corpora: Vec<CorpusFingerprint>,
    rng: RngState,
    queue: Option<EpochQueue>,
    pair_queues: Vec<Option<EpochQueue>>,
}

impl CrossLingual {
    /// A cross-lingual sampler over `corpus`; errors when no id exists in two languages.
    pub fn new(corpus: Arc<ParallelCorpus>, batch_size: usize, pairing: CrossPairing, seed: u64) -> Result<Self> {
        let mut rng = SamplerRng::seeded(seed);
        let multilingual = multilingual_groups(&corpus);
        if multilingual.is_empty() {
            return Err(DataError::Config(format!(
                "corpus `{}` has no id in two languages: X-Y batches are impossible",
                corpus.name()
            )));
        }
        let n = corpus.languages().len() as u16;
        let language_pairs: Vec<(u16, u16)> = (0..n)
            .flat_map(|x| (0..n).map(move |y| (x, y)))
            .filter(|&(x, y)| x != y && !groups_with(&corpus, x, y).is_empty())
            .collect();
        let (queue, pair_queues) = match pairing {
            CrossPairing::PerPair => (Some(EpochQueue::new(multilingual, &mut rng)), Vec::new()),
            CrossPairing::PerBatch => (None, vec![None; language_pairs.len()]),
        };
        Ok(CrossLingual { corpus, batch_size, pairing, rng, queue, language_pairs, pair_queues })
    }
}

/// Groups that exist in at least two languages (the per-pair queue's items).
fn multilingual_groups(corpus: &ParallelCorpus) -> Vec<u32> {
    (0..corpus.groups().len() as u32).filter(|&g| corpus.groups()[g as usize].versions.len() >= 2).collect()
}

/// Groups that exist in both languages.
fn groups_with(corpus: &ParallelCorpus, x: u16, y: u16) -> Vec<u32> {
    corpus.groups_in(x).iter().copied().filter(|&g| corpus.groups()[g as usize].version(y).is_some()).collect()
}

impl BatchSampler for CrossLingual {
    fn describe(&self) -> String {
        let pairing = match self.pairing {
            CrossPairing::PerPair => "per-pair",
            CrossPairing::PerBatch => "per-batch",
        };
        format!("cross(batch={}, pairing={pairing})", self.batch_size)
    }

    fn next_batch(&mut self) -> Batch {
        let corpus = &self.corpus;
        let pairs = match self.pairing {
            CrossPairing::PerPair => {
                let queue = self.queue.as_mut().expect("per-pair sampler has its queue");
                let groups = draw_distinct_clusters(corpus, queue, &mut self.rng, self.batch_size);
                groups
                    .into_iter()
                    .map(|g| {
                        let versions = &corpus.groups()[g as usize].versions;
                        let i = self.rng.below(versions.len());
                        let mut j = self.rng.below(versions.len() - 1);
                        if j >= i {
                            j += 1;
                        }
                        make_pair(corpus, g, versions[i].0, versions[j].0)
                    })
                    .collect()
            }
            CrossPairing::PerBatch => {
                let p = self.rng.below(self.language_pairs.len());
                let (x, y) = self.language_pairs[p];
                let rng = &mut self.rng;
                let queue = self.pair_queues[p].get_or_insert_with(|| EpochQueue::new(groups_with(corpus, x, y), rng));
                let groups = draw_distinct_clusters(corpus, queue, &mut self.rng, self.batch_size);
                groups.into_iter().map(|g| make_pair(corpus, g, x, y)).collect()
            }
        };
        Batch { kind: BatchKind::Cross, corpus: corpus.name_arc(), pairs }
    }

    fn state(&self) -> Result<SamplerState> {
        Ok(to_state(&CrossState {
            sampler: "cross".into(),
            corpora: self.corpora(),
            rng: self.rng.state(),
            queue: self.queue.clone(),
            pair_queues: self.pair_queues.clone(),
        }))
    }

    fn restore(&mut self, state: &SamplerState) -> Result<()> {
        let s: CrossState = from_state(state, "cross")?;
        check_corpora("cross", &s.corpora, &self.corpora())?;
        let pairing_differs = || {
            DataError::State(format!(
                "cross: the state was saved with another language pairing than this sampler's ({})",
                self.describe()
            ))
        };
        if s.queue.is_some() != self.queue.is_some() || s.pair_queues.len() != self.pair_queues.len() {
            return Err(pairing_differs());
        }
        // Same corpus, so the queues fit unless the state was damaged; checked all the same,
        // since an entry outside the queue's ids would panic at the next batch.
        let damaged = |which: String| {
            DataError::State(format!("cross: {which} does not fit corpus `{}` (damaged state?)", self.corpus.name()))
        };
        if let Some(queue) = &s.queue
            && !queue.holds_exactly(&multilingual_groups(&self.corpus))
        {
            return Err(damaged("the queue".into()));
        }
        for (queue, &(x, y)) in s.pair_queues.iter().zip(&self.language_pairs) {
            if let Some(queue) = queue
                && !queue.holds_exactly(&groups_with(&self.corpus, x, y))
            {
                let langs = self.corpus.languages();
                return Err(damaged(format!("the queue of {} -> {}", langs[x as usize], langs[y as usize])));
            }
        }
        let rng = SamplerRng::from_state(&s.rng)?;
        self.rng = rng;
        self.queue = s.queue;
        self.pair_queues = s.pair_queues;
        Ok(())
    }

    fn corpora(&self) -> Vec<CorpusFingerprint> {
        vec![CorpusFingerprint::of(&self.corpus)]
    }
}
