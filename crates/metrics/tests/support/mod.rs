//! Shared helpers of the metrics crate's integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use hybrid_ir_data::{LareqaBenchmark, RetrievalBenchmark};

/// The project's data root: `$HYBRID_IR_DATA` or `<repo>/../shared/data`. Fails loudly if missing.
pub fn data_root() -> PathBuf {
    let beside_repo = hybrid_ir_data::paths::package_dir(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    hybrid_ir_data::locate_data_root(&[beside_repo]).unwrap_or_else(|e| panic!("{e}"))
}

/// Loads a benchmark's retrieval view.
pub fn benchmark(which: LareqaBenchmark) -> RetrievalBenchmark {
    let ds = which.load(&data_root()).expect("benchmark loads");
    RetrievalBenchmark::from_lareqa(&ds)
}

/// A small deterministic generator (xorshift64*), so tests need no rand dependency.
pub struct Xorshift(pub u64);

impl Xorshift {
    /// Next raw value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform integer in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform float in [-1, 1).
    pub fn symmetric(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}
