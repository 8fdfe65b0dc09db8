//! The LibTorch path of [`super`]: one burn autodiff node per block, backed by libtorch kernels.
//!
//! Forward: the block's inputs are unwrapped to libtorch tensors; on an autodiff device with
//! tracked inputs, detached copies (same storage) become libtorch autograd leaves and the block
//! runs with libtorch's grad mode on, so libtorch records its own small graph with its fused
//! backward kernels (`native_layer_norm_backward`, the SDPA backward, dropout's mask product).
//! The output goes back to burn detached, as a node whose state is that graph.
//! Backward: burn hands the node its output gradient `g`; `torch_ops.cpp` pulls `g` back through
//! the recorded graph to the leaves (what `torch::autograd::grad` with `grad_outputs` returns,
//! no extra operators, but run on the calling thread instead of libtorch's engine, which hands
//! CUDA graphs to a device thread), and the leaf gradients are registered for the block's burn
//! parents.
//!
//! The state also holds burn handles to the tensors libtorch saves for its backward (attention's
//! q, k, v and output, LayerNorm's parameters): while it lives, burn sees their storage as shared
//! and never updates them in place (libtorch's version counter would reject that anyway).
//! Activations libtorch does not keep (a LayerNorm block's inputs) are not held, so they are
//! freed as early as on burn's own path.
//! Random numbers (dropout) come from libtorch's default generator, which burn's
//! `Device::seed` seeds on LibTorch devices, so seeded runs repeat exactly.

// burn-tch is deprecated upstream but is this project's LibTorch path (docs/architecture.md).
#![allow(deprecated)]

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::libtorch::TchTensor;
use burn::backend::{Autodiff, LibTorch};
use burn::nn::LayerNorm;
use burn::tensor::Tensor;

/// A float primitive on `Autodiff<LibTorch>` (burn's autodiff wrapper of a [`TchTensor`]).
type AdTensor = burn::backend::tensor::FloatTensor<Autodiff<LibTorch>>;

/// The block's inputs, unwrapped: all on an autodiff LibTorch device, or all on a plain one.
enum Inputs<const N: usize> {
    Autodiff([AdTensor; N]),
    Plain([TchTensor; N]),
}

/// One input of a block, unwrapped (a cheap handle clone; `None` off LibTorch).
enum Input {
    Autodiff(AdTensor),
    Plain(TchTensor),
}

fn unwrap<const D: usize>(tensor: &Tensor<D>) -> Option<Input> {
    if let Ok(t) = tensor.clone().try_into_primitive::<Autodiff<LibTorch>>() {
        return Some(Input::Autodiff(t));
    }
    tensor.clone().try_into_primitive::<LibTorch>().ok().map(Input::Plain)
}

impl<const N: usize> Inputs<N> {
    /// `None` unless every input is a LibTorch tensor of the same kind (autodiff or plain).
    fn collect(inputs: [Option<Input>; N]) -> Option<Self> {
        let inputs: [Input; N] = inputs.into_iter().collect::<Option<Vec<_>>>()?.try_into().ok()?;
        if inputs.iter().all(|i| matches!(i, Input::Autodiff(_))) {
            Some(Self::Autodiff(inputs.map(|i| match i {
                Input::Autodiff(t) => t,
                Input::Plain(_) => unreachable!("checked above"),
            })))
        } else if inputs.iter().all(|i| matches!(i, Input::Plain(_))) {
            Some(Self::Plain(inputs.map(|i| match i {
                Input::Plain(t) => t,
                Input::Autodiff(_) => unreachable!("checked above"),
            })))
        } else {
            None
        }
    }
}

/// The burn autodiff op of a libtorch-recorded block (its state carries the recording).
#[derive(Debug)]
struct LibTorchBlock;

/// What a block's backward needs: libtorch's recorded graph and the burn handles it reads.
struct Recording {
    /// The block output, still attached to libtorch's graph.
    output: tch::Tensor,
    /// Per input: the libtorch leaf when the input needs a gradient.
    leaves: Vec<Option<tch::Tensor>>,
    /// Burn handles of the inputs (and output) libtorch saved, held so burn treats their
    /// storage as shared and leaves it alone (no in-place updates while libtorch may read it).
    _held: Vec<TchTensor>,
}

