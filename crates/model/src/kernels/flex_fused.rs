//! LayerNorm and softmax on autodiff Flex devices as one node each: burn-flex's fused forward
//! (the op plain Flex already runs for inference, so training and encoding compute the same
//! values) and a backward of ours, parallel over rows.
//!
//! Why: burn 0.22's autodiff has no node for either op, so on an autodiff device both run as
//! burn's decomposition — 9 element-wise ops forward and ~20 backward per LayerNorm, 5 forward
//! for a softmax over `[B, heads, L, L]` — each a full pass and a fresh allocation. On a 2-vCPU
//! Xeon that memory traffic was a large share of the Flex training step (docs/benchmarks.md).
//!
//! Reductions over rows (the LayerNorm's parameter gradients) are summed per fixed chunk of rows
//! and the chunk sums combined in order, so results never depend on rayon's scheduling.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, ModuleOps};
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::nn::LayerNorm;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// Rows per parallel task.
const ROWS: usize = 64;

/// A contiguous f32 tensor's values (a copy only when the layout is not contiguous).
fn contiguous(t: FlexTensor) -> FlexTensor {
    if t.is_contiguous() { t } else { t.to_contiguous() }
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32")
}

fn wrap(values: Vec<f32>, like: &FlexTensor) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, like.shape()))
}

// ---------------------------------------------------------------------------------------------
// LayerNorm
// ---------------------------------------------------------------------------------------------

/// Parents `[x, gamma, beta]`; state: the input (contiguous), gamma and epsilon.
#[derive(Debug)]
struct LayerNormNode;

impl Backward<Flex, 3> for LayerNormNode {
    type State = (FlexTensor, FlexTensor, f64);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let (x, gamma, eps) = ops.state;
        let (dx, dgamma, dbeta) = layer_norm_backward(values(&x), values(&gamma), values(&grad), eps);
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, wrap(dx, &x));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, wrap(dgamma, &gamma));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, wrap(dbeta, &gamma));
        }
    }
}

/// Mean and `1 / sqrt(var + eps)` of one row (biased variance, as burn's LayerNorm), in f64.
fn row_stats(row: &[f32], eps: f64) -> (f64, f64) {
    let d = row.len() as f64;
    let mean = row.iter().map(|&v| f64::from(v)).sum::<f64>() / d;
    let var = row.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / d;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `(dx, dgamma, dbeta)` of `y = (x - mean) * rstd * gamma + beta` over rows of `gamma.len()`:
/// `dx = rstd * (g - mean(g) - x̂ * mean(g * x̂))` with `g = dy * gamma`; `dgamma = Σ dy * x̂`,
/// `dbeta = Σ dy` over rows.
fn layer_norm_backward(x: &[f32], gamma: &[f32], dy: &[f32], eps: f64) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let mut dx = vec![0.0f32; x.len()];
    let partials: Vec<(Vec<f64>, Vec<f64>)> = dx
        .par_chunks_mut(ROWS * d)
        .zip(x.par_chunks(ROWS * d))
        .zip(dy.par_chunks(ROWS * d))
        .map(|((dx, x), dy)| {
            let (mut dgamma, mut dbeta) = (vec![0.0f64; d], vec![0.0f64; d]);
            let mut xhat = vec![0.0f64; d];
            for ((dx, x), dy) in dx.chunks_exact_mut(d).zip(x.chunks_exact(d)).zip(dy.chunks_exact(d)) {
                let (mean, rstd) = row_stats(x, eps);
                let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
                for j in 0..d {
                    xhat[j] = (f64::from(x[j]) - mean) * rstd;
                    let g = f64::from(dy[j]) * f64::from(gamma[j]);
                    sum_g += g;
                    sum_gx += g * xhat[j];
                    dgamma[j] += f64::from(dy[j]) * xhat[j];
                    dbeta[j] += f64::from(dy[j]);
                }
                let (mean_g, mean_gx) = (sum_g / d as f64, sum_gx / d as f64);
                for j in 0..d {
                    let g = f64::from(dy[j]) * f64::from(gamma[j]);
                    dx[j] = (rstd * (g - mean_g - xhat[j] * mean_gx)) as f32;
                }
            }
            (dgamma, dbeta)
        })
        .collect();
    // Chunk sums combined in chunk order: independent of the schedule.
    let (mut dgamma, mut dbeta) = (vec![0.0f64; d], vec![0.0f64; d]);
    for (pg, pb) in &partials {
        for j in 0..d {
            dgamma[j] += pg[j];
            dbeta[j] += pb[j];
        }
    }
    let narrow = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect::<Vec<f32>>();
    (dx, narrow(dgamma), narrow(dbeta))
}

