//! Serde configuration: pick a loss kind, a score function, τ, a reduction and group masking.

use serde::{Deserialize, Serialize};

use crate::error::LossError;
use crate::losses::{ContrastiveLoss, InBatchLoss, PaperLoss, SymmetricLoss};

/// Which contrastive objective to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// The paper's Eq. (1) read literally: own positive + every hard negative of the batch.
    Paper,
    /// DPR / Tevatron / sentence-transformers MNRL: every positive and hard negative of the batch.
    #[default]
    InBatch,
    /// Mean of the in-batch query→passage loss and the passage→query loss.
    Symmetric,
}

/// How a query and a candidate are scored before dividing by τ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScoreFn {
    /// Cosine similarity (the paper's choice): rows are L2-normalised first.
    #[default]
    Cosine,
    /// Plain dot product.
    Dot,
}

/// How the per-query losses are combined into one scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    /// Sum over the queries (the paper's Eq. 1).
    Sum,
    /// Mean over the queries (sentence-transformers, Tevatron, DPR).
    #[default]
    Mean,
}

/// Settings shared by every built-in loss.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossSettings {
    /// Score function.
    pub score: ScoreFn,
    /// Temperature τ; logits are `score / τ`. 0.05 (scale 20) is the sentence-transformers /
    /// E5 default. The paper gives none; see the crate README for why one is needed.
    pub temperature: f64,
    /// Sum or mean over queries.
    pub reduction: Reduction,
    /// Remove candidates whose group key equals the query's (translations are not negatives).
    pub mask_same_group: bool,
}

impl Default for LossSettings {
    fn default() -> Self {
        Self { score: ScoreFn::Cosine, temperature: 0.05, reduction: Reduction::Mean, mask_same_group: true }
    }
}

impl LossSettings {
    /// Checks τ: finite and strictly positive.
    pub fn validate(&self) -> Result<(), LossError> {
        if self.temperature.is_finite() && self.temperature > 0.0 {
            Ok(())
        } else {
            Err(LossError::Temperature(self.temperature))
        }
    }
}

/// Full loss configuration (what a run's TOML/JSON file holds).
///
/// ```
/// use hybrid_ir_loss::{LossConfig, LossKind};
/// let cfg: LossConfig = serde_json::from_str(r#"{"kind": "paper", "reduction": "sum"}"#).unwrap();
/// assert_eq!(cfg.kind, LossKind::Paper);
/// assert_eq!(cfg.temperature, 0.05); // default
/// let loss = cfg.build().unwrap();
/// assert_eq!(loss.name(), "paper");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LossConfig {
    /// Objective.
    pub kind: LossKind,
    /// Score function (default cosine).
    pub score: ScoreFn,
    /// Temperature τ (default 0.05).
    pub temperature: f64,
    /// Reduction over queries (default mean).
    pub reduction: Reduction,
    /// Mask candidates of the query's own group (default true).
    pub mask_same_group: bool,
}

impl Default for LossConfig {
    fn default() -> Self {
        let s = LossSettings::default();
        Self {
            kind: LossKind::default(),
            score: s.score,
            temperature: s.temperature,
            reduction: s.reduction,
            mask_same_group: s.mask_same_group,
        }
    }
}

impl LossConfig {
    /// The shared settings part of this config.
    pub fn settings(&self) -> LossSettings {
        LossSettings {
            score: self.score,
            temperature: self.temperature,
            reduction: self.reduction,
            mask_same_group: self.mask_same_group,
        }
    }

    /// Validates the config and builds the loss behind the common trait.
    pub fn build(&self) -> Result<Box<dyn ContrastiveLoss>, LossError> {
        let settings = self.settings();
        Ok(match self.kind {
            LossKind::Paper => Box::new(PaperLoss::new(settings)?),
            LossKind::InBatch => Box::new(InBatchLoss::new(settings)?),
            LossKind::Symmetric => Box::new(SymmetricLoss::new(settings)?),
        })
    }
}
