//! The Flex path of [`super::gelu`]: burn-flex evaluates GELU (and its backward) one element at
//! a time on one thread, ~17% of a Flex training step and 46% of an encoding (`perf`;
//! docs/benchmarks.md). This runs the same formula over slices in parallel, with `libm::erff`'s
//! values computed by a vectorised branch-free copy (`erf.rs`): bit-identical values, as one burn
//! autodiff node with its own backward on autodiff devices.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::backend::TensorMetadata;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

use super::erf;

/// Values per parallel task.
const SLICE: usize = 1 << 14;

/// `out[i] = f(x[i], cdf(x[i]), extra[i])` over `x`'s elements in parallel slices (`extra` is
/// `x` itself when `None`); `None` unless every input is f32 with `x`'s element count.
fn map_cdf(x: &FlexTensor, extra: Option<&FlexTensor>, f: impl Fn(f32, f32, f32) -> f32 + Sync) -> Option<FlexTensor> {
    if x.dtype() != DType::F32 || extra.is_some_and(|e| e.dtype() != DType::F32) {
        return None;
    }
    let x = x.to_contiguous();
    let extra = extra.map(|e| e.to_contiguous());
    let xs = x.as_slice::<f32>()?;
    let es = match &extra {
        Some(e) => e.as_slice::<f32>()?,
        None => xs,
    };
    if es.len() != xs.len() {
        return None;
    }
    let mut out = vec![0.0f32; xs.len()];
    out.par_chunks_mut(SLICE).zip(xs.par_chunks(SLICE)).zip(es.par_chunks(SLICE)).for_each(|((o, xc), ec)| {
        erf::map_cdf(xc, o, |x, cdf, i| f(x, cdf, ec[i]));
    });
    Some(FlexTensor::from_data(TensorData::new(out, x.shape())))
}

fn forward(x: &FlexTensor) -> Option<FlexTensor> {
    map_cdf(x, None, |x, cdf, _| x * cdf)
}

fn backward(x: &FlexTensor, grad: &FlexTensor) -> Option<FlexTensor> {
    let inv_sqrt_2pi = 1.0 / (2.0 * core::f32::consts::PI).sqrt();
    map_cdf(x, Some(grad), |x, cdf, g| g * (cdf + x * inv_sqrt_2pi * (-0.5 * x * x).exp()))
}

#[derive(Debug)]
struct Gelu;

impl Backward<Flex, 1> for Gelu {
    type State = FlexTensor;

    fn backward(self, ops: Ops<FlexTensor, 1>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let x = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            backward(&x, &grad).expect("the forward checked dtype and layout")
        });
    }
}

