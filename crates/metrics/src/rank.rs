//! Ranks without sorting, and the tie rule.
//!
//! **Tie rule (everywhere in this crate except TREC run files):** candidates are ranked by
//! descending score; among equal scores the candidate that comes first in the pool ranks first.
//! So the 1-based rank of candidate `r` is
//!
//! ```text
//! rank(r) = 1 + #{c : s_c > s_r} + #{c : s_c == s_r and c < r}
//! ```
//!
//! which is a count, not a sort: one pass over the scores per relevant item.

use crate::error::{MetricsError, Result};

/// Whether candidate `c` (score `s_c`) ranks above candidate `r` (score `s_r`) under the tie rule.
#[inline]
pub fn ranks_above(s_c: f32, c: usize, s_r: f32, r: usize) -> bool {
    s_c > s_r || (s_c == s_r && c < r)
}

/// 1-based ranks of the `relevant` candidates (indices into `scores`) in the ranking of `scores`,
/// returned in the order of `relevant`. Scores must not be NaN.
pub fn ranks_of(scores: &[f32], relevant: &[u32]) -> Result<Vec<u64>> {
    if let Some(i) = scores.iter().position(|s| s.is_nan()) {
        return Err(MetricsError::Invalid(format!("score {i} is NaN")));
    }
    relevant
        .iter()
        .map(|&r| {
            let r = r as usize;
            let s_r = *scores.get(r).ok_or_else(|| {
                MetricsError::Invalid(format!("relevant index {r} is outside the {} scores", scores.len()))
            })?;
            let above = scores.iter().enumerate().filter(|&(c, &s_c)| ranks_above(s_c, c, s_r, r)).count();
            Ok(above as u64 + 1)
        })
        .collect()
}

/// How query and candidate vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScoreFunction {
    /// Cosine similarity: rows are L2-normalised once, then dot products are taken.
    #[default]
    Cosine,
    /// Raw dot product (what LAReQA's code uses).
    Dot,
}

impl ScoreFunction {
    /// `cosine` or `dot`.
    pub fn name(self) -> &'static str {
        match self {
            ScoreFunction::Cosine => "cosine",
            ScoreFunction::Dot => "dot",
        }
    }

    /// Parses `cosine` / `cos` / `dot`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "cosine" | "cos" => Ok(ScoreFunction::Cosine),
            "dot" => Ok(ScoreFunction::Dot),
            other => Err(MetricsError::Invalid(format!("unknown score `{other}` (expected cosine or dot)"))),
        }
    }
}

/// L2-normalises every row in place (a zero row stays zero, so all its cosine scores are 0).
pub fn normalize_rows(m: &mut ndarray::Array2<f32>) {
    for mut row in m.rows_mut() {
        let norm = row.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt();
        if norm > 0.0 {
            let inv = (1.0 / norm) as f32;
            row.mapv_inplace(|x| x * inv);
        }
    }
}
