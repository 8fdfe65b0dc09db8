//! The [`ContrastiveLoss`] trait and the three built-in objectives.
//!
//! All three share one kernel: build a `[rows, candidates]` logit matrix `score / τ`, remove
//! masked candidates, and take `logsumexp(row) − target` per row (= cross-entropy with the
//! target candidate), using max subtraction for numerical stability.

use burn::tensor::{Bool, Tensor};

use crate::config::{Reduction, ScoreFn};
use crate::error::LossError;
use crate::mask::{same_group_mask, to_device};
use crate::LossSettings;

/// One batch of embeddings for a contrastive loss.
///
/// * `queries`: `[B, D]`.
/// * `positives`: `[B, D]`; row `i` is query `i`'s positive.
/// * `negatives`: optional `[B * k, D]` hard negatives, `k ≥ 1` per query, query-major: row
///   `i * k + m` is the `m`-th hard negative of query `i`.
/// * `group_keys`: optional parallel ids, one per query row (positive `i` and negatives of `i`
///   share key `i`'s). `None` means every row is its own group (no masking).
#[derive(Debug, Clone)]
pub struct ContrastiveBatch<'a> {
    /// Query embeddings `[B, D]`.
    pub queries: Tensor<2>,
    /// Positive passage embeddings `[B, D]`.
    pub positives: Tensor<2>,
    /// Hard negative embeddings `[B * k, D]`.
    pub negatives: Option<Tensor<2>>,
    /// Parallel ids (one per query).
    pub group_keys: Option<&'a [u64]>,
}

impl<'a> ContrastiveBatch<'a> {
    /// A batch of queries and their positives, no hard negatives, no groups.
    pub fn new(queries: Tensor<2>, positives: Tensor<2>) -> Self {
        Self { queries, positives, negatives: None, group_keys: None }
    }

    /// Adds hard negatives `[B * k, D]`.
    pub fn with_negatives(mut self, negatives: Tensor<2>) -> Self {
        self.negatives = Some(negatives);
        self
    }

    /// Adds parallel ids, one per query row.
    pub fn with_group_keys(mut self, keys: &'a [u64]) -> Self {
        self.group_keys = Some(keys);
        self
    }

    /// Checks shapes and key count; returns `(B, k)` with `k = 0` when there are no negatives.
    pub fn validate(&self) -> Result<(usize, usize), LossError> {
        let [rows, dim] = self.queries.dims();
        if rows == 0 {
            return Err(LossError::EmptyBatch);
        }
        let pos = self.positives.dims();
        if pos != [rows, dim] {
            return Err(LossError::Shape {
                tensor: "positives",
                actual: pos.to_vec(),
                expected: format!("[{rows}, {dim}] like `queries`"),
            });
        }
        let per_row = match &self.negatives {
            None => 0,
            Some(neg) => {
                let [n, d] = neg.dims();
                if d != dim || n == 0 || n % rows != 0 {
                    return Err(LossError::Shape {
                        tensor: "negatives",
                        actual: vec![n, d],
                        expected: format!("[{rows} * k, {dim}] with k >= 1 hard negatives per query"),
                    });
                }
                n / rows
            }
        };
        if let Some(keys) = self.group_keys
            && keys.len() != rows
        {
            return Err(LossError::GroupKeys { keys: keys.len(), queries: rows });
        }
        Ok((rows, per_row))
    }
}