impl Clone for Recording {
    fn clone(&self) -> Self {
        Self {
            output: self.output.shallow_clone(),
            leaves: self.leaves.iter().map(|l| l.as_ref().map(tch::Tensor::shallow_clone)).collect(),
            _held: self._held.clone(),
        }
    }
}

impl std::fmt::Debug for Recording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recording").field("output", &self.output.size()).field("leaves", &self.leaves.len()).finish()
    }
}

impl<const N: usize> Backward<LibTorch, N> for LibTorchBlock {
    type State = Recording;

    fn backward(self, ops: Ops<Recording, N>, grads: &mut Gradients, _checkpointer: &mut Checkpointer) {
        let grad = grads.consume::<LibTorch>(&ops.node);
        let Recording { output, leaves, .. } = ops.state;
        // Leaves whose burn parent wants a gradient; the others are left out of the request.
        let wanted: Vec<(usize, tch::Tensor)> = leaves
            .into_iter()
            .enumerate()
            .filter_map(|(i, leaf)| Some((i, leaf?)))
            .filter(|(i, _)| ops.parents[*i].is_some())
            .collect();
        if wanted.is_empty() {
            return;
        }
        let inputs: Vec<&tch::Tensor> = wanted.iter().map(|(_, leaf)| leaf).collect();
        let gradients = autograd_grad(&output, &grad.tensor, &inputs).unwrap_or_else(|e| panic!("{e}"));
        for ((i, _), gradient) in wanted.iter().zip(gradients) {
            if let (Some(parent), Some(gradient)) = (&ops.parents[*i], gradient) {
                grads.register::<LibTorch>(parent.id, TchTensor::new(gradient));
            }
        }
    }
}

/// Which burn handles a recording keeps (see [`Recording::_held`]).
struct Saved<const N: usize> {
    inputs: [bool; N],
    output: bool,
}

/// `block` on the inputs' libtorch tensors with grad mode off: nothing recorded.
fn untracked<const N: usize>(inputs: &[TchTensor; N], block: impl Fn(&[tch::Tensor; N]) -> tch::Tensor) -> TchTensor {
    let tensors = inputs.each_ref().map(|t| t.tensor.shallow_clone());
    TchTensor::new(tch::no_grad(|| block(&tensors)))
}

/// Runs `block` on the inputs: recorded for backward on an autodiff device (when any input is
/// tracked), plain libtorch calls otherwise.
fn run<const N: usize, const D: usize>(
    inputs: [Option<Input>; N],
    saved: Saved<N>,
    block: impl Fn(&[tch::Tensor; N]) -> tch::Tensor,
) -> Option<Tensor<D>> {
    match Inputs::collect(inputs)? {
        Inputs::Plain(inputs) => Some(Tensor::from_primitive::<LibTorch>(untracked(&inputs, block))),
        Inputs::Autodiff(inputs) => {
            let tracked = inputs.each_ref().map(|t| t.is_tracked());
            let prep = LibTorchBlock.prepare::<NoCheckpointing>(inputs.each_ref().map(|t| t.node()));
            let primitives = inputs.map(|t| t.into_primitive());
            let out = match prep.compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let leaves: [tch::Tensor; N] =
                        std::array::from_fn(|i| primitives[i].tensor.detach().set_requires_grad(tracked[i]));
                    let output = tch::with_grad(|| block(&leaves));
                    let public = TchTensor::new(output.detach());
                    let recording = Recording {
                        output,
                        leaves: leaves.into_iter().zip(tracked).map(|(leaf, t)| t.then_some(leaf)).collect(),
                        _held: primitives
                            .into_iter()
                            .zip(saved.inputs)
                            .filter_map(|(t, keep)| keep.then_some(t))
                            .chain(saved.output.then(|| public.clone()))
                            .collect(),
                    };
                    prep.finish(recording, public)
                }
                OpsKind::UnTracked(prep) => prep.finish(untracked(&primitives, block)),
            };
            Some(Tensor::from_primitive::<Autodiff<LibTorch>>(out))
        }
    }
}

