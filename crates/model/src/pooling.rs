//! Pooling of token states into one vector, and reading it from a sentence-transformers
//! directory (`modules.json`, `1_Pooling/config.json`, `2_Normalize`).

use std::path::Path;

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// How token states become one embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolingMode {
    /// The first token's state (`[CLS]` / `<s>`).
    Cls,
    /// Mean over non-padding tokens.
    Mean,
    /// BERT's pooler: `tanh(dense(cls))`. Needs `pooler.*` weights.
    Pooler,
}

impl std::str::FromStr for PoolingMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "cls" => Ok(Self::Cls),
            "mean" => Ok(Self::Mean),
            "pooler" => Ok(Self::Pooler),
            other => Err(format!("unknown pooling {other:?} (cls | mean | pooler)")),
        }
    }
}

/// Pooling mode plus optional L2 normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolingConfig {
    /// The pooling mode.
    pub mode: PoolingMode,
    /// Divide each embedding by its L2 norm.
    pub normalize: bool,
}

impl Default for PoolingConfig {
    /// Mean pooling with L2 normalisation (what e5 and all-MiniLM use).
    fn default() -> Self {
        Self { mode: PoolingMode::Mean, normalize: true }
    }
}

#[derive(Deserialize)]
struct StModule {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct StPooling {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
    #[serde(default)]
    pooling_mode_weightedmean_tokens: bool,
    #[serde(default)]
    pooling_mode_lasttoken: bool,
}

impl PoolingConfig {
    /// Reads the sentence-transformers pipeline of `dir` (`modules.json` plus the pooling
    /// module's `config.json`). Returns `Ok(None)` when the directory has no `modules.json`.
    pub fn from_sentence_transformers(dir: &Path) -> Result<Option<Self>> {
        let modules_path = dir.join("modules.json");
        if !modules_path.exists() {
            return Ok(None);
        }
        let text = std::fs::read(&modules_path).map_err(|e| ModelError::io(&modules_path, e))?;
        let modules: Vec<StModule> = serde_json::from_slice(&text).map_err(|e| ModelError::json(&modules_path, e))?;
        let mut mode = None;
        let mut normalize = false;
        for module in &modules {
            match module.kind.rsplit('.').next().unwrap_or_default() {
                "Transformer" => {}
                "Pooling" => {
                    let path = dir.join(&module.path).join("config.json");
                    let text = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
                    let p: StPooling = serde_json::from_slice(&text).map_err(|e| ModelError::json(&path, e))?;
                    let unsupported = p.pooling_mode_max_tokens
                        || p.pooling_mode_mean_sqrt_len_tokens
                        || p.pooling_mode_weightedmean_tokens
                        || p.pooling_mode_lasttoken;
                    mode = Some(match (p.pooling_mode_cls_token, p.pooling_mode_mean_tokens, unsupported) {
                        (true, false, false) => PoolingMode::Cls,
                        (false, true, false) => PoolingMode::Mean,
                        _ => {
                            return Err(ModelError::Unsupported {
                                path,
                                message: "only a single cls or mean pooling mode is supported".into(),
                            });
                        }
                    });
                }
                "Normalize" => normalize = true,
                other => {
                    return Err(ModelError::Unsupported {
                        path: modules_path.clone(),
                        message: format!("sentence-transformers module {other:?} (after pooling) is not supported"),
                    });
                }
            }
        }
        let mode = mode.ok_or_else(|| ModelError::Unsupported {
            path: modules_path.clone(),
            message: "modules.json has no Pooling module".into(),
        })?;
        Ok(Some(Self { mode, normalize }))
    }
}

/// Masked mean over the sequence: `states [B, L, H]`, `mask [B, L]` (1 = token, 0 = pad) -> `[B, H]`.
pub fn mean_pool(states: Tensor<3>, mask: Tensor<2, Int>) -> Tensor<2> {
    let [batch, _, hidden] = states.dims();
    let mask = mask.float().unsqueeze_dim::<3>(2); // [B, L, 1]
    let summed = (states * mask.clone()).sum_dim(1).reshape([batch, hidden]);
    // Same floor as sentence-transformers, so an all-padding row gives zeros instead of NaN.
    let counts = mask.sum_dim(1).reshape([batch, 1]).clamp_min(1e-9);
    summed / counts
}

/// The first token's state: `[B, L, H]` -> `[B, H]`.
pub fn cls_pool(states: Tensor<3>) -> Tensor<2> {
    let [batch, _, hidden] = states.dims();
    states.narrow(1, 0, 1).reshape([batch, hidden])
}

/// Divides each row by its L2 norm (floored at 1e-12, as `torch.nn.functional.normalize`).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}
