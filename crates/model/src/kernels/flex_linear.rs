//! The Flex path of [`super::linear`]: the encoder's dense layers (`x W + b` on `[tokens, in]`)
//! as direct `gemm` calls, forward and backward.
//!
//! Why: burn-flex's product is the same `gemm` call, but it first allocates its output with
//! `FlexTensor::empty`, which zero-fills a byte vector on the calling thread and has the byte
//! store re-allocate and copy it (docs/benchmarks.md, "Flex on an Intel Xeon"). For the FFN
//! products that serial work took as long as the two-thread product itself, so the second core
//! idled half of the time. Here the output is an uninitialised `Vec<f32>` that `gemm` fills (the
//! page faults then land on the threads that write), handed to Flex without a copy, and the bias
//! is added in the same buffer instead of a second allocation.
//!
//! The arithmetic is burn's: the same `gemm` call with the same operand strides and `read_dst =
//! false`, the bias added as one f32 addition per element, the bias gradient by burn-flex's own
//! `sum_dim`. `gemm`'s blocking over the inner dimension depends only on `k` and the caches, so
//! every output element is accumulated in the same order as in burn's call: results are
//! bit-identical to `Linear::forward` and its gradients (`tests/kernels.rs`).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::nn::Linear;
use burn::tensor::{DType, Shape, Tensor, TensorData};
use rayon::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};

/// Below this many multiply-adds a product runs on one thread (burn-flex's threshold, 192³:
/// smaller products do not pay for the fork-join).
const PARALLEL_MIN_OPS: usize = 192 * 192 * 192;

/// Rows per task of the parallel bias addition.
const BIAS_ROWS: usize = 64;

/// Dense-layer products (`product`, not the batched ones) run so far: `[on one thread, on the whole pool]` (see
/// [`super::flex_product_counts`]).
static PRODUCTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// `(one-thread, whole-pool)` product counts of this process.
pub(super) fn product_counts() -> (u64, u64) {
    (PRODUCTS[0].load(Ordering::Relaxed), PRODUCTS[1].load(Ordering::Relaxed))
}

/// How many threads `gemm` splits an `[m, k] x [k, n]` product over: all of rayon's threads for
/// products of at least 192³ multiply-adds, else one. Public through [`super::product_threads`]
/// so a test can hold the encoder's products to it without timing anything.
pub(super) fn parallelism(m: usize, n: usize, k: usize) -> gemm::Parallelism {
    if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_MIN_OPS {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    }
}

/// A 2-D f32 view into a tensor's storage: `(r, c)` is `data[offset + r·rs + c·cs]`.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    offset: usize,
    rows: usize,
    cols: usize,
    rs: isize,
    cs: isize,
}

impl<'a> Operand<'a> {
    /// The view of a 2-D f32 tensor with non-negative strides that stay inside its storage.
    fn of(t: &'a FlexTensor) -> Option<Self> {
        let layout = t.layout();
        if t.dtype() != DType::F32 || layout.num_dims() != 2 {
            return None;
        }
        let data = t.storage::<f32>();
        let dims = layout.shape();
        let (rows, cols) = (dims[0], dims[1]);
        let (rs, cs) = (layout.strides()[0], layout.strides()[1]);
        if rows == 0 || cols == 0 || rs < 0 || cs < 0 {
            return None;
        }
        // The last element must lie inside the storage: `gemm` reads through raw pointers.
        let last = layout.start_offset() + (rows - 1) * rs as usize + (cols - 1) * cs as usize;
        (last < data.len()).then_some(Operand { data, offset: layout.start_offset(), rows, cols, rs, cs })
    }

