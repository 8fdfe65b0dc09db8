//! Several corpora: each batch comes from one corpus, picked with probability proportional to
//! its size (the paper's abstract: batches "sampled based on dataset size").

use serde::{Deserialize, Serialize};

use super::rng::{RngState, SamplerRng};
use super::{
    Batch, BatchSampler, CorpusFingerprint, SamplerState, check_corpora, from_state, restore_children, to_state, union_corpora,
};
use crate::corpus::ParallelCorpus;
use crate::error::{DataError, Result};

/// What "size" means when weighting corpora (the paper leaves it open).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorpusSize {
    /// Number of (id, language) examples: a corpus in 9 languages weighs 9x its id count.
    #[default]
    Examples,
    /// Number of parallel ids (the paper's Table 9 "size per language").
    Ids,
    /// Every corpus equally likely.
    Uniform,
}

impl CorpusSize {
    /// The weight of `corpus` under this measure.
    pub fn of(self, corpus: &ParallelCorpus) -> f64 {
        match self {
            CorpusSize::Examples => corpus.num_examples() as f64,
            CorpusSize::Ids => corpus.groups().len() as f64,
            CorpusSize::Uniform => 1.0,
        }
    }
}

/// Picks one sampler per batch with probability proportional to its weight.
pub struct CorpusMixer {
    parts: Vec<Box<dyn BatchSampler>>,
    cumulative: Vec<f64>,
    rng: SamplerRng,
}

#[derive(Serialize, Deserialize)]
struct MixerState {
    sampler: String,
    /// Every part's corpora, in part order (each part's state records its own as well).
    corpora: Vec<CorpusFingerprint>,
    rng: RngState,
    parts: Vec<SamplerState>,
}

impl CorpusMixer {
    /// `parts` are (sampler, weight) pairs; weights must be positive and finite.
    pub fn new(parts: Vec<(Box<dyn BatchSampler>, f64)>, seed: u64) -> Result<Self> {
        if parts.is_empty() {
            return Err(DataError::Config("corpus mixer needs at least one sampler".into()));
        }
        let mut cumulative = Vec::with_capacity(parts.len());
        let mut total = 0.0;
        for (i, (_, w)) in parts.iter().enumerate() {
            if !(w.is_finite() && *w > 0.0) {
                return Err(DataError::Config(format!("corpus {i} has weight {w}; weights must be > 0")));
            }
            total += w;
            cumulative.push(total);
        }
        // Finite weights can still sum to infinity (two of 1e308), which would make every
        // probability 0 or NaN.
        if !total.is_finite() {
            return Err(DataError::Config(format!("corpus weights sum to {total}; use smaller weights")));
        }
        for c in &mut cumulative {
            *c /= total;
        }
        Ok(CorpusMixer { parts: parts.into_iter().map(|(s, _)| s).collect(), cumulative, rng: SamplerRng::seeded(seed) })
    }

    /// Selection probability of each part.
    pub fn probabilities(&self) -> Vec<f64> {
        let mut prev = 0.0;
        self.cumulative
            .iter()
            .map(|&c| {
                let p = c - prev;
                prev = c;
                p
            })
            .collect()
    }
}

impl BatchSampler for CorpusMixer {
    fn describe(&self) -> String {
        let parts: Vec<String> =
            self.parts.iter().zip(self.probabilities()).map(|(s, p)| format!("{p:.3}: {}", s.describe())).collect();
        format!("mixer[{}]", parts.join(", "))
    }

    fn next_batch(&mut self) -> Batch {
        let u = self.rng.unit();
        let i = self.cumulative.iter().position(|&c| u < c).unwrap_or(self.parts.len() - 1);
        self.parts[i].next_batch()
    }

    fn state(&self) -> Result<SamplerState> {
        Ok(to_state(&MixerState {
            sampler: "mixer".into(),
            corpora: self.corpora(),
            rng: self.rng.state(),
            parts: self.parts.iter().map(|p| p.state()).collect::<Result<_>>()?,
        }))
    }

    fn restore(&mut self, state: &SamplerState) -> Result<()> {
        let s: MixerState = from_state(state, "mixer")?;
        if s.parts.len() != self.parts.len() {
            return Err(DataError::State(format!(
                "mixer: state has {} corpora, sampler has {}",
                s.parts.len(),
                self.parts.len()
            )));
        }
        // Everything that can fail is checked before anything changes: a refused state leaves
        // the sampler as it was.
        check_corpora("mixer", &s.corpora, &self.corpora())?;
        let rng = SamplerRng::from_state(&s.rng)?;
        let mut parts: Vec<&mut Box<dyn BatchSampler>> = self.parts.iter_mut().collect();
        restore_children(&mut parts, &s.parts.iter().collect::<Vec<_>>())?;
        self.rng = rng;
        Ok(())
    }

    fn corpora(&self) -> Vec<CorpusFingerprint> {
        union_corpora(self.parts.iter().map(|p| &**p))
    }
}
