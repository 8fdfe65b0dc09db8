//! Autodiff gradients w.r.t. queries, positives and hard negatives match central finite
//! differences.
//!
//! * f64 tensors: FD of the burn loss itself (step 1e-6), tolerance 1e-6 · max(1, |g|).
//! * f32 tensors: FD of the naive f64 reference (step 1e-6), tolerance 2e-4 · max(1, |g|)
//!   (f32 FD itself would need a step ~1e-2 and be too coarse to catch much).

#[macro_use]
mod common;

use burn::tensor::{DType, Device};
use common::*;
use hybrid_ir_loss::{ContrastiveBatch, ContrastiveLoss, LossConfig, LossKind, Reduction, ScoreFn};

const KEYS: [u64; 4] = [3, 8, 3, 5];

struct Inputs {
    q: Mat,
    p: Mat,
    n: Mat,
}

/// Loss value and gradients (flattened q, p, n) from burn autodiff.
fn autodiff(loss: &dyn ContrastiveLoss, x: &Inputs, device: &Device, dtype: DType) -> (f64, [Vec<f64>; 3]) {
    let ad = device.clone().autodiff();
    let q = tensor(&x.q, &ad, dtype).require_grad();
    let p = tensor(&x.p, &ad, dtype).require_grad();
    let n = tensor(&x.n, &ad, dtype).require_grad();
    let batch = ContrastiveBatch::new(q.clone(), p.clone()).with_negatives(n.clone()).with_group_keys(&KEYS);
    let value = loss.forward(batch).unwrap();
    let grads = value.backward();
    let g = |t: &burn::tensor::Tensor<2>| values(t.grad(&grads).expect("leaf has a gradient"));
    (scalar(value), [g(&q), g(&p), g(&n)])
}

/// Central differences of `f` over every entry of q, p and n.
fn finite_differences(x: &Inputs, step: f64, f: impl Fn(&Inputs) -> f64) -> [Vec<f64>; 3] {
    let mut out: [Vec<f64>; 3] = Default::default();
    for (which, slot) in out.iter_mut().enumerate() {
        let mat = match which {
            0 => &x.q,
            1 => &x.p,
            _ => &x.n,
        };
        for r in 0..mat.len() {
            for c in 0..mat[r].len() {
                let eval = |delta: f64| {
                    let mut y = Inputs { q: x.q.clone(), p: x.p.clone(), n: x.n.clone() };
                    let m = match which {
                        0 => &mut y.q,
                        1 => &mut y.p,
                        _ => &mut y.n,
                    };
                    m[r][c] += delta;
                    f(&y)
                };
                slot.push((eval(step) - eval(-step)) / (2.0 * step));
            }
        }
    }
    out
}

fn variants() -> Vec<LossConfig> {
    let mut v = Vec::new();
    for kind in [LossKind::Paper, LossKind::InBatch, LossKind::Symmetric] {
        for score in [ScoreFn::Cosine, ScoreFn::Dot] {
            for reduction in [Reduction::Sum, Reduction::Mean] {
                let temperature = if score == ScoreFn::Cosine { 0.05 } else { 0.5 };
                v.push(LossConfig { kind, score, temperature, reduction, mask_same_group: true });
            }
        }
    }
    v
}

fn inputs(seed: u64) -> Inputs {
    let mut rng = rng(seed);
    Inputs { q: random_mat(&mut rng, 4, 3, 1.0), p: random_mat(&mut rng, 4, 3, 1.0), n: random_mat(&mut rng, 4, 3, 1.0) }
}

fn compare(what: &str, got: &[Vec<f64>; 3], want: &[Vec<f64>; 3], rel: f64) {
    for (t, name) in ["queries", "positives", "negatives"].iter().enumerate() {
        assert_eq!(got[t].len(), want[t].len());
        for (i, (a, b)) in got[t].iter().zip(&want[t]).enumerate() {
            assert_close(&format!("{what}: d/d{name}[{i}]"), *a, *b, rel);
        }
    }
}

fn f64_autodiff_matches_finite_differences(device: Device) {
    let x = inputs(21);
    for cfg in variants() {
        let loss = cfg.build().unwrap();
        let (_, got) = autodiff(loss.as_ref(), &x, &device, DType::F64);
        let want = finite_differences(&x, 1e-6, |y| {
            let b = ContrastiveBatch::new(tensor(&y.q, &device, DType::F64), tensor(&y.p, &device, DType::F64))
                .with_negatives(tensor(&y.n, &device, DType::F64))
                .with_group_keys(&KEYS);
            scalar(loss.forward(b).unwrap())
        });
        compare(&format!("{cfg:?}"), &got, &want, 1e-6);
    }
}

fn f32_autodiff_matches_reference_finite_differences(device: Device) {
    let x = inputs(22);
    for cfg in variants() {
        let loss = cfg.build().unwrap();
        let (_, got) = autodiff(loss.as_ref(), &x, &device, DType::F32);
        let want = finite_differences(&x, 1e-6, |y| {
            reference_loss(cfg.kind, &cfg.settings(), &y.q, &y.p, Some(&y.n), Some(&KEYS))
        });
        compare(&format!("{cfg:?}"), &got, &want, 2e-4);
    }
}

/// The gradient must not be trivially zero: a sanity check that the comparison above has teeth.
fn gradients_are_not_trivial(device: Device) {
    let x = inputs(23);
    let loss = LossConfig::default().build().unwrap();
    let (_, g) = autodiff(loss.as_ref(), &x, &device, DType::F32);
    for (t, grad) in g.iter().enumerate() {
        assert!(grad.iter().any(|v| v.abs() > 1e-3), "gradient {t} is all ~0: {grad:?}");
    }
}

device_tests!(
    f64_autodiff_matches_finite_differences,
    f32_autodiff_matches_reference_finite_differences,
    gradients_are_not_trivial,
);
