//! A seedable RNG whose exact position serialises, so a restored sampler continues the very same
//! random stream (ChaCha8: its state is the seed plus a word position).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// The sampler RNG.
#[derive(Debug, Clone)]
pub struct SamplerRng(ChaCha8Rng);

/// Serialised position of a [`SamplerRng`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RngState {
    /// The 32-byte ChaCha seed, hex.
    pub seed: String,
    /// Position in the stream in 32-bit words (decimal: it is a u128).
    pub word_pos: String,
}

impl SamplerRng {
    /// A stream determined by `seed` alone.
    pub fn seeded(seed: u64) -> Self {
        SamplerRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// Uniform integer in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0.random_range(0..n)
    }

    /// Uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0.random::<f64>()
    }

    /// A fresh u64 (for deriving child seeds).
    pub fn next_u64(&mut self) -> u64 {
        self.0.random::<u64>()
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }

    /// Current position.
    pub fn state(&self) -> RngState {
        let seed = self.0.get_seed().iter().map(|b| format!("{b:02x}")).collect();
        RngState { seed, word_pos: self.0.get_word_pos().to_string() }
    }

    /// Restores a position saved by [`Self::state`].
    pub fn from_state(state: &RngState) -> Result<Self> {
        let bad = |what: &str| DataError::State(format!("bad RNG {what}"));
        // ASCII first: the byte slicing below would panic inside a multi-byte character.
        if state.seed.len() != 64 || !state.seed.is_ascii() {
            return Err(bad("seed (expected 64 hex digits)"));
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&state.seed[2 * i..2 * i + 2], 16).map_err(|_| bad("seed"))?;
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_word_pos(state.word_pos.parse::<u128>().map_err(|_| bad("word_pos"))?);
        Ok(SamplerRng(rng))
    }
}

/// SplitMix64 step: decorrelates the seeds handed to child samplers.
pub(crate) fn derive_seed(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
