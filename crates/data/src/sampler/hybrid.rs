//! The paper's hybrid batching: each batch comes from one sampler with probability alpha and
//! from another with probability beta = 1 - alpha (paper: X-X-mono and X-Y, alpha = 0.5).

use serde::{Deserialize, Serialize};

use super::rng::{RngState, SamplerRng};
use super::{
    Batch, BatchSampler, CorpusFingerprint, SamplerState, check_corpora, from_state, restore_children, to_state, union_corpora,
};
use crate::error::{DataError, Result};

/// Composes any two samplers. alpha = 1 is the first alone, alpha = 0 the second alone.
pub struct Hybrid {
    alpha: f64,
    alpha_sampler: Box<dyn BatchSampler>,
    beta_sampler: Box<dyn BatchSampler>,
    rng: SamplerRng,
}

#[derive(Serialize, Deserialize)]
struct HybridState {
    sampler: String,
    /// Both children's corpora (each child's state records its own as well).
    corpora: Vec<CorpusFingerprint>,
    rng: RngState,
    alpha_sampler: SamplerState,
    beta_sampler: SamplerState,
}

impl Hybrid {
    /// `alpha_sampler` serves a batch with probability `alpha`, `beta_sampler` otherwise. Each
    /// keeps its own epochs: a batch drawn from one does not advance the other.
    pub fn new(alpha: f64, alpha_sampler: Box<dyn BatchSampler>, beta_sampler: Box<dyn BatchSampler>, seed: u64) -> Result<Self> {
        if !(0.0..=1.0).contains(&alpha) {
            return Err(DataError::Config(format!("alpha must be in [0, 1], got {alpha}")));
        }
        Ok(Hybrid { alpha, alpha_sampler, beta_sampler, rng: SamplerRng::seeded(seed) })
    }
}

impl BatchSampler for Hybrid {
    fn describe(&self) -> String {
        format!("hybrid(alpha={}: {} | {})", self.alpha, self.alpha_sampler.describe(), self.beta_sampler.describe())
    }

    fn next_batch(&mut self) -> Batch {
        // unit() is in [0, 1): alpha = 1 always takes the first, alpha = 0 never does.
        if self.rng.unit() < self.alpha { self.alpha_sampler.next_batch() } else { self.beta_sampler.next_batch() }
    }

    fn state(&self) -> Result<SamplerState> {
        Ok(to_state(&HybridState {
            sampler: "hybrid".into(),
            corpora: self.corpora(),
            rng: self.rng.state(),
            alpha_sampler: self.alpha_sampler.state()?,
            beta_sampler: self.beta_sampler.state()?,
        }))
    }

    fn restore(&mut self, state: &SamplerState) -> Result<()> {
        let s: HybridState = from_state(state, "hybrid")?;
        // Everything that can fail is checked before anything changes: a refused state leaves
        // the sampler as it was.
        check_corpora("hybrid", &s.corpora, &self.corpora())?;
        let rng = SamplerRng::from_state(&s.rng)?;
        restore_children(&mut [&mut self.alpha_sampler, &mut self.beta_sampler], &[&s.alpha_sampler, &s.beta_sampler])?;
        self.rng = rng;
        Ok(())
    }

    fn corpora(&self) -> Vec<CorpusFingerprint> {
        union_corpora([&*self.alpha_sampler, &*self.beta_sampler])
    }
}