/// The LayerNorm's gamma and beta as block inputs (beta may be absent).
fn norm_params(norm: &LayerNorm) -> (Option<Input>, Option<Option<Input>>) {
    let gamma = unwrap(&norm.gamma.val());
    let beta = norm.beta.as_ref().map(|b| unwrap(&b.val()));
    (gamma, beta)
}

// LayerNorm blocks: libtorch saves the parameters (and its own normalised input), not the
// block's inputs or output.
const LN_BLOCK_4: Saved<4> = Saved { inputs: [false, false, true, true], output: false };
const LN_BLOCK_3: Saved<3> = Saved { inputs: [false, false, true], output: false };
const LN_3: Saved<3> = Saved { inputs: [false, true, true], output: false };
const LN_2: Saved<2> = Saved { inputs: [false, true], output: false };

fn layer_norm(x: &tch::Tensor, gamma: &tch::Tensor, beta: Option<&tch::Tensor>, eps: f64) -> tch::Tensor {
    let hidden = x.size().last().copied().unwrap_or(0);
    x.layer_norm([hidden], Some(gamma), beta, eps, true)
}

fn dropout(x: tch::Tensor, p: f64) -> tch::Tensor {
    if p > 0.0 { x.dropout(p, true) } else { x }
}

pub(super) fn add_dropout_layer_norm(
    branch: &Tensor<3>,
    residual: &Tensor<3>,
    p: f64,
    norm: &LayerNorm,
    eps: f64,
) -> Option<Tensor<3>> {
    match norm_params(norm) {
        (gamma, Some(beta)) => run([unwrap(branch), unwrap(residual), gamma, beta], LN_BLOCK_4, |[b, r, g, be]| {
            layer_norm(&(dropout(b.shallow_clone(), p) + r), g, Some(be), eps)
        }),
        (gamma, None) => run([unwrap(branch), unwrap(residual), gamma], LN_BLOCK_3, |[b, r, g]| {
            layer_norm(&(dropout(b.shallow_clone(), p) + r), g, None, eps)
        }),
    }
}

pub(super) fn layer_norm_dropout(x: &Tensor<3>, norm: &LayerNorm, eps: f64, p: f64) -> Option<Tensor<3>> {
    match norm_params(norm) {
        (gamma, Some(beta)) => {
            run([unwrap(x), gamma, beta], LN_3, |[x, g, be]| dropout(layer_norm(x, g, Some(be), eps), p))
        }
        (gamma, None) => run([unwrap(x), gamma], LN_2, |[x, g]| dropout(layer_norm(x, g, None, eps), p)),
    }
}

pub(super) fn attention(q: &Tensor<4>, k: &Tensor<4>, v: &Tensor<4>, bias: &Tensor<4>, p: f64) -> Option<Tensor<4>> {
    // SDPA keeps q, k, v (and, in its flash variants, its output) for the backward.
    let saved = Saved { inputs: [true; 4], output: true };
    run([unwrap(q), unwrap(k), unwrap(v), unwrap(bias)], saved, |[q, k, v, bias]| {
        tch::Tensor::scaled_dot_product_attention(q, k, v, Some(bias), p, false, None, false)
    })
}

/// `sum(t^2)` as one dot product (no squared copy), on a plain or autodiff LibTorch tensor
/// read without tracking; `None` elsewhere.
pub(super) fn sum_of_squares<const D: usize>(tensor: &Tensor<D>) -> Option<Tensor<1>> {
    let t = match unwrap(tensor)? {
        Input::Plain(t) => t,
        Input::Autodiff(_) => return None,
    };
    let flat = t.tensor.view([-1]);
    let out = tch::no_grad(|| flat.dot(&flat).reshape([1]));
    Some(Tensor::from_primitive::<LibTorch>(TchTensor::new(out)))
}

