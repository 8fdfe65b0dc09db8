//! A [`TextEncoder`] without a model, for tests: the example implementation of the trait.
#![allow(dead_code)]

use std::path::Path;

use hybrid_ir_search::{Side, TextEncoder};
use ndarray::Array2;

/// Embeds a text as hashed character trigrams (a classic lexical baseline), `dim` buckets, with
/// a prefix per side. Deterministic; fails on purpose after `fail_after` documents (an interrupted
/// build) when set.
pub struct TrigramEncoder {
    pub dim: usize,
    pub passage_prefix: String,
    pub seed: u64,
    pub fail_after: Option<usize>,
    pub encoded: usize,
}

impl TrigramEncoder {
    pub fn new(dim: usize) -> Self {
        TrigramEncoder { dim, passage_prefix: "passage: ".into(), seed: 1, fail_after: None, encoded: 0 }
    }

    pub fn embed(&self, text: &str) -> Vec<f32> {
        let mut v = vec![0.0f32; self.dim];
        let chars: Vec<char> = text.chars().collect();
        for w in chars.windows(3.min(chars.len()).max(1)) {
            let mut h = self.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for c in w {
                h = (h ^ u64::from(*c)).wrapping_mul(0x100_0000_01B3);
            }
            v[(h % self.dim as u64) as usize] += if h & (1 << 40) == 0 { 1.0 } else { -1.0 };
        }
        v
    }
}

impl TextEncoder for TrigramEncoder {
    fn describe(&self) -> String {
        format!("trigram hashing (dim {}, seed {})", self.dim, self.seed)
    }

    fn prefix(&self, side: Side) -> String {
        match side {
            Side::Query => "query: ".into(),
            Side::Passage => self.passage_prefix.clone(),
        }
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn encode(&mut self, texts: &[&str], side: Side, progress: &mut dyn FnMut(usize)) -> Result<Array2<f32>, String> {
        if side == Side::Passage && texts.len() > 10 {
            if let Some(limit) = self.fail_after
                && self.encoded + texts.len() > limit
            {
                return Err("interrupted (test)".into());
            }
            self.encoded += texts.len();
        }
        let prefix = self.prefix(side);
        let mut out = Array2::zeros((texts.len(), self.dim));
        for (i, t) in texts.iter().enumerate() {
            out.row_mut(i).assign(&ndarray::Array1::from(self.embed(&format!("{prefix}{t}"))));
            progress(i + 1);
        }
        Ok(out)
    }
}

/// A JSONL collection of `n` documents with repeated texts (so scores tie) and titles on some.
pub fn write_collection(path: &Path, n: usize) {
    let words = ["river", "bank", "money", "tree", "paris", "tower", "eiffel", "city", "water", "flow", "stone", "bridge"];
    let mut out = String::new();
    for i in 0..n {
        // Every 7th document repeats document 0's text: equal scores for every query.
        let k = if i % 7 == 0 { 0 } else { i };
        let text: Vec<&str> = (0..6).map(|j| words[(k * 31 + j * 17 + k / 3) % words.len()]).collect();
        let title = if i % 3 == 0 { format!("\"title\": \"T{}\", ", k % 5) } else { String::new() };
        out.push_str(&format!("{{\"docid\": \"d{i}\", {title}\"text\": \"{}\"}}\n", text.join(" ")));
    }
    std::fs::write(path, out).unwrap();
}