    /// The transposed view (no copy).
    fn t(self) -> Self {
        Operand { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }
}

/// `lhs · rhs` written into `dst` (`m·n` values at row stride `n`): burn-flex's gemm call
/// (`read_dst = false`, so every value of `dst` is written and none is read).
// Unsafe because `gemm` takes raw pointers and strides (with the two `set_len` below, the
// workspace's only unsafe code).
#[allow(unsafe_code)]
fn gemm_into(dst: &mut [std::mem::MaybeUninit<f32>], lhs: Operand<'_>, rhs: Operand<'_>, parallelism: gemm::Parallelism) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert!(k == rhs.rows && dst.len() == m * n, "gemm_into: shapes differ");
    // SAFETY: both operands were bounds-checked in `Operand::of` / `Batched::of` (`t` and
    // `Batched::get` keep within the checked element set); `dst` holds exactly `m·n` values.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().cast::<f32>(),
            1,
            n as isize,
            false,
            lhs.data.as_ptr().add(lhs.offset),
            lhs.cs,
            lhs.rs,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.cs,
            rhs.rs,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `lhs · rhs (+ bias)` into a fresh contiguous `[lhs.rows, rhs.cols]` tensor.
#[allow(unsafe_code)] // `set_len` after `gemm_into` wrote every value
fn product(lhs: Operand<'_>, rhs: Operand<'_>, bias: Option<&[f32]>) -> FlexTensor {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(k, rhs.rows, "product: inner dimensions differ");
    let len = m.checked_mul(n).expect("product: output size overflows usize");
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let parallelism = parallelism(m, n, k);
    PRODUCTS[usize::from(!matches!(parallelism, gemm::Parallelism::None))].fetch_add(1, Ordering::Relaxed);
    gemm_into(&mut out.spare_capacity_mut()[..len], lhs, rhs, parallelism);
    // SAFETY: `gemm_into` wrote all `len` values.
    unsafe { out.set_len(len) };
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "product: bias length differs from the output width");
        // burn adds the bias as its own op: one f32 addition per element, same result.
        out.par_chunks_mut(n * BIAS_ROWS).for_each(|rows| {
            for row in rows.chunks_exact_mut(n) {
                for (o, b) in row.iter_mut().zip(bias) {
                    *o += *b;
                }
            }
        });
    }
    FlexTensor::from_data(TensorData::new(out, [m, n]))
}

/// A 4-D f32 tensor as `[b0, b1]` batches of 2-D views: `(offset of batch (i, j), rows, cols,
/// row stride, column stride)`, with every element inside the storage; `None` otherwise.
struct Batched<'a> {
    batch: [usize; 2],
    batch_strides: [usize; 2],
    view: Operand<'a>,
}

impl<'a> Batched<'a> {
    fn of(t: &'a FlexTensor) -> Option<Self> {
        let layout = t.layout();
        if t.dtype() != DType::F32 || layout.num_dims() != 4 || layout.strides().iter().any(|&s| s < 0) {
            return None;
        }
        let dims = layout.shape();
        let strides: Vec<usize> = layout.strides().iter().map(|&s| s as usize).collect();
        if (0..4).any(|i| dims[i] == 0) {
            return None;
        }
        let data = t.storage::<f32>();
        let last = layout.start_offset() + (0..4).map(|i| (dims[i] - 1) * strides[i]).sum::<usize>();
        if last >= data.len() {
            return None;
        }
        let view = Operand {
            data,
            offset: layout.start_offset(),
            rows: dims[2],
            cols: dims[3],
            rs: strides[2] as isize,
            cs: strides[3] as isize,
        };
        Some(Batched { batch: [dims[0], dims[1]], batch_strides: [strides[0], strides[1]], view })
    }

    /// The 2-D view of batch number `b` (row-major over the two batch dimensions).
    fn get(&self, b: usize) -> Operand<'a> {
        let (i, j) = (b / self.batch[1], b % self.batch[1]);
        Operand { offset: self.view.offset + i * self.batch_strides[0] + j * self.batch_strides[1], ..self.view }
    }

    fn t(self) -> Self {
        Batched { view: self.view.t(), ..self }
    }
}