/// True when `tensor` is a plain (non-autodiff) LibTorch tensor.
pub(super) fn is_plain<const D: usize>(tensor: &Tensor<D>) -> bool {
    matches!(unwrap(tensor), Some(Input::Plain(_)))
}

/// A plain LibTorch primitive this update may overwrite: the tensor itself when no one else
/// holds its storage, else a copy.
fn owned<const D: usize>(tensor: Tensor<D>) -> TchTensor {
    let t = tensor.try_into_primitive::<LibTorch>().expect("callers check `is_plain` first");
    if t.can_mut() { t } else { TchTensor::new(t.tensor.copy()) }
}

/// Values per slice of the AdamW update (4 MiB of f32 temporaries).
const ADAMW_SLICE: i64 = 1 << 20;

pub(super) fn adamw<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    moments: Option<(Tensor<D>, Tensor<D>)>,
    update: &super::AdamWUpdate,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let (mut p, mut g) = (owned(param), owned(grad));
    let (mut m, mut v) = match moments {
        Some((m, v)) => (owned(m), owned(v)),
        None => (TchTensor::new(g.tensor.zeros_like()), TchTensor::new(g.tensor.zeros_like())),
    };
    let super::AdamWUpdate { lr, beta_1, beta_2, epsilon, weight_decay, time } = *update;
    // Bias corrections in f32, as burn's AdamW computes them.
    let correction_1 = f64::from(1.0 - beta_1.powi(time as i32));
    let correction_2 = f64::from(1.0 - beta_2.powi(time as i32));
    tch::no_grad(|| {
        // m <- b1 m + (1 - b1) g and v <- b2 v + (1 - b2) g^2, as lerps: no temporaries.
        let _ = m.tensor.lerp_(&g.tensor, 1.0 - f64::from(beta_1));
        let _ = g.tensor.square_();
        let _ = v.tensor.lerp_(&g.tensor, 1.0 - f64::from(beta_2));
        let decay = lr * f64::from(weight_decay);
        if decay != 0.0 {
            let _ = p.tensor.g_mul_scalar_(1.0 - decay);
        }
        if lr != 0.0 {
            // p -= lr * (m / c1) / (sqrt(v / c2) + eps), with one temporary `denom` pre-scaled
            // so that a single addcdiv_ (value 1) applies it. Flat slices of ADAMW_SLICE values
            // keep that temporary small and reused by the allocator: a parameter-sized one would
            // be a fresh, page-faulted allocation every step.
            let (flat_p, flat_m, flat_v) = (p.tensor.view([-1]), m.tensor.view([-1]), v.tensor.view([-1]));
            let numel = flat_p.size()[0];
            let mut start = 0;
            while start < numel {
                let len = ADAMW_SLICE.min(numel - start);
                let mut denom = flat_v.narrow(0, start, len).sqrt();
                let _ = denom.g_div_scalar_(correction_2.sqrt());
                let _ = denom.g_add_scalar_(f64::from(epsilon));
                let _ = denom.g_mul_scalar_(-correction_1 / lr);
                let _ = flat_p.narrow(0, start, len).addcdiv_(&flat_m.narrow(0, start, len), &denom);
                start += len;
            }
        }
    });
    let wrap = |t: TchTensor| Tensor::<D>::from_primitive::<LibTorch>(t);
    (wrap(p), wrap(m), wrap(v))
}

/// One parameter's update waiting for [`fused_adamw`]: tch handles sharing the storage of the
/// tensors burn holds, so the fused update in place is what burn sees.
pub(super) struct PendingAdamW {
    param: tch::Tensor,
    grad: tch::Tensor,
    exp_avg: tch::Tensor,
    exp_avg_sq: tch::Tensor,
    update: super::AdamWUpdate,
}

