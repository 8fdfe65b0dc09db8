// ATen operators that tch 0.22's generated bindings leave out (they take or return tensor
// lists), called by `libtorch.rs` with tch's tensor handles (`at::Tensor*`, tch's C_tensor).
// Compiled by build.rs against the libtorch torch-sys links, with the same ABI flags.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <cstdio>
#include <vector>

namespace {

std::vector<at::Tensor> list(at::Tensor* const* tensors, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(*tensors[i]);
  return out;
}

}  // namespace

extern "C" {

// One multi-tensor AdamW step over n parameters, in place (ATen's _fused_adamw_: PyTorch's
// AdamW(fused=True); decoupled decay p *= 1 - lr * wd, bias-corrected moments, step `step`).
// Returns 0, or -1 with the exception's message in `error`.
int hybrid_ir_fused_adamw(at::Tensor* const* params, at::Tensor* const* grads, at::Tensor* const* exp_avgs,
                          at::Tensor* const* exp_avg_sqs, size_t n, double step, double lr, double beta1, double beta2,
                          double weight_decay, double eps, char* error, size_t error_len) {
  try {
    if (n == 0) return 0;
    // The kernels read the step from a float tensor on the parameters' device; one serves all.
    at::Tensor step_tensor = at::full({}, step, params[0]->options().dtype(at::kFloat));
    std::vector<at::Tensor> steps(n, step_tensor);
    at::_fused_adamw_(list(params, n), list(grads, n), list(exp_avgs, n), list(exp_avg_sqs, n), {}, steps, lr, beta1,
                      beta2, weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/std::nullopt,
                      /*found_inf=*/std::nullopt);
    return 0;
  } catch (const std::exception& e) {
    std::snprintf(error, error_len, "%s", e.what());
    return -1;
  }
}

// The L2 norm of n tensors taken together (a global gradient norm): ATen's multi-tensor
// _foreach_norm (one launch per group of tensors on a GPU), then the norm of the norms, read
// back once. Returns 0, or -1 with the exception's message in `error`.
int hybrid_ir_global_norm(at::Tensor* const* tensors, size_t n, double* norm, char* error, size_t error_len) {
  try {
    if (n == 0) {
      *norm = 0.0;
      return 0;
    }
    auto norms = at::_foreach_norm(list(tensors, n), 2);
    *norm = at::linalg_vector_norm(at::stack(norms), 2).item<double>();
    return 0;
  } catch (const std::exception& e) {
    std::snprintf(error, error_len, "%s", e.what());
    return -1;
  }
}

// Gradients of `output` (with upstream gradient `grad_output`) with respect to the n leaves of
// its recorded graph: torch::autograd::grad, which tch binds only without `grad_outputs`. Each
// result is a new tensor handle (tch frees it), or null when the leaf is unused. The graph is
// released. Returns 0, or -1 with the exception's message in `error`.
int hybrid_ir_autograd_grad(at::Tensor* output, at::Tensor* grad_output, at::Tensor* const* inputs, size_t n,
                            at::Tensor** results, char* error, size_t error_len) {
  try {
    auto grads = torch::autograd::grad({*output}, list(inputs, n), {*grad_output}, /*retain_graph=*/false,
                                       /*create_graph=*/false, /*allow_unused=*/true);
    for (size_t i = 0; i < n; ++i) results[i] = grads[i].defined() ? new at::Tensor(std::move(grads[i])) : nullptr;
    return 0;
  } catch (const std::exception& e) {
    std::snprintf(error, error_len, "%s", e.what());
    return -1;
  }
}

}  // extern "C"
