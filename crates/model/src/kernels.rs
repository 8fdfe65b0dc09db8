//! The encoder layer's memory-bound blocks, each behind one function: residual + LayerNorm,
//! LayerNorm + dropout, and the attention core (scores, mask, softmax, dropout, weighted sum).
//!
//! Why this module exists: burn 0.22's autodiff has no backward of its own for `layer_norm` or
//! `softmax`, so on every backend they run as a chain of element-wise ops (9 forward kernels for
//! a LayerNorm, ~20 backward), each one a full pass over a `[B, L, H]` or `[B, heads, L, L]`
//! tensor. On a LibTorch device these functions instead run libtorch's own fused kernels forward
//! *and* backward: the block is one node in burn's autodiff graph, and its backward replays a
//! small libtorch autograd graph recorded in the forward (see `libtorch.rs`). The arithmetic is
//! the same (HF BERT's layer; attention is `scaled_dot_product_attention`, what PyTorch's
//! `BertSdpaSelfAttention` calls), so results agree with burn's path to float rounding
//! (`tests/kernels.rs`). On autodiff Flex devices LayerNorm and softmax are one node each too
//! (burn-flex's fused forward, our backward: `flex_fused.rs`); elsewhere they are burn's ops.
//!
//! [`set_libtorch_kernels`] switches the LibTorch path off (process-wide) to compare against
//! burn's decomposed ops. [`gelu`] has a Flex path (parallel, bit-identical to burn-flex's), and
//! so has [`linear`] (direct `gemm` calls without burn-flex's serial output allocation).

use std::sync::atomic::{AtomicBool, Ordering};

use burn::nn::{Dropout, LayerNorm, Linear};
use burn::tensor::Tensor;
use burn::tensor::activation::softmax;

mod erf;
mod flex;
mod flex_fused;
mod flex_linear;
#[cfg(feature = "tch")]
mod libtorch;

static LIBTORCH_KERNELS: AtomicBool = AtomicBool::new(true);

/// Use libtorch's fused kernels on LibTorch devices (the default) or burn's decomposed ops.
/// Process-wide; meant for benchmarks and tests that compare the two.
pub fn set_libtorch_kernels(enabled: bool) {
    LIBTORCH_KERNELS.store(enabled, Ordering::Relaxed);
}

/// Whether LibTorch devices use the fused kernels (see [`set_libtorch_kernels`]).
pub fn libtorch_kernels() -> bool {
    LIBTORCH_KERNELS.load(Ordering::Relaxed)
}

/// The drop probability `dropout` applies to `x`: its own, when it is in training mode and `x`
/// lives on an autodiff device (burn `Dropout`'s rule), else 0.
#[cfg(feature = "tch")]
fn active_drop_prob<const D: usize>(dropout: &Dropout, x: &Tensor<D>) -> f64 {
    if dropout.training.is_enabled() && dropout.prob > 0.0 && x.device().is_autodiff() { dropout.prob } else { 0.0 }
}

/// `layer_norm(dropout(branch) + residual)`: HF BERT's `SelfOutput` / `Output` after the dense.
/// `eps` must be the one `norm` was built with (burn keeps it private).
pub fn add_dropout_layer_norm(
    branch: Tensor<3>,
    residual: Tensor<3>,
    dropout: &Dropout,
    norm: &LayerNorm,
    eps: f64,
) -> Tensor<3> {
    #[cfg(feature = "tch")]
    if libtorch_kernels() {
        let p = active_drop_prob(dropout, &branch);
        if let Some(out) = libtorch::add_dropout_layer_norm(&branch, &residual, p, norm, eps) {
            return out;
        }
    }
    let x = self::dropout(branch, dropout) + residual;
    flex_fused::layer_norm(&x, norm, eps).unwrap_or_else(|| norm.forward(x))
}

/// `dropout(layer_norm(x))`: HF BERT's embedding output (`eps` as in
/// [`add_dropout_layer_norm`]).
pub fn layer_norm_dropout(x: Tensor<3>, norm: &LayerNorm, eps: f64, dropout: &Dropout) -> Tensor<3> {
    #[cfg(feature = "tch")]
    if libtorch_kernels() {
        let p = active_drop_prob(dropout, &x);
        if let Some(out) = libtorch::layer_norm_dropout(&x, norm, eps, p) {
            return out;
        }
    }
    self::dropout(flex_fused::layer_norm(&x, norm, eps).unwrap_or_else(|| norm.forward(x)), dropout)
}