/// Queues the update of `param` for [`fused_adamw`] and returns the parameter and moments (the
/// moments start at zero). Their values change when the queue is applied.
pub(super) fn defer_adamw<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    moments: Option<(Tensor<D>, Tensor<D>)>,
    update: &super::AdamWUpdate,
    queue: &mut Vec<PendingAdamW>,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    let (p, g) = (owned(param), owned(grad));
    let (m, v) = match moments {
        Some((m, v)) => (owned(m), owned(v)),
        None => (TchTensor::new(p.tensor.zeros_like()), TchTensor::new(p.tensor.zeros_like())),
    };
    queue.push(PendingAdamW {
        param: p.tensor.shallow_clone(),
        grad: g.tensor.shallow_clone(),
        exp_avg: m.tensor.shallow_clone(),
        exp_avg_sq: v.tensor.shallow_clone(),
        update: *update,
    });
    let wrap = |t: TchTensor| Tensor::<D>::from_primitive::<LibTorch>(t);
    (wrap(p), wrap(m), wrap(v))
}

#[allow(unsafe_code)] // the C++ shim's declarations; their calls are audited where they happen
unsafe extern "C" {
    // src/kernels/torch_ops.cpp (compiled by build.rs); tensors are tch's `at::Tensor*` handles.
    fn hybrid_ir_global_norm(
        tensors: *const *mut torch_sys::C_tensor,
        n: usize,
        norm: *mut f64,
        error: *mut std::ffi::c_char,
        error_len: usize,
    ) -> std::ffi::c_int;
    fn hybrid_ir_autograd_grad(
        output: *mut torch_sys::C_tensor,
        grad_output: *mut torch_sys::C_tensor,
        inputs: *const *mut torch_sys::C_tensor,
        n: usize,
        results: *mut *mut torch_sys::C_tensor,
        error: *mut std::ffi::c_char,
        error_len: usize,
    ) -> std::ffi::c_int;
    fn hybrid_ir_fused_adamw(
        params: *const *mut torch_sys::C_tensor,
        grads: *const *mut torch_sys::C_tensor,
        exp_avgs: *const *mut torch_sys::C_tensor,
        exp_avg_sqs: *const *mut torch_sys::C_tensor,
        n: usize,
        step: f64,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        error: *mut std::ffi::c_char,
        error_len: usize,
    ) -> std::ffi::c_int;
}

/// Applies and empties `queue`: one `aten::_fused_adamw_` per group of updates with the same
/// scalars (in a step, all parameters but those that missed earlier steps share them).
#[allow(unsafe_code)] // the call into torch_ops.cpp
pub(super) fn fused_adamw(queue: &mut Vec<PendingAdamW>) -> Result<(), String> {
    while let Some(first) = queue.first().map(|p| p.update) {
        let (mut group, rest): (Vec<PendingAdamW>, Vec<PendingAdamW>) = queue.drain(..).partition(|p| p.update == first);
        *queue = rest;
        let mut handles = |pick: fn(&mut PendingAdamW) -> &mut tch::Tensor| -> Vec<*mut torch_sys::C_tensor> {
            group.iter_mut().map(|p| pick(p).as_mut_ptr()).collect()
        };
        let (params, grads) = (handles(|p| &mut p.param), handles(|p| &mut p.grad));
        let (exp_avgs, exp_avg_sqs) = (handles(|p| &mut p.exp_avg), handles(|p| &mut p.exp_avg_sq));
        let mut error = [0 as std::ffi::c_char; 512];
        let super::AdamWUpdate { lr, beta_1, beta_2, epsilon, weight_decay, time } = first;
        // SAFETY: four arrays of `group.len()` live tensor handles (`group` owns the tensors until
        // the call returns) and a writable buffer of `error.len()` bytes for the message.
        let status = unsafe {
            hybrid_ir_fused_adamw(
                params.as_ptr(),
                grads.as_ptr(),
                exp_avgs.as_ptr(),
                exp_avg_sqs.as_ptr(),
                group.len(),
                time as f64,
                lr,
                f64::from(beta_1),
                f64::from(beta_2),
                f64::from(weight_decay),
                f64::from(epsilon),
                error.as_mut_ptr(),
                error.len(),
            )
        };
        shim_result(status, &error, "aten::_fused_adamw_")?;
    }
    Ok(())
}