/// `norm.forward(x)` as one node on an autodiff Flex device (f32, with a beta); `None` elsewhere.
pub(super) fn layer_norm<const D: usize>(x: &Tensor<D>, norm: &LayerNorm, eps: f64) -> Option<Tensor<D>> {
    let x = x.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
    let gamma = norm.gamma.val().try_into_primitive::<Autodiff<Flex>>().ok()?;
    let beta = norm.beta.as_ref()?.val().try_into_primitive::<Autodiff<Flex>>().ok()?;
    let d = gamma.primitive().shape().num_elements();
    let f32s = [x.primitive(), gamma.primitive(), beta.primitive()].iter().all(|t| t.dtype() == DType::F32);
    if !f32s || d == 0 || x.primitive().shape().dims::<D>()[D - 1] != d || beta.primitive().shape().num_elements() != d {
        return None;
    }
    let input = contiguous(x.primitive().clone());
    let out = Flex::layer_norm(input.clone(), gamma.primitive().clone(), Some(beta.primitive().clone()), eps);
    let prep = LayerNormNode.prepare::<NoCheckpointing>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful();
    let out = match prep {
        OpsKind::Tracked(prep) => prep.finish((input, contiguous(gamma.into_primitive()), eps), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
}

// ---------------------------------------------------------------------------------------------
// Softmax over the last dimension
// ---------------------------------------------------------------------------------------------

/// The gradient of the softmax input from the output `p` and its gradient `dp` (both
/// contiguous, rows along the last dimension), times `scale` (the scores' scale; 1 for a plain
/// softmax): `scale · p · (dp - Σ dp · p)` per row.
fn softmax_backward(p: &FlexTensor, dp: &FlexTensor, scale: f32) -> FlexTensor {
    let width = p.shape()[p.shape().num_dims() - 1];
    let (p_values, dp_values) = (values(p), values(dp));
    let mut dx = vec![0.0f32; p_values.len()];
    dx.par_chunks_mut(ROWS * width).zip(p_values.par_chunks(ROWS * width)).zip(dp_values.par_chunks(ROWS * width)).for_each(
        |((dx, p), dp)| {
            for ((dx, p), dp) in dx.chunks_exact_mut(width).zip(p.chunks_exact(width)).zip(dp.chunks_exact(width)) {
                let dot: f32 = p.iter().zip(dp).map(|(p, g)| p * g).sum();
                for j in 0..width {
                    dx[j] = scale * (p[j] * (dp[j] - dot));
                }
            }
        },
    );
    wrap(dx, p)
}

/// Parent `[x]`; state: the output `p` (contiguous).
#[derive(Debug)]
struct SoftmaxNode;

impl Backward<Flex, 1> for SoftmaxNode {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let p = ops.state;
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, softmax_backward(&p, &grad, 1.0));
        }
    }
}