/// `layer.forward(x)` for `x [tokens, in]`: the encoder's dense layers. On Flex (plain or
/// autodiff, f32) the product and its gradients are direct `gemm` calls into fresh uninitialised
/// buffers, bit-identical to burn's; on LibTorch one `addmm` forward and libtorch's
/// `AddmmBackward` (burn's op would be a matmul and an add, each with its own backward);
/// elsewhere burn's op.
pub fn linear(layer: &Linear, x: Tensor<2>) -> Tensor<2> {
    if let Some(out) = flex_linear::linear(layer, &x) {
        return out;
    }
    #[cfg(feature = "tch")]
    if libtorch_kernels()
        && let Some(out) = libtorch::linear(&x, layer)
    {
        return out;
    }
    layer.forward(x)
}

/// `lhs · rhs` for 2-D operands by the same product path as [`linear`] (on a plain Flex device
/// the direct `gemm` call; elsewhere, and on autodiff devices, burn's `matmul`). For
/// benchmarks that measure the encoder's products.
pub fn matmul(lhs: Tensor<2>, rhs: Tensor<2>) -> Tensor<2> {
    if let Some(out) = flex_linear::matmul(&lhs, &rhs) {
        return out;
    }
    lhs.matmul(rhs)
}

/// `lhs · rhs` for 4-D tensors `[b0, b1, m, k] x [b0, b1, k, n]` (equal batch dimensions, any
/// strides, e.g. attention heads split by `swap_dims`): on Flex (plain or autodiff) direct
/// `gemm` calls per batch into one uninitialised buffer, parallel over the batches, with the
/// same products in the backward (bit-identical to burn's `matmul`); elsewhere burn's `matmul`.
pub fn batched_matmul(lhs: Tensor<4>, rhs: Tensor<4>) -> Tensor<4> {
    if let Some(out) = flex_linear::batched_matmul(&lhs, &rhs) {
        return out;
    }
    lhs.matmul(rhs)
}

/// How many threads [`linear`] splits an `[m, k] x [k, n]` product over on Flex: every rayon
/// thread of the current pool for products of at least 192³ multiply-adds, else 1.
pub fn product_threads(m: usize, n: usize, k: usize) -> usize {
    match flex_linear::parallelism(m, n, k) {
        gemm::Parallelism::None => 1,
        _ => rayon::current_num_threads(),
    }
}

/// How many products the Flex path of [`linear`] / [`matmul`] has run in this process:
/// `(on one thread, on every thread of the pool)`. Instrumentation for tests and benchmarks that
/// hold the encoder to the parallel kernel (issue #19's regression guard).
pub fn flex_product_counts() -> (u64, u64) {
    flex_linear::product_counts()
}

/// `dropout.forward(x)`. Active on an autodiff Flex device, one parallel node whose mask comes
/// from a counter-based hash seeded from burn's generator (same masks for the same device seed,
/// recomputed in the backward instead of stored); elsewhere burn's `Dropout`.
pub fn dropout<const D: usize>(x: Tensor<D>, dropout: &Dropout) -> Tensor<D> {
    if let Some(out) = flex_fused::dropout(&x, dropout) {
        return out;
    }
    dropout.forward(x)
}

/// Exact (erf) GELU. On Flex evaluated in parallel slices with its own backward (burn-flex runs
/// it on one thread); on LibTorch burn's op is already libtorch's fused `gelu` and `gelu_backward`.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if let Some(out) = flex::gelu(&x) {
        return out;
    }
    burn::tensor::activation::gelu(x)
}