/// `grad` pulled back through `output`'s recorded graph to `inputs` (`None` for an unused one).
#[allow(unsafe_code)] // the call into torch_ops.cpp and the adoption of the handles it returns
fn autograd_grad(output: &tch::Tensor, grad: &tch::Tensor, inputs: &[&tch::Tensor]) -> Result<Vec<Option<tch::Tensor>>, String> {
    let handles: Vec<*mut torch_sys::C_tensor> = inputs.iter().map(|t| t.as_ptr().cast_mut()).collect();
    let mut results: Vec<*mut torch_sys::C_tensor> = vec![std::ptr::null_mut(); inputs.len()];
    let mut error = [0 as std::ffi::c_char; 512];
    // SAFETY: `output`, `grad` and the input handles are live tensors borrowed for the call (the
    // C++ side copies the `at::Tensor` values, it does not take them over); `results` has room
    // for one handle per input; `error` is writable for its length.
    let status = unsafe {
        hybrid_ir_autograd_grad(
            output.as_ptr().cast_mut(),
            grad.as_ptr().cast_mut(),
            handles.as_ptr(),
            handles.len(),
            results.as_mut_ptr(),
            error.as_mut_ptr(),
            error.len(),
        )
    };
    shim_result(status, &error, "libtorch backward of a fused block")?;
    // SAFETY: each non-null result is a new `at::Tensor` allocated with `new`, which tch's
    // Tensor owns from here (it frees it with libtorch's `at_free`, i.e. `delete`).
    Ok(results.into_iter().map(|r| (!r.is_null()).then(|| unsafe { tch::Tensor::from_ptr(r) })).collect())
}

// The dense layer: libtorch keeps x and the weight for its backward (AddmmBackward: two mm and,
// with a bias, one sum), as PyTorch's nn.Linear does.
const LINEAR_3: Saved<3> = Saved { inputs: [true, true, false], output: false };
const LINEAR_2: Saved<2> = Saved { inputs: [true, true], output: false };

/// `x · W + b` as one `addmm` (burn: a matmul and an add, forward and backward).
pub(super) fn linear(x: &Tensor<2>, layer: &burn::nn::Linear) -> Option<Tensor<2>> {
    let weight = unwrap(&layer.weight.val());
    match layer.bias.as_ref().map(|b| unwrap(&b.val())) {
        Some(bias) => run([unwrap(x), weight, bias], LINEAR_3, |[x, w, b]| b.addmm(x, w)),
        None => run([unwrap(x), weight], LINEAR_2, |[x, w]| x.mm(w)),
    }
}

/// The libtorch handle of a plain LibTorch tensor (`None` otherwise), for [`global_norm`].
pub(super) fn plain_handle<const D: usize>(tensor: &Tensor<D>) -> Option<tch::Tensor> {
    match unwrap(tensor)? {
        Input::Plain(t) => Some(t.tensor.shallow_clone()),
        Input::Autodiff(_) => None,
    }
}

/// The L2 norm of `tensors` taken together: `_foreach_norm`, the norm of the norms, one read.
#[allow(unsafe_code)] // the call into torch_ops.cpp
pub(super) fn global_norm(tensors: &[tch::Tensor]) -> Result<f64, String> {
    let handles: Vec<*mut torch_sys::C_tensor> = tensors.iter().map(|t| t.as_ptr().cast_mut()).collect();
    let mut norm = 0.0;
    let mut error = [0 as std::ffi::c_char; 512];
    // SAFETY: live tensor handles borrowed for the call, a writable f64 and error buffer.
    let status =
        unsafe { hybrid_ir_global_norm(handles.as_ptr(), handles.len(), &mut norm, error.as_mut_ptr(), error.len()) };
    shim_result(status, &error, "aten::_foreach_norm")?;
    Ok(norm)
}