pub(super) fn gelu<const D: usize>(x: &Tensor<D>) -> Option<Tensor<D>> {
    if let Ok(t) = x.clone().try_into_primitive::<Autodiff<Flex>>() {
        if t.primitive().dtype() != DType::F32 {
            return None;
        }
        let prep = Gelu.prepare::<NoCheckpointing>([t.node()]).compute_bound().stateful();
        let input = t.into_primitive();
        let out = forward(&input)?;
        let out = match prep {
            OpsKind::Tracked(prep) => prep.finish(input, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(out));
    }
    let t = x.clone().try_into_primitive::<Flex>().ok()?;
    Some(Tensor::from_primitive::<Flex>(forward(&t)?))
}

/// `sum(t²)` of an f32 tensor on a plain Flex device, in a fixed order: per-slice sums in f64
/// combined left to right, so the result never depends on how rayon scheduled the slices.
/// burn-flex's `sum` of more than 64K values combines its chunk sums in the tree that work
/// stealing built, so its last bit varied between runs (and with clipping, whole updates did).
pub(super) fn sum_of_squares<const D: usize>(t: &Tensor<D>) -> Option<Tensor<1>> {
    let p = t.clone().try_into_primitive::<Flex>().ok()?;
    if p.dtype() != DType::F32 {
        return None;
    }
    let p = if p.is_contiguous() { p } else { p.to_contiguous() };
    let values = p.as_slice::<f32>()?;
    let partial: Vec<f64> =
        values.par_chunks(SLICE).map(|c| c.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>()).collect();
    let total = partial.iter().sum::<f64>() as f32;
    Some(Tensor::from_primitive::<Flex>(FlexTensor::from_data(TensorData::new(vec![total], [1]))))
}

/// Whether `t` is an f32 tensor on a plain (non-autodiff) Flex device.
fn plain_f32<const D: usize>(t: &Tensor<D>) -> bool {
    t.clone().try_into_primitive::<Flex>().is_ok_and(|p| p.dtype() == DType::F32)
}

/// Whether [`adamw`] can update these tensors (plain Flex, f32, same element count).
pub(super) fn adamw_applies<const D: usize>(tensors: &[&Tensor<D>]) -> bool {
    let Some(first) = tensors.first() else { return false };
    let n = first.shape().num_elements();
    tensors.iter().all(|t| t.shape().num_elements() == n && plain_f32(t))
}

/// burn's AdamW update, element by element in the same f32 operations and order (so the result
/// is bit-identical to `burn::optim::AdamW` on Flex), in one parallel pass that updates the
/// parameter and both moments in place where their storage is not shared. burn's version runs
/// ~12 whole-tensor ops, each a fresh parameter-sized allocation: for a 96M-value embedding table
/// that is gigabytes of page-faulted memory per step.
pub(super) fn adamw<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    moments: Option<(Tensor<D>, Tensor<D>)>,
    update: &super::AdamWUpdate,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let shape = param.shape();
    let into_flex = |t: Tensor<D>| -> FlexTensor {
        let p = t.try_into_primitive::<Flex>().unwrap_or_else(|_| panic!("adamw_applies checked the backend"));
        if p.is_contiguous() { p } else { p.to_contiguous() }
    };
    let mut p = into_flex(param);
    let g = into_flex(grad);
    let first = moments.is_none();
    let (mut m, mut v) = match moments {
        Some((m, v)) => (into_flex(m), into_flex(v)),
        None => (FlexTensor::zeros(shape.clone(), DType::F32), FlexTensor::zeros(shape.clone(), DType::F32)),
    };
    let super::AdamWUpdate { lr, beta_1, beta_2, epsilon, weight_decay, time } = *update;
    let (factor_1, factor_2) = (1.0 - beta_1, 1.0 - beta_2);
    let correction_1 = 1f32 - beta_1.powi(time as i32);
    let correction_2 = 1f32 - beta_2.powi(time as i32);
    // burn multiplies by f64 scalars converted to the tensor's f32.
    let keep = (1.0 - lr * f64::from(weight_decay)) as f32;
    let step = lr as f32;
    let gs = g.as_slice::<f32>().expect("contiguous f32");
    let ps = p.storage_mut::<f32>();
    let ms = m.storage_mut::<f32>();
    let vs = v.storage_mut::<f32>();
    ps.par_chunks_mut(SLICE).zip(ms.par_chunks_mut(SLICE)).zip(vs.par_chunks_mut(SLICE)).enumerate().for_each(
        |(c, ((pc, mc), vc))| {
            let start = c * SLICE;
            for i in 0..pc.len() {
                let gi = gs[start + i];
                let (mi, vi) = if first {
                    (gi * factor_1, (gi * gi) * factor_2)
                } else {
                    (mc[i] * beta_1 + gi * factor_1, vc[i] * beta_2 + (gi * gi) * factor_2)
                };
                mc[i] = mi;
                vc[i] = vi;
                let delta = (mi / correction_1) / ((vi / correction_2).sqrt() + epsilon);
                pc[i] = pc[i] * keep - delta * step;
            }
        },
    );
    let wrap = |t: FlexTensor| Tensor::<D>::from_primitive::<Flex>(t);
    (wrap(p), wrap(m), wrap(v))
}