/// A contrastive objective over one batch of embeddings, returning a scalar (`[1]`) loss tensor on
/// the embeddings' device. Backend-agnostic: works on any burn device, with or without autodiff.
pub trait ContrastiveLoss: std::fmt::Debug + Send + Sync {
    /// Short stable name (`paper`, `in_batch`, `symmetric`).
    fn name(&self) -> &'static str;
    /// Score function, τ, reduction and masking in use.
    fn settings(&self) -> &LossSettings;
    /// Computes the loss.
    fn forward(&self, batch: ContrastiveBatch<'_>) -> Result<Tensor<1>, LossError>;
}

/// Paper Eq. (1) read literally (arXiv 2408.10536 §2.1):
/// `L = Σ_i −log( e^{s(q_i,d_i⁺)/τ} / ( e^{s(q_i,d_i⁺)/τ} + Σ_j e^{s(q_i,d_j⁻)/τ} ) )`.
/// Other queries' positives are *not* candidates. Requires hard negatives.
#[derive(Debug, Clone)]
pub struct PaperLoss {
    settings: LossSettings,
}

/// In-batch negatives (DPR, Tevatron, sentence-transformers `MultipleNegativesRankingLoss`):
/// candidates of query `i` are every positive and every hard negative in the batch.
#[derive(Debug, Clone)]
pub struct InBatchLoss {
    settings: LossSettings,
}

/// Symmetric in-batch loss: `(L_{q→p} + L_{p→q}) / 2`, where `L_{q→p}` is [`InBatchLoss`] and in
/// `L_{p→q}` each positive scores every query of the batch (sentence-transformers
/// `MultipleNegativesSymmetricRankingLoss`; hard negatives only enter the q→p direction).
#[derive(Debug, Clone)]
pub struct SymmetricLoss {
    settings: LossSettings,
}

macro_rules! impl_new {
    ($($ty:ident),*) => {$(
        impl $ty {
            /// Validates the settings (τ > 0) and builds the loss.
            pub fn new(settings: LossSettings) -> Result<Self, LossError> {
                settings.validate()?;
                Ok(Self { settings })
            }
        }
    )*};
}
impl_new!(PaperLoss, InBatchLoss, SymmetricLoss);

impl ContrastiveLoss for PaperLoss {
    fn name(&self) -> &'static str {
        "paper"
    }

    fn settings(&self) -> &LossSettings {
        &self.settings
    }

    fn forward(&self, batch: ContrastiveBatch<'_>) -> Result<Tensor<1>, LossError> {
        let (rows, per_row) = batch.validate()?;
        let Some(negatives) = batch.negatives else {
            return Err(LossError::PaperNeedsHardNegatives);
        };
        let s = &self.settings;
        let q = prepare(batch.queries, s.score);
        let p = prepare(batch.positives, s.score);
        let n = prepare(negatives, s.score);
        let scale = 1.0 / s.temperature;

        let target = (q.clone() * p).sum_dim(1) * scale; // [B, 1]
        let neg_logits = q.matmul(n.transpose()) * scale; // [B, B*k]
        let logits = Tensor::cat(vec![target.clone(), neg_logits], 1);

        // Column 0 (own positive) is never masked; negatives follow the group rule.
        let mask = group_keys_if(s.mask_same_group, batch.group_keys).map(|keys| {
            let neg = same_group_mask(keys, per_row);
            let cols = 1 + rows * per_row;
            let mut full = Vec::with_capacity(rows * cols);
            for row in neg.chunks(rows * per_row) {
                full.push(false);
                full.extend_from_slice(row);
            }
            (full, cols)
        });
        let mask = mask.and_then(|(m, cols)| to_device(m, rows, cols, &logits.device()));
        Ok(reduce(row_losses(logits, target, mask), s.reduction))
    }
}

impl ContrastiveLoss for InBatchLoss {
    fn name(&self) -> &'static str {
        "in_batch"
    }

    fn settings(&self) -> &LossSettings {
        &self.settings
    }

    fn forward(&self, batch: ContrastiveBatch<'_>) -> Result<Tensor<1>, LossError> {
        let (rows, per_row) = batch.validate()?;
        let q = prepare(batch.queries, self.settings.score);
        let p = prepare(batch.positives, self.settings.score);
        let n = batch.negatives.map(|n| prepare(n, self.settings.score));
        let rows_loss = query_to_passage(&self.settings, q, p, n, batch.group_keys, rows, per_row);
        Ok(reduce(rows_loss, self.settings.reduction))
    }
}

