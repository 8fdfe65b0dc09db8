//! Shared test helpers: one test per compiled-in device, random inputs, and an independent naive
//! f64 scalar implementation of every loss (loops over explicit candidate lists; no tensors).
#![allow(dead_code)]

use burn::tensor::{DType, Device, Tensor, TensorData};
use hybrid_ir_loss::{LossKind, LossSettings, Reduction, ScoreFn};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `device_tests!(a, b)` turns `fn a(device: Device)` into one `#[test]` per backend compiled in:
/// `flex::a` always, `tch::a` with the crate feature `tch` (LibTorch CPU).
macro_rules! device_tests {
    ($($name:ident),* $(,)?) => {
        mod flex {
            $( #[test] fn $name() { super::$name(burn::tensor::Device::flex()) } )*
        }
        #[cfg(feature = "tch")]
        mod tch {
            $(
                #[test]
                #[allow(deprecated)]
                fn $name() { super::$name(burn::tensor::Device::libtorch()) }
            )*
        }
    };
}

/// Host matrix, row-major rows.
pub type Mat = Vec<Vec<f64>>;

/// Deterministic RNG for test inputs (the backend RNG is left to dropout).
pub fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// `rows × cols` entries uniform in [-1, 1) times `scale`.
pub fn random_mat(rng: &mut ChaCha8Rng, rows: usize, cols: usize, scale: f64) -> Mat {
    (0..rows).map(|_| (0..cols).map(|_| rng.random_range(-1.0..1.0) * scale).collect()).collect()
}

/// Host matrix → tensor of the given float dtype on `device`.
pub fn tensor(m: &Mat, device: &Device, dtype: DType) -> Tensor<2> {
    let rows = m.len();
    let cols = m.first().map_or(0, Vec::len);
    let flat: Vec<f64> = m.iter().flatten().copied().collect();
    Tensor::<2>::from_data(TensorData::new(flat, [rows, cols]), (device, dtype))
}

/// Tensor → host f64 values (flattened).
pub fn values<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().iter::<f64>().collect()
}

/// Tensor `[1]` → f64.
pub fn scalar(t: Tensor<1>) -> f64 {
    let v = values(t);
    assert_eq!(v.len(), 1, "loss must be a single value");
    v[0]
}

fn score(a: &[f64], b: &[f64], score: ScoreFn) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    match score {
        ScoreFn::Dot => dot,
        ScoreFn::Cosine => {
            let na = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            dot / (na * nb)
        }
    }
}

/// `−log(e^target / Σ_c e^c)` where `candidates` includes the target logit.
fn nll(target: f64, candidates: &[f64]) -> f64 {
    let max = candidates.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = candidates.iter().map(|c| (c - max).exp()).sum();
    max + z.ln() - target
}

fn reduce(rows: &[f64], reduction: Reduction) -> f64 {
    let sum: f64 = rows.iter().sum();
    match reduction {
        Reduction::Sum => sum,
        Reduction::Mean => sum / rows.len() as f64,
    }
}

/// The naive reference. `negatives` has `B * k` rows, row `r` owned by query `r / k`.
pub fn reference_loss(
    kind: LossKind,
    s: &LossSettings,
    q: &Mat,
    p: &Mat,
    negatives: Option<&Mat>,
    keys: Option<&[u64]>,
) -> f64 {
    let b = q.len();
    let empty = Vec::new();
    let n = negatives.unwrap_or(&empty);
    let k = n.len() / b;
    let scale = 1.0 / s.temperature;
    let sc = |x: &[f64], y: &[f64]| score(x, y, s.score) * scale;
    // Candidate owned by row `owner` is removed for row `i` iff same key and not its own.
    let removed = |i: usize, owner: usize| {
        s.mask_same_group && owner != i && keys.is_some_and(|keys| keys[i] == keys[owner])
    };
    let negatives_of = |i: usize, x: &[f64], cands: &mut Vec<f64>| {
        for (r, neg) in n.iter().enumerate() {
            if !removed(i, r / k) {
                cands.push(sc(x, neg));
            }
        }
    };
    let q_to_p: Vec<f64> = (0..b)
        .map(|i| {
            let target = sc(&q[i], &p[i]);
            let mut cands = Vec::new();
            match kind {
                LossKind::Paper => cands.push(target),
                LossKind::InBatch | LossKind::Symmetric => {
                    for (j, pj) in p.iter().enumerate() {
                        if !removed(i, j) {
                            cands.push(sc(&q[i], pj));
                        }
                    }
                }
            }
            negatives_of(i, &q[i], &mut cands);
            nll(target, &cands)
        })
        .collect();
    match kind {
        LossKind::Paper | LossKind::InBatch => reduce(&q_to_p, s.reduction),
        LossKind::Symmetric => {
            let p_to_q: Vec<f64> = (0..b)
                .map(|i| {
                    let target = sc(&p[i], &q[i]);
                    let cands: Vec<f64> =
                        (0..b).filter(|&j| !removed(i, j)).map(|j| sc(&p[i], &q[j])).collect();
                    nll(target, &cands)
                })
                .collect();
            0.5 * (reduce(&q_to_p, s.reduction) + reduce(&p_to_q, s.reduction))
        }
    }
}

/// `|a − b| ≤ rel · max(1, |b|)`.
pub fn assert_close(what: &str, actual: f64, expected: f64, rel: f64) {
    let tol = rel * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tol,
        "{what}: got {actual}, expected {expected} (|diff| {} > tol {tol})",
        (actual - expected).abs()
    );
}