/// `dropout(softmax(q kᵀ / √d + bias)) v` for `q, k, v [B, heads, L, d]` and an additive
/// `bias` broadcastable to `[B, heads, L, L]` (0 for keys to attend, a large negative number
/// for padding).
pub fn attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>, dropout: &Dropout) -> Tensor<4> {
    #[cfg(feature = "tch")]
    if libtorch_kernels() {
        let p = active_drop_prob(dropout, &q);
        if let Some(out) = libtorch::attention(&q, &k, &v, &bias, p) {
            return out;
        }
    }
    let [.., head_dim] = q.dims();
    let scale = 1.0 / (head_dim as f64).sqrt();
    let scores = batched_matmul(q, k.swap_dims(2, 3));
    let probs = match flex_fused::scores_softmax(&scores, scale, &bias) {
        Some(probs) => probs,
        None => {
            let scores = scores.mul_scalar(scale) + bias;
            flex_fused::softmax_last(&scores).unwrap_or_else(|| softmax(scores, 3))
        }
    };
    batched_matmul(self::dropout(probs, dropout), v)
}

/// `sum(t²)` as a `[1]` tensor, e.g. for a global gradient norm. On LibTorch one dot product
/// (a squared copy of e5's embedding gradient would be a fresh 384 MB allocation); on Flex a
/// parallel pass in a fixed order (f64 partial sums), so that a clipped update is the same in
/// every run and after every resume.
pub fn sum_of_squares<const D: usize>(tensor: Tensor<D>) -> Tensor<1> {
    if let Some(out) = flex::sum_of_squares(&tensor) {
        return out;
    }
    #[cfg(feature = "tch")]
    if libtorch_kernels()
        && let Some(out) = libtorch::sum_of_squares(&tensor)
    {
        return out;
    }
    (tensor.clone() * tensor).sum()
}

/// The L2 norm of many tensors taken together (a global gradient norm), read back once. Plain
/// LibTorch tensors (with the fused kernels on) go to one multi-tensor `_foreach_norm`: on a GPU
/// a few launches instead of one reduction per tensor (~200 for e5-small). The others are
/// summed with [`sum_of_squares`] (on Flex: fixed order, so clipping repeats exactly).
#[derive(Default)]
pub struct GlobalNorm {
    squares: Vec<Tensor<1>>,
    #[cfg(feature = "tch")]
    libtorch: Vec<tch::Tensor>,
}

impl std::fmt::Debug for GlobalNorm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalNorm").field("tensors", &self.len()).finish()
    }
}

impl GlobalNorm {
    /// Adds `tensor` to the norm.
    pub fn add<const D: usize>(&mut self, tensor: &Tensor<D>) {
        #[cfg(feature = "tch")]
        if libtorch_kernels()
            && let Some(handle) = libtorch::plain_handle(tensor)
        {
            self.libtorch.push(handle);
            return;
        }
        self.squares.push(sum_of_squares(tensor.clone()));
    }

    /// How many tensors were added.
    pub fn len(&self) -> usize {
        #[cfg(feature = "tch")]
        return self.squares.len() + self.libtorch.len();
        #[cfg(not(feature = "tch"))]
        self.squares.len()
    }

    /// Whether no tensor was added.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The norm (0 with no tensors). An error is libtorch's message.
    pub fn total(self) -> Result<f64, String> {
        let sum = if self.squares.is_empty() { 0.0 } else { Tensor::cat(self.squares, 0).sum().into_scalar::<f64>() };
        #[cfg(feature = "tch")]
        let sum = if self.libtorch.is_empty() { sum } else { sum + libtorch::global_norm(&self.libtorch)?.powi(2) };
        Ok(sum.sqrt())
    }
}

/// The scalars of one AdamW update (burn's AdamW: decoupled weight decay `p *= 1 - lr * wd`,
/// then `p -= lr * m̂ / (sqrt(v̂) + eps)` with bias-corrected moments; `time` counts from 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWUpdate {
    /// Learning rate of this step.
    pub lr: f64,
    /// First-moment decay.
    pub beta_1: f32,
    /// Second-moment decay.
    pub beta_2: f32,
    /// Added to `sqrt(v̂)`.
    pub epsilon: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Step number of this parameter, from 1.
    pub time: usize,
}

/// Whether [`adamw_in_place`] can update these tensors: all f32 on a plain Flex device, or all
/// on a plain LibTorch device with the fused kernels switched on.
pub fn adamw_in_place_applies<const D: usize>(tensors: &[&Tensor<D>]) -> bool {
    if flex::adamw_applies(tensors) {
        return true;
    }
    #[cfg(feature = "tch")]
    {
        libtorch_kernels() && tensors.iter().all(|t| libtorch::is_plain(t))
    }
    #[cfg(not(feature = "tch"))]
    {
        false
    }
}

