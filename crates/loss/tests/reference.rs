//! Every loss variant equals the naive f64 scalar implementation on random inputs.
//! Tolerances: f32 tensors 2e-5 · max(1, |loss|) (logits up to 1/τ = 20 lose ~1e-6 relative in
//! f32); f64 tensors 1e-10.

#[macro_use]
mod common;

use burn::tensor::{DType, Device};
use common::*;
use hybrid_ir_loss::{ContrastiveBatch, LossConfig, LossError, LossKind, Reduction, ScoreFn};

const KINDS: [LossKind; 3] = [LossKind::Paper, LossKind::InBatch, LossKind::Symmetric];

/// Runs every combination of kind × score × τ × reduction × negatives-per-query × keys × masking.
fn check_all(device: &Device, dtype: DType, rel: f64) {
    let mut rng = rng(11);
    let (b, d) = (6, 5);
    // Keys with two translation groups ({0, 3, 4} and {1, 5}) and a singleton.
    let grouped: [u64; 6] = [10, 20, 30, 10, 10, 20];
    let mut checked = 0;
    for per_row in [0, 1, 2] {
        let q = random_mat(&mut rng, b, d, 1.0);
        let p = random_mat(&mut rng, b, d, 1.0);
        let n = random_mat(&mut rng, b * per_row, d, 1.0);
        for kind in KINDS {
            if kind == LossKind::Paper && per_row == 0 {
                continue; // an error, tested below
            }
            for score in [ScoreFn::Cosine, ScoreFn::Dot] {
                for temperature in [0.05, 1.0] {
                    for reduction in [Reduction::Sum, Reduction::Mean] {
                        for mask_same_group in [true, false] {
                            for keys in [None, Some(&grouped[..])] {
                                let cfg = LossConfig { kind, score, temperature, reduction, mask_same_group };
                                let loss = cfg.build().unwrap();
                                let mut batch = ContrastiveBatch::new(tensor(&q, device, dtype), tensor(&p, device, dtype));
                                if per_row > 0 {
                                    batch = batch.with_negatives(tensor(&n, device, dtype));
                                }
                                if let Some(keys) = keys {
                                    batch = batch.with_group_keys(keys);
                                }
                                let got = scalar(loss.forward(batch).unwrap());
                                let negs = (per_row > 0).then_some(&n);
                                let want = reference_loss(kind, &cfg.settings(), &q, &p, negs, keys);
                                assert_close(&format!("{cfg:?} k={per_row} keys={keys:?}"), got, want, rel);
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 2 * 2 * 2 * 2 * (2 + 3 + 3) * 2, "combinations covered");
}

fn matches_reference_f32(device: Device) {
    check_all(&device, DType::F32, 2e-5);
}

fn matches_reference_f64(device: Device) {
    check_all(&device, DType::F64, 1e-10);
}

/// Large logits (dot scores of long vectors, τ = 0.01) must not overflow: the max-shifted
/// log-sum-exp stays finite where a naive `exp` would give inf.
fn stable_for_large_logits(device: Device) {
    let mut rng = rng(5);
    let q = random_mat(&mut rng, 4, 8, 30.0);
    let p = random_mat(&mut rng, 4, 8, 30.0);
    let cfg = LossConfig { kind: LossKind::InBatch, score: ScoreFn::Dot, temperature: 0.01, ..LossConfig::default() };
    let got = scalar(cfg.build().unwrap().forward(ContrastiveBatch::new(tensor(&q, &device, DType::F32), tensor(&p, &device, DType::F32))).unwrap());
    let want = reference_loss(cfg.kind, &cfg.settings(), &q, &p, None, None);
    assert!(got.is_finite(), "loss overflowed: {got}");
    assert_close("large logits", got, want, 1e-5);
}

fn paper_without_negatives_is_an_error(device: Device) {
    let mut rng = rng(1);
    let q = random_mat(&mut rng, 3, 4, 1.0);
    let cfg = LossConfig { kind: LossKind::Paper, ..LossConfig::default() };
    let err = cfg.build().unwrap().forward(ContrastiveBatch::new(tensor(&q, &device, DType::F32), tensor(&q, &device, DType::F32))).unwrap_err();
    assert_eq!(err, LossError::PaperNeedsHardNegatives);
}

fn shape_errors_name_the_tensor(device: Device) {
    let mut rng = rng(2);
    let q = tensor(&random_mat(&mut rng, 3, 4, 1.0), &device, DType::F32);
    let p_bad = tensor(&random_mat(&mut rng, 2, 4, 1.0), &device, DType::F32);
    let n_bad = tensor(&random_mat(&mut rng, 4, 4, 1.0), &device, DType::F32);
    let loss = LossConfig::default().build().unwrap();
    let err = loss.forward(ContrastiveBatch::new(q.clone(), p_bad)).unwrap_err();
    assert!(matches!(err, LossError::Shape { tensor: "positives", .. }), "{err}");
    let err = loss.forward(ContrastiveBatch::new(q.clone(), q.clone()).with_negatives(n_bad)).unwrap_err();
    assert!(matches!(err, LossError::Shape { tensor: "negatives", .. }), "{err}");
    let err = loss.forward(ContrastiveBatch::new(q.clone(), q).with_group_keys(&[1, 2])).unwrap_err();
    assert_eq!(err, LossError::GroupKeys { keys: 2, queries: 3 });
}

device_tests!(
    matches_reference_f32,
    matches_reference_f64,
    stable_for_large_logits,
    paper_without_negatives_is_an_error,
    shape_errors_name_the_tensor,
);

#[test]
fn config_rejects_bad_temperature() {
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let cfg = LossConfig { temperature: t, ..LossConfig::default() };
        assert!(matches!(cfg.build().unwrap_err(), LossError::Temperature(_)), "τ = {t}");
    }
}

#[test]
fn config_defaults_and_serde_names() {
    let cfg: LossConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(cfg, LossConfig::default());
    assert_eq!((cfg.kind, cfg.score, cfg.temperature, cfg.reduction, cfg.mask_same_group), (LossKind::InBatch, ScoreFn::Cosine, 0.05, Reduction::Mean, true));
    let json = serde_json::to_string(&LossConfig { kind: LossKind::Symmetric, score: ScoreFn::Dot, ..cfg }).unwrap();
    assert!(json.contains(r#""kind":"symmetric""#) && json.contains(r#""score":"dot""#), "{json}");
    assert!(serde_json::from_str::<LossConfig>(r#"{"tau": 0.1}"#).is_err(), "unknown fields are rejected");
}