impl ContrastiveLoss for SymmetricLoss {
    fn name(&self) -> &'static str {
        "symmetric"
    }

    fn settings(&self) -> &LossSettings {
        &self.settings
    }

    fn forward(&self, batch: ContrastiveBatch<'_>) -> Result<Tensor<1>, LossError> {
        let (rows, per_row) = batch.validate()?;
        let s = &self.settings;
        let q = prepare(batch.queries, s.score);
        let p = prepare(batch.positives, s.score);
        let n = batch.negatives.map(|n| prepare(n, s.score));
        let forward = query_to_passage(s, q.clone(), p.clone(), n, batch.group_keys, rows, per_row);

        // p→q: positive i against every query j; target j = i. The group rule is symmetric, so
        // the positive-block mask of q→p is also the p→q mask.
        let scale = 1.0 / s.temperature;
        let target = (q.clone() * p.clone()).sum_dim(1) * scale;
        let logits = p.matmul(q.transpose()) * scale;
        let mask = group_keys_if(s.mask_same_group, batch.group_keys)
            .and_then(|keys| to_device(same_group_mask(keys, 1), rows, rows, &logits.device()));
        let backward = row_losses(logits, target, mask);

        Ok((reduce(forward, s.reduction) + reduce(backward, s.reduction)) * 0.5)
    }
}

/// Per-query in-batch loss `[B]`: candidates are all positives, then all hard negatives.
fn query_to_passage(
    s: &LossSettings,
    q: Tensor<2>,
    p: Tensor<2>,
    n: Option<Tensor<2>>,
    group_keys: Option<&[u64]>,
    rows: usize,
    per_row: usize,
) -> Tensor<1> {
    let scale = 1.0 / s.temperature;
    let target = (q.clone() * p.clone()).sum_dim(1) * scale;
    let mut blocks = vec![q.clone().matmul(p.transpose()) * scale];
    if let Some(n) = n {
        blocks.push(q.matmul(n.transpose()) * scale);
    }
    let logits = Tensor::cat(blocks, 1);
    let cols = rows * (1 + per_row);
    let mask = group_keys_if(s.mask_same_group, group_keys).and_then(|keys| {
        let pos = same_group_mask(keys, 1);
        let neg = same_group_mask(keys, per_row);
        let mut full = Vec::with_capacity(rows * cols);
        for i in 0..rows {
            full.extend_from_slice(&pos[i * rows..(i + 1) * rows]);
            full.extend_from_slice(&neg[i * rows * per_row..(i + 1) * rows * per_row]);
        }
        to_device(full, rows, cols, &logits.device())
    });
    row_losses(logits, target, mask)
}

fn group_keys_if(enabled: bool, keys: Option<&[u64]>) -> Option<&[u64]> {
    if enabled { keys } else { None }
}

/// L2-normalises rows for cosine scores: `x / max(‖x‖, 1e-12)` (as `torch.nn.functional.normalize`).
/// Clamping the squared norm keeps the gradient finite for an all-zero row.
fn prepare(x: Tensor<2>, score: ScoreFn) -> Tensor<2> {
    match score {
        ScoreFn::Dot => x,
        ScoreFn::Cosine => {
            let norm = x.clone().square().sum_dim(1).clamp_min(1e-24).sqrt();
            x / norm
        }
    }
}

/// `logsumexp(masked row) − target` per row. Masked logits become −∞ and so get weight exactly 0;
/// the target column is never masked, so every row max is finite and no NaN can appear.
fn row_losses(logits: Tensor<2>, target: Tensor<2>, mask: Option<Tensor<2, Bool>>) -> Tensor<1> {
    let logits = match mask {
        Some(mask) => logits.mask_fill(mask, f32::NEG_INFINITY),
        None => logits,
    };
    // The max only shifts for stability; its gradient contribution cancels exactly, so detach it.
    let max = logits.clone().max_dim(1).detach();
    let lse = (logits - max.clone()).exp().sum_dim(1).log() + max;
    (lse - target).squeeze_dim::<1>(1)
}

fn reduce(rows: Tensor<1>, reduction: Reduction) -> Tensor<1> {
    match reduction {
        Reduction::Sum => rows.sum(),
        Reduction::Mean => rows.mean(),
    }
}