/// `softmax(x, last dim)` as one node on an autodiff Flex device (f32); `None` elsewhere.
pub(super) fn softmax_last<const D: usize>(x: &Tensor<D>) -> Option<Tensor<D>> {
    let x = x.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
    if x.primitive().dtype() != DType::F32 || x.primitive().shape().num_elements() == 0 {
        return None;
    }
    let out = contiguous(Flex::softmax(x.primitive().clone(), D - 1));
    let prep = SoftmaxNode.prepare::<NoCheckpointing>([x.node()]).compute_bound().stateful();
    let out = match prep {
        OpsKind::Tracked(prep) => prep.finish(out.clone(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
}

// ---------------------------------------------------------------------------------------------
// Dropout
// ---------------------------------------------------------------------------------------------

/// Whether element `i` survives: a SplitMix64 hash of `(seed, i)` below `threshold` (= keep
/// probability × 2^64). Counter-based, so any slice of the mask can be drawn on any thread and
/// the backward recomputes it instead of storing it.
fn kept(seed: u64, i: usize, threshold: u64) -> bool {
    let mut z = seed.wrapping_add((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) < threshold
}

/// `out[i] = x[i] · 1/keep` where element `i` is kept, else 0, in parallel slices.
fn apply_mask(x: &[f32], seed: u64, threshold: u64, scale: f32) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(ROWS * 1024).zip(x.par_chunks(ROWS * 1024)).enumerate().for_each(|(c, (out, x))| {
        let start = c * ROWS * 1024;
        for (j, (o, &v)) in out.iter_mut().zip(x).enumerate() {
            // burn's arithmetic: (x · mask) · (1 / keep).
            let mask = if kept(seed, start + j, threshold) { 1.0 } else { 0.0 };
            *o = v * mask * scale;
        }
    });
    out
}

/// Parent `[x]`; state: the mask's seed and threshold and the scale.
#[derive(Debug)]
struct DropoutNode;

impl Backward<Flex, 1> for DropoutNode {
    type State = (u64, u64, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        if let Some(node) = node_x {
            let (seed, threshold, scale) = ops.state;
            grads.register::<Flex>(node.id, wrap(apply_mask(values(&grad), seed, threshold, scale), &grad));
        }
    }
}

/// `dropout.forward(x)` when it is active (training mode, autodiff Flex device, f32, p > 0) as
/// one parallel node; `None` elsewhere (burn's op then runs, which is the identity when inactive).
///
/// The mask's seed is drawn from burn's generator (four 16-bit draws), so a seeded device
/// gives the same masks in every run and after a resume, as burn's own dropout does; the masks
/// themselves differ from burn's (which draws every element from one locked generator on one
/// thread: ~10% of a Flex training step).
pub(super) fn dropout<const D: usize>(x: &Tensor<D>, dropout: &burn::nn::Dropout) -> Option<Tensor<D>> {
    if !dropout.training.is_enabled() || dropout.prob <= 0.0 || !x.device().is_autodiff() {
        return None;
    }
    let device = x.device();
    let t = x.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
    if t.primitive().dtype() != DType::F32 || dropout.prob >= 1.0 {
        return None;
    }
    let draws = Tensor::<1, burn::tensor::Int>::random([4], burn::tensor::Distribution::Uniform(0.0, 65536.0), &device);
    let draws = draws.into_data().convert::<i64>().try_to_vec::<i64>().ok()?;
    let seed = draws.iter().fold(0u64, |s, &d| (s << 16) | (d as u64 & 0xFFFF));
    let keep = 1.0 - dropout.prob;
    // keep × 2^64, saturating at the top (keep < 1 here).
    let threshold = (keep * 18_446_744_073_709_551_616.0) as u64;
    let scale = (1.0 / keep) as f32;
    let input = contiguous(t.primitive().clone());
    let out = wrap(apply_mask(values(&input), seed, threshold, scale), &input);
    let prep = DropoutNode.prepare::<NoCheckpointing>([t.node()]).compute_bound().stateful();
    let out = match prep {
        OpsKind::Tracked(prep) => prep.finish((seed, threshold, scale), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
}

// ---------------------------------------------------------------------------------------------
// Attention scores: scale, additive mask bias and softmax in one node
// ---------------------------------------------------------------------------------------------

/// Parent `[scores]`; state: the probabilities `p` and the scale.
#[derive(Debug)]
struct ScoresSoftmaxNode;

impl Backward<Flex, 1> for ScoresSoftmaxNode {
    type State = (FlexTensor, f32);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_scores] = ops.parents;
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let (p, scale) = ops.state;
        if let Some(node) = node_scores {
            grads.register::<Flex>(node.id, softmax_backward(&p, &grad, scale));
        }
    }
}

/// `softmax(scores · scale + bias, last dim)` for attention scores `[B, heads, Lq, Lk]` and a
/// constant key bias `[B, 1, 1, Lk]`, as one node on an autodiff Flex device: one pass adds the
/// bias to the scaled scores in place, burn-flex's softmax runs on the result, and the backward
/// is one pass. Replaces three nodes (scale, add, softmax) over the step's largest tensors.
/// `None` (the caller composes burn's ops) for other shapes, dtypes or devices.
pub(super) fn scores_softmax(scores: &Tensor<4>, scale: f64, bias: &Tensor<4>) -> Option<Tensor<4>> {
    let s = scores.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
    let b = bias.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
    if b.is_tracked() || s.primitive().dtype() != DType::F32 || b.primitive().dtype() != DType::F32 {
        return None;
    }
    let [batch, heads, len_q, len_k] = s.primitive().shape().dims::<4>();
    if b.primitive().shape().dims::<4>() != [batch, 1, 1, len_k] || batch * heads * len_q * len_k == 0 {
        return None;
    }
    let bias_values = contiguous(b.primitive().clone());
    let bias_values = values(&bias_values);
    let scale = scale as f32;
    let node = s.node();
    let mut x = contiguous(s.into_primitive());
    // One block per (batch, head): its rows share the batch's key bias.
    x.storage_mut::<f32>().par_chunks_mut(len_k * len_q).enumerate().for_each(|(block, rows)| {
        let bias = &bias_values[(block / heads) * len_k..][..len_k];
        for row in rows.chunks_exact_mut(len_k) {
            for (v, b) in row.iter_mut().zip(bias) {
                *v = *v * scale + b;
            }
        }
    });
    let p = contiguous(Flex::softmax(x, 3));
    let prep = ScoresSoftmaxNode.prepare::<NoCheckpointing>([node]).compute_bound().stateful();
    let out = match prep {
        OpsKind::Tracked(prep) => prep.finish((p.clone(), scale), p),
        OpsKind::UnTracked(prep) => prep.finish(p),
    };
    Some(Tensor::from_primitive::<Autodiff<Flex>>(out))
}