/// `lhs[b] · rhs[b]` for every batch `b` of two 4-D tensors with equal batch dimensions, into a
/// fresh contiguous `[b0, b1, m, n]` tensor. As burn-flex: small products run one per task in
/// parallel over the batches; products of at least 192³ multiply-adds run one after another on
/// the whole pool. `None` unless the shapes fit.
#[allow(unsafe_code)] // `set_len` after every batch was written
fn batched_product(lhs: &Batched<'_>, rhs: &Batched<'_>) -> Option<FlexTensor> {
    let (m, k, n) = (lhs.view.rows, lhs.view.cols, rhs.view.cols);
    if lhs.batch != rhs.batch || k != rhs.view.rows {
        return None;
    }
    let batches = lhs.batch[0] * lhs.batch[1];
    let size = m.checked_mul(n)?;
    let len = batches.checked_mul(size)?;
    let mut out: Vec<f32> = Vec::with_capacity(len);
    let whole_pool = !matches!(parallelism(m, n, k), gemm::Parallelism::None);
    let run = |dst: &mut [std::mem::MaybeUninit<f32>], b: usize, parallelism: gemm::Parallelism| {
        gemm_into(dst, lhs.get(b), rhs.get(b), parallelism);
    };
    let spare = &mut out.spare_capacity_mut()[..len];
    if whole_pool {
        for (b, dst) in spare.chunks_mut(size).enumerate() {
            run(dst, b, gemm::Parallelism::Rayon(0));
        }
    } else {
        spare.par_chunks_mut(size).enumerate().for_each(|(b, dst)| run(dst, b, gemm::Parallelism::None));
    }
    // SAFETY: every batch's chunk of the first `len` values was written above.
    unsafe { out.set_len(len) };
    Some(FlexTensor::from_data(TensorData::new(out, [lhs.batch[0], lhs.batch[1], m, n])))
}

/// The autodiff node of a batched product: parents `[lhs, rhs]`; state keeps `lhs` when `rhs`
/// needs a gradient and `rhs` when `lhs` does.
#[derive(Debug)]
struct BatchedNode;

impl Backward<Flex, 2> for BatchedNode {
    type State = (Option<FlexTensor>, Option<FlexTensor>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_lhs, node_rhs] = ops.parents;
        let grad = batched_tensor(grads.consume::<Flex>(&ops.node));
        let (lhs, rhs) = ops.state;
        if let Some(node) = node_lhs {
            let rhs = batched_tensor(rhs.expect("rhs is kept when lhs is tracked"));
            let g = batched_product(&batched(&grad), &batched(&rhs).t()).expect("shapes checked in the forward");
            grads.register::<Flex>(node.id, g);
        }
        if let Some(node) = node_rhs {
            let lhs = batched_tensor(lhs.expect("lhs is kept when rhs is tracked"));
            let g = batched_product(&batched(&lhs).t(), &batched(&grad)).expect("shapes checked in the forward");
            grads.register::<Flex>(node.id, g);
        }
    }
}

fn batched(t: &FlexTensor) -> Batched<'_> {
    Batched::of(t).expect("batched_tensor made the layout usable")
}

fn batched_tensor(t: FlexTensor) -> FlexTensor {
    if Batched::of(&t).is_some() { t } else { t.to_contiguous() }
}

/// [`super::batched_matmul`] on Flex (plain or autodiff, f32, equal batch dimensions).
pub(super) fn batched_matmul(lhs: &Tensor<4>, rhs: &Tensor<4>) -> Option<Tensor<4>> {
    if let Ok(a) = lhs.clone().try_into_primitive::<Autodiff<Flex>>() {
        let b = rhs.clone().try_into_primitive::<Autodiff<Flex>>().ok()?;
        let out = batched_product(&Batched::of(a.primitive())?, &Batched::of(b.primitive())?)?;
        let (a_tracked, b_tracked) = (a.is_tracked(), b.is_tracked());
        let prep = BatchedNode.prepare::<NoCheckpointing>([a.node(), b.node()]).compute_bound().stateful();
        let out = match prep {
            OpsKind::Tracked(prep) => {
                let state = (b_tracked.then(|| a.into_primitive()), a_tracked.then(|| b.into_primitive()));
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(out));
    }
    let a = lhs.clone().try_into_primitive::<Flex>().ok()?;
    let b = rhs.clone().try_into_primitive::<Flex>().ok()?;
    Some(Tensor::from_primitive::<Flex>(batched_product(&Batched::of(&a)?, &Batched::of(&b)?)?))
}

/// A tensor as a product operand, made contiguous first if its layout is not one `gemm` takes.
fn operand_tensor(t: FlexTensor) -> FlexTensor {
    if Operand::of(&t).is_some() { t } else { t.to_contiguous() }
}

fn view(t: &FlexTensor) -> Operand<'_> {
    Operand::of(t).expect("operand_tensor made the layout usable")
}