/// The LibTorch parameter updates of one optimizer step, applied together by ATen's fused
/// multi-tensor AdamW (`aten::_fused_adamw_`, PyTorch's `AdamW(fused=True)`) in
/// [`AdamWBatch::apply`]: one operator per step instead of ~9 per parameter tensor (on a GPU,
/// one kernel launch per group of tensors instead of ~1,800 per step for e5-small).
///
/// burn's optimizer interface hands over one parameter at a time, so [`AdamWBatch::defer`]
/// queues each update and returns handles that share the parameter's and moments' storage; the
/// update happens in place when the caller applies the batch after the module walk. Clones share
/// one queue.
#[derive(Clone, Default)]
pub struct AdamWBatch {
    #[cfg(feature = "tch")]
    queue: std::sync::Arc<std::sync::Mutex<Vec<libtorch::PendingAdamW>>>,
}

impl std::fmt::Debug for AdamWBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdamWBatch").finish_non_exhaustive()
    }
}

impl AdamWBatch {
    /// Whether [`AdamWBatch::defer`] takes these tensors: all on a plain LibTorch device, with
    /// the fused kernels switched on ([`set_libtorch_kernels`]).
    pub fn accepts<const D: usize>(&self, tensors: &[&Tensor<D>]) -> bool {
        #[cfg(feature = "tch")]
        {
            libtorch_kernels() && tensors.iter().all(|t| libtorch::is_plain(t))
        }
        #[cfg(not(feature = "tch"))]
        {
            let _ = tensors;
            false
        }
    }

    /// Queues the update of `param` with `grad` and the moments `(m, v)` (`None` on the first
    /// step) and returns the parameter and moments, which [`AdamWBatch::apply`] updates in place.
    ///
    /// # Panics
    /// Unless [`AdamWBatch::accepts`] holds for all of the tensors.
    pub fn defer<const D: usize>(
        &self,
        param: Tensor<D>,
        grad: Tensor<D>,
        moments: Option<(Tensor<D>, Tensor<D>)>,
        update: &AdamWUpdate,
    ) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
        #[cfg(feature = "tch")]
        {
            let mut queue = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            libtorch::defer_adamw(param, grad, moments, update, &mut queue)
        }
        #[cfg(not(feature = "tch"))]
        {
            let _ = (param, grad, moments, update);
            panic!("AdamWBatch::defer: no LibTorch in this build (check AdamWBatch::accepts first)")
        }
    }

    /// Applies the queued updates and empties the queue (nothing to do when it is empty). An
    /// error is libtorch's message.
    pub fn apply(&self) -> Result<(), String> {
        #[cfg(feature = "tch")]
        {
            let mut queue = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            libtorch::fused_adamw(&mut queue)
        }
        #[cfg(not(feature = "tch"))]
        {
            Ok(())
        }
    }
}

/// One AdamW update of `param` with `grad` and the moments `(m, v)` (`None` on the first step),
/// in place where the storage is not shared. On LibTorch the way PyTorch's single-tensor AdamW
/// runs; on Flex burn's own arithmetic in one parallel pass. Either way: at most one temporary
/// the size of the parameter instead of burn's ~6 (each a fresh, page-faulted
/// allocation; for e5's 96M-value embedding matrix that was most of the optimizer's time).
/// Returns the new parameter and moments.
///
/// # Panics
/// Unless [`adamw_in_place_applies`] holds for all of the tensors.
pub fn adamw_in_place<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    moments: Option<(Tensor<D>, Tensor<D>)>,
    update: &AdamWUpdate,
) -> (Tensor<D>, Tensor<D>, Tensor<D>) {
    if flex::adamw_applies(&[&param, &grad]) {
        // burn's arithmetic, fused: bit-identical to `burn::optim::AdamW` on Flex.
        return flex::adamw(param, grad, moments, update);
    }
    #[cfg(feature = "tch")]
    {
        libtorch::adamw(param, grad, moments, update)
    }
    #[cfg(not(feature = "tch"))]
    {
        let _ = (param, grad, moments, update);
        panic!("adamw_in_place: no in-place path for these tensors (check adamw_in_place_applies first)")
    }
}