/// A torch_ops.cpp status as a result: on failure (-1) the message the C++ side wrote into
/// `error` (NUL-terminated, or cut at the buffer's end), prefixed with `what`.
fn shim_result(status: std::ffi::c_int, error: &[std::ffi::c_char], what: &str) -> Result<(), String> {
    if status == 0 {
        return Ok(());
    }
    let bytes: Vec<u8> = error.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    Err(format!("{what} failed: {}", String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    //! The shim's backward (`autograd_grad`) against libtorch's engine, bit for bit, on the
    //! shapes of graph the blocks record: broadcasting (addmm's bias), a leaf reached along
    //! several paths (accumulation order), leaves without gradient, dropout, attention.

    use super::autograd_grad;
    use tch::{Device, Kind, Tensor};

    /// Seeded leaves of `shapes`; those marked `false` in `grad` do not require a gradient.
    fn leaves(shapes: &[&[i64]], grad: &[bool]) -> Vec<Tensor> {
        tch::manual_seed(11);
        shapes.iter().zip(grad).map(|(s, &g)| Tensor::randn(*s, (Kind::Float, Device::Cpu)).set_requires_grad(g)).collect()
    }

    /// `block` recorded twice from the same seed: ours pulls `g` back through one recording, the
    /// engine differentiates `sum(output * g)` of the other (multiplying by one is exact, so
    /// both pull back exactly `g`).
    fn check(shapes: &[&[i64]], grad: &[bool], block: impl Fn(&[Tensor]) -> Tensor) {
        // libtorch's generator is process-wide and the tests of a binary run in parallel.
        static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _seeded = SEEDED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let leaves = leaves(shapes, grad);
        let record = || {
            tch::manual_seed(5);
            tch::with_grad(|| block(&leaves))
        };
        let output = record();
        let g = output.randn_like();
        let ours = autograd_grad(&output, &g, &leaves.iter().collect::<Vec<_>>()).unwrap();
        let wanted: Vec<&Tensor> = leaves.iter().filter(|l| l.requires_grad()).collect();
        let engine = Tensor::run_backward(&[(record() * &g).sum(Kind::Float)], &wanted, false, false);
        let mut engine = engine.into_iter();
        for (i, (leaf, ours)) in leaves.iter().zip(ours).enumerate() {
            if !leaf.requires_grad() {
                assert!(ours.is_none(), "leaf {i} needs no gradient, got one");
                continue;
            }
            let engine = engine.next().unwrap();
            match ours {
                Some(ours) => assert!(ours.equal(&engine), "leaf {i}: {ours} vs the engine's {engine}"),
                None => assert!(!engine.defined(), "leaf {i}: no gradient, the engine has one"),
            }
        }
    }

    #[test]
    fn dense_layer_with_broadcast_bias() {
        check(&[&[6], &[4, 3], &[3, 6]], &[true; 3], |t| t[0].addmm(&t[1], &t[2]));
    }

    #[test]
    fn dropout_residual_layer_norm() {
        check(&[&[2, 5, 8], &[2, 5, 8], &[8], &[8]], &[true; 4], |t| {
            (t[0].dropout(0.3, true) + &t[1]).layer_norm([8], Some(&t[2]), Some(&t[3]), 1e-12, true)
        });
    }

    #[test]
    fn attention_with_an_untracked_bias() {
        check(&[&[2, 2, 5, 4], &[2, 2, 5, 4], &[2, 2, 5, 4], &[2, 1, 1, 5]], &[true, true, true, false], |t| {
            Tensor::scaled_dot_product_attention(&t[0], &t[1], &t[2], Some(&t[3]), 0.2, false, None, false)
        });
    }

    #[test]
    fn a_leaf_on_several_paths_and_an_unused_one() {
        check(&[&[3, 4], &[3, 4]], &[true, true], |t| &(&t[0] * &t[0]) + &(t[0].sin() * t[0].exp()) + &t[0]);
    }

    #[test]
    fn output_that_is_a_leaf() {
        check(&[&[3], &[3]], &[true, true], |t| t[0].shallow_clone());
    }
}
