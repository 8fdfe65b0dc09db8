//! Group masking removes exactly the candidates that share the query's parallel id: checked
//! against closed forms written out by hand for tiny dot-product examples (τ = 1, sum).

#[macro_use]
mod common;

use burn::tensor::{DType, Device};
use common::*;
use hybrid_ir_loss::mask::{count_masked, same_group_mask};
use hybrid_ir_loss::{ContrastiveBatch, LossConfig, LossKind, Reduction, ScoreFn};

fn ln_sum_exp(xs: &[f64]) -> f64 {
    xs.iter().map(|x| x.exp()).sum::<f64>().ln()
}

fn softplus(x: f64) -> f64 {
    (1.0 + x.exp()).ln()
}

fn dot_sum(kind: LossKind, mask_same_group: bool) -> LossConfig {
    LossConfig { kind, score: ScoreFn::Dot, temperature: 1.0, reduction: Reduction::Sum, mask_same_group }
}

fn m(rows: &[[f64; 2]]) -> Mat {
    rows.iter().map(|r| r.to_vec()).collect()
}

#[test]
fn host_mask_pattern() {
    // Rows 0 and 2 are translations (key 1); two hard negatives per row.
    let mask = same_group_mask(&[1, 2, 1], 2);
    #[rustfmt::skip]
    let expected = vec![
        false, false,  false, false,  true,  true,
        false, false,  false, false,  false, false,
        true,  true,   false, false,  false, false,
    ];
    assert_eq!(mask, expected);
    // Groups of sizes 3, 2, 1: Σ g(g−1) · k candidates removed.
    let keys = [4, 4, 9, 4, 9, 1];
    assert_eq!(count_masked(&same_group_mask(&keys, 3)), (3 * 2 + 2) * 3);
}

/// q = [[1,0],[0,1],[1,1]], p = [[2,0],[0,3],[1,-1]] → S = q·pᵀ = [[2,0,1],[0,3,-1],[2,3,0]].
/// Keys [7,7,8]: query 0 loses candidate p1 (S=0), query 1 loses p0 (S=0), query 2 keeps all.
fn in_batch_mask_removes_exactly_the_translation(device: Device) {
    let q = m(&[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]);
    let p = m(&[[2.0, 0.0], [0.0, 3.0], [1.0, -1.0]]);
    let keys = [7, 7, 8];
    let run = |cfg: LossConfig| {
        let b = ContrastiveBatch::new(tensor(&q, &device, DType::F64), tensor(&p, &device, DType::F64)).with_group_keys(&keys);
        scalar(cfg.build().unwrap().forward(b).unwrap())
    };
    let masked = run(dot_sum(LossKind::InBatch, true));
    let unmasked = run(dot_sum(LossKind::InBatch, false));
    let want_masked = (ln_sum_exp(&[2.0, 1.0]) - 2.0) + (ln_sum_exp(&[3.0, -1.0]) - 3.0) + (ln_sum_exp(&[2.0, 3.0, 0.0]) - 0.0);
    let removed_term = (1.0 + 1.0 / (2f64.exp() + 1f64.exp())).ln() + (1.0 + 1.0 / (3f64.exp() + (-1f64).exp())).ln();
    assert_close("masked", masked, want_masked, 1e-12);
    assert_close("unmasked − masked", unmasked - masked, removed_term, 1e-12);
}

/// One group for the whole batch: in the paper loss only the own positive and the own hard
/// negative remain, so L = Σ_i softplus(s(q_i,n_i) − s(q_i,p_i)).
fn paper_mask_keeps_own_negative_only(device: Device) {
    let q = m(&[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]);
    let p = m(&[[2.0, 0.0], [0.0, 3.0], [1.0, -1.0]]);
    let n = m(&[[0.5, 1.0], [1.0, 2.0], [-1.0, 0.5]]);
    let keys = [1, 1, 1];
    let b = ContrastiveBatch::new(tensor(&q, &device, DType::F64), tensor(&p, &device, DType::F64))
        .with_negatives(tensor(&n, &device, DType::F64))
        .with_group_keys(&keys);
    let got = scalar(dot_sum(LossKind::Paper, true).build().unwrap().forward(b).unwrap());
    // s(q_i, n_i) = 0.5, 2.0, -0.5; s(q_i, p_i) = 2, 3, 0.
    let want = softplus(0.5 - 2.0) + softplus(2.0 - 3.0) + softplus(-0.5 - 0.0);
    assert_close("paper, one group", got, want, 1e-12);
}

/// One group, no negatives: every candidate except the own positive / own query is removed in
/// both directions, so the symmetric loss and its gradients are exactly 0.
fn symmetric_fully_masked_is_zero(device: Device) {
    let mut rng = rng(3);
    let ad = device.autodiff();
    let q = tensor(&random_mat(&mut rng, 4, 3, 1.0), &ad, DType::F32).require_grad();
    let p = tensor(&random_mat(&mut rng, 4, 3, 1.0), &ad, DType::F32).require_grad();
    let keys = [5, 5, 5, 5];
    let cfg = LossConfig { kind: LossKind::Symmetric, ..LossConfig::default() };
    let loss = cfg.build().unwrap().forward(ContrastiveBatch::new(q.clone(), p.clone()).with_group_keys(&keys)).unwrap();
    let grads = loss.backward();
    assert!(scalar(loss).abs() < 1e-6);
    for g in [q.grad(&grads).unwrap(), p.grad(&grads).unwrap()] {
        let g = values(g);
        assert!(g.iter().all(|v| v.is_finite() && v.abs() < 1e-6), "{g:?}");
    }
}

device_tests!(in_batch_mask_removes_exactly_the_translation, paper_mask_keeps_own_negative_only, symmetric_fully_masked_is_zero);