/// The forward on plain Flex tensors; `None` (burn's op then runs) unless all are 2-D/1-D f32
/// with matching sizes.
fn forward(x: &FlexTensor, weight: &FlexTensor, bias: Option<&FlexTensor>) -> Option<FlexTensor> {
    let (lhs, rhs) = (Operand::of(x)?, Operand::of(weight)?);
    if lhs.cols != rhs.rows {
        return None;
    }
    let bias = match bias {
        Some(b) if b.dtype() == DType::F32 && b.shape().num_elements() == rhs.cols => Some(b.as_slice::<f32>()?),
        Some(_) => return None,
        None => None,
    };
    Some(product(lhs, rhs, bias))
}

/// The autodiff node: parents `[x, weight, bias]`; the state keeps `x` when the weight needs a
/// gradient and the weight when `x` does (as burn's own linear node).
#[derive(Debug)]
struct LinearNode;

impl Backward<Flex, 3> for LinearNode {
    type State = (Option<FlexTensor>, Option<FlexTensor>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let grad = operand_tensor(grads.consume::<Flex>(&ops.node));
        let (x, weight) = ops.state;
        // Same order as burn's node: x, weight, bias (gradients of a shared input are summed
        // in registration order).
        if let Some(node) = node_x {
            let weight = operand_tensor(weight.expect("the weight is kept when x is tracked"));
            grads.register::<Flex>(node.id, product(view(&grad), view(&weight).t(), None));
        }
        if let Some(node) = node_weight {
            let x = operand_tensor(x.expect("x is kept when the weight is tracked"));
            grads.register::<Flex>(node.id, product(view(&x).t(), view(&grad), None));
        }
        if let Some(node) = node_bias {
            let width = grad.shape()[1];
            let sum = Flex::float_sum_dim(grad, 0);
            grads.register::<Flex>(node.id, Flex::float_reshape(sum, Shape::new([width])));
        }
    }
}

/// [`super::matmul`] on plain Flex: `Some` for f32 2-D operands.
pub(super) fn matmul(lhs: &Tensor<2>, rhs: &Tensor<2>) -> Option<Tensor<2>> {
    let lhs = lhs.clone().try_into_primitive::<Flex>().ok()?;
    let rhs = rhs.clone().try_into_primitive::<Flex>().ok()?;
    Some(Tensor::from_primitive::<Flex>(forward(&lhs, &rhs, None)?))
}

/// [`super::linear`] on Flex: `Some` for f32 2-D input on a Flex or autodiff-Flex device with a
/// biased layer, else `None`.
pub(super) fn linear(layer: &Linear, x: &Tensor<2>) -> Option<Tensor<2>> {
    let bias = layer.bias.as_ref()?.val();
    let weight = layer.weight.val();
    if let Ok(x) = x.clone().try_into_primitive::<Autodiff<Flex>>() {
        let weight = weight.try_into_primitive::<Autodiff<Flex>>().ok()?;
        let bias = bias.try_into_primitive::<Autodiff<Flex>>().ok()?;
        let out = forward(x.primitive(), weight.primitive(), Some(bias.primitive()))?;
        let (x_tracked, weight_tracked) = (x.is_tracked(), weight.is_tracked());
        let prep = LinearNode.prepare::<NoCheckpointing>([x.node(), weight.node(), bias.node()]).compute_bound().stateful();
        let out = match prep {
            OpsKind::Tracked(prep) => {
                let state = (weight_tracked.then(|| x.into_primitive()), x_tracked.then(|| weight.into_primitive()));
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        };
        return Some(Tensor::from_primitive::<Autodiff<Flex>>(out));
    }
    let x = x.clone().try_into_primitive::<Flex>().ok()?;
    let weight = weight.try_into_primitive::<Flex>().ok()?;
    let bias = bias.try_into_primitive::<Flex>().ok()?;
    Some(Tensor::from_primitive::<Flex>(forward(&x, &weight, Some(&bias))?))
}
