//! The Flex path of [`super::gelu`]: burn-flex evaluates GELU (and its backward) one element at
//! a time on one thread, ~17% of a Flex training step (`perf`; docs/benchmarks.md). This runs
//! the same formula, with the same `libm::erff`, over slices in parallel: bit-identical values,
//! as one burn autodiff node with its own backward on autodiff devices.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::backend::TensorMetadata;
use burn::tensor::{DType, Tensor, TensorData};
use rayon::prelude::*;

/// Values per parallel task.
const SLICE: usize = 1 << 14;

fn cdf(x: f32) -> f32 {
    0.5 * (1.0 + libm::erff(x / core::f32::consts::SQRT_2))
}

/// `f(x[i])` (or `f(x[i], g[i])`) for every element, in parallel slices; `None` unless f32.
fn map<const N: usize>(inputs: [&FlexTensor; N], f: impl Fn([f32; N]) -> f32 + Sync) -> Option<FlexTensor> {
    if inputs.iter().any(|t| t.dtype() != DType::F32) {
        return None;
    }
    let contiguous: Vec<FlexTensor> = inputs.iter().map(|t| t.to_contiguous()).collect();
    let slices: Vec<&[f32]> = contiguous.iter().map(|t| t.as_slice::<f32>()).collect::<Option<_>>()?;
    let n = slices[0].len();
    if slices.iter().any(|s| s.len() != n) {
        return None;
    }
    let mut out = vec![0.0f32; n];
    out.par_chunks_mut(SLICE).enumerate().for_each(|(c, chunk)| {
        let start = c * SLICE;
        for (i, o) in chunk.iter_mut().enumerate() {
            *o = f(std::array::from_fn(|k| slices[k][start + i]));
        }
    });
    Some(FlexTensor::from_data(TensorData::new(out, inputs[0].shape())))
}

fn forward(x: &FlexTensor) -> Option<FlexTensor> {
    map([x], |[x]| x * cdf(x))
}

fn backward(x: &FlexTensor, grad: &FlexTensor) -> Option<FlexTensor> {
    let inv_sqrt_2pi = 1.0 / (2.0 * core::f32::consts::PI).sqrt();
    map([x, grad], |[x, g]| g * (cdf(x) + x * inv_sqrt_2pi * (-0.5 * x * x).exp()))
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
