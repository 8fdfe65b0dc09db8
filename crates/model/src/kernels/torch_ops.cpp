// ATen operators that tch 0.22's generated bindings leave out (they take or return tensor
// lists), called by `libtorch.rs` with tch's tensor handles (`at::Tensor*`, tch's C_tensor).
// Compiled by build.rs against the libtorch torch-sys links, with the same ABI flags.
#include <ATen/ATen.h>
#include <ATen/ExpandUtils.h>
#include <c10/core/GradMode.h>
#include <c10/core/StreamGuard.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>

#include <cstdio>
#include <queue>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using torch::autograd::Edge;
using torch::autograd::Node;
using torch::autograd::variable_list;

std::vector<at::Tensor> list(at::Tensor* const* tensors, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) out.push_back(*tensors[i]);
  return out;
}

// Adds `grad` into `slot` as the autograd engine's InputBuffer does: in place when this pass
// holds the only reference to a dense buffer, else out of place (float addition commutes, so
// the bits do not depend on which operand is kept).
void accumulate(at::Tensor& slot, at::Tensor&& grad) {
  if (!slot.defined()) {
    slot = std::move(grad);
  } else if (slot.use_count() == 1 && slot.storage().use_count() == 1 && slot.is_non_overlapping_and_dense() &&
             !slot._is_zerotensor() && slot.dtype() == grad.dtype()) {
    slot.add_(grad);
  } else {
    slot = slot + grad;
  }
}

// A node's output gradient made to fit the input it flows into, as the engine's
// validate_outputs does: summed over broadcast dimensions (addmm's bias gradient arrives as a
// matrix) and cast to the input's dtype.
at::Tensor fit(const Edge& edge, at::Tensor grad) {
  const auto& meta = edge.function->input_metadata(edge.input_nr);
  // Only `shape_as_dim_vector` and `dtype` of the metadata: the libtorch versions this is built
  // against (2.9 here, the GPU machines' 2.11) agree on those. sum_to checks expandability.
  if (!grad.sym_sizes().equals(meta.shape_as_dim_vector())) {
    std::string shape = c10::str(grad.sizes());
    try {
      grad = at::sum_to(std::move(grad), meta.shape_as_dim_vector());
    } catch (const std::exception& e) {
      throw std::runtime_error("a gradient of shape " + shape + " does not fit input " +
                               std::to_string(edge.input_nr) + " of " + edge.function->name() + ": " + e.what());
    }
  }
  if (grad.dtype() != meta.dtype()) grad = grad.to(c10::typeMetaToScalarType(meta.dtype()));
  return grad;
}

// Whether `fn` reaches one of the leaves (the engine's exec_info: other branches are not run).
bool reaches_leaf(Node* fn, const std::unordered_map<const Node*, size_t>& leaf_of,
                  std::unordered_map<Node*, bool>& memo) {
  if (auto it = memo.find(fn); it != memo.end()) return it->second;
  bool reaches = false;
  for (const Edge& edge : fn->next_edges()) {
    if (!edge.is_valid()) continue;
    Node* next = edge.function.get();
    if (leaf_of.count(next) != 0 || reaches_leaf(next, leaf_of, memo)) reaches = true;
  }
  memo[fn] = reaches;
  return reaches;
}

// Ready nodes in the engine's order: the highest sequence number (the latest recorded) first.
struct LaterFirst {
  bool operator()(const Node* a, const Node* b) const { return a->sequence_nr() < b->sequence_nr(); }
};

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
// its recorded graph: what torch::autograd::grad({output}, inputs, {grad_output}) returns, run
// here on the calling thread. The engine hands a CUDA graph to its device thread and waits for
// it (two thread wake-ups per call), and a step makes one call per fused block: 218 for the
// 12-layer encoder run on queries and passages. Where host time sets a step's pace (small
// batches on a GPU) those hand-overs add up. A block's graph is a handful of nodes on one
// device and stream; they run in the engine's order (ready nodes by descending sequence
// number), with its accumulation and its shape and dtype fitting, so the gradients are the
// engine's bit for bit (tested in libtorch.rs). Each result is a new tensor handle (tch frees
// it), or null when the leaf is unused. The graph's saved tensors are released. Returns 0, or
// -1 with the exception's message in `error`.
int hybrid_ir_autograd_grad(at::Tensor* output, at::Tensor* grad_output, at::Tensor* const* inputs, size_t n,
                            at::Tensor** results, char* error, size_t error_len) {
  try {
    c10::AutoGradMode no_grad(false);  // backward formulas record nothing (create_graph=false)
    // Each leaf's AccumulateGrad node -> the leaf's index. The edges hold the nodes: a leaf keeps
    // only a weak reference to its node, which another lookup would otherwise find expired.
    std::vector<Edge> leaf_edges;
    std::unordered_map<const Node*, size_t> leaf_of;
    for (size_t i = 0; i < n; ++i) {
      leaf_edges.push_back(torch::autograd::impl::gradient_edge(*inputs[i]));
      if (leaf_edges.back().is_valid()) leaf_of.emplace(leaf_edges.back().function.get(), i);
    }
    std::vector<at::Tensor> grads(n);
    Edge root = torch::autograd::impl::gradient_edge(*output);
    if (!root.is_valid()) throw std::runtime_error("the block's output is not part of a recorded graph");
    if (auto leaf = leaf_of.find(root.function.get()); leaf != leaf_of.end()) {
      grads[leaf->second] = *grad_output;  // the output is one of the leaves
    } else {
      std::unordered_map<Node*, bool> reaches;
      if (!reaches_leaf(root.function.get(), leaf_of, reaches)) reaches.clear();
      auto runs = [&reaches](Node* fn) {
        auto it = reaches.find(fn);
        return it != reaches.end() && it->second;
      };
      // Incoming edges per node that will run, so each runs once all its gradients are in.
      std::unordered_map<Node*, size_t> pending;
      for (const auto& [fn, reached] : reaches) {
        if (!reached) continue;
        for (const Edge& edge : fn->next_edges()) {
          if (edge.is_valid() && runs(edge.function.get())) ++pending[edge.function.get()];
        }
      }
      std::unordered_map<Node*, variable_list> buffers;
      std::priority_queue<Node*, std::vector<Node*>, LaterFirst> ready;
      if (!reaches.empty()) {
        auto& first = buffers[root.function.get()];
        first.resize(root.function->num_inputs());
        first[root.input_nr] = *grad_output;
        ready.push(root.function.get());
      }
      while (!ready.empty()) {
        Node* fn = ready.top();
        ready.pop();
        variable_list in = std::move(buffers[fn]);
        buffers.erase(fn);
        c10::OptionalStreamGuard stream_guard{fn->stream()};
        fn->will_release_variables();
        variable_list out = (*fn)(std::move(in));
        fn->release_variables();
        const auto& edges = fn->next_edges();
        for (size_t j = 0; j < edges.size(); ++j) {
          const Edge& edge = edges[j];
          if (!edge.is_valid()) continue;
          Node* next = edge.function.get();
          auto leaf = leaf_of.find(next);
          if (leaf == leaf_of.end() && !runs(next)) continue;
          if (j < out.size() && out[j].defined()) {
            at::Tensor grad = fit(edge, std::move(out[j]));
            if (leaf != leaf_of.end()) {
              accumulate(grads[leaf->second], std::move(grad));
            } else {
              auto& buffer = buffers[next];
              if (buffer.empty()) buffer.resize(next->num_inputs());
              accumulate(buffer[edge.input_nr], std::move(grad));
            }
          }
          if (leaf == leaf_of.end() && --pending[next] == 0) {
            auto& buffer = buffers[next];
            if (buffer.empty()) buffer.resize(next->num_inputs());
            ready.push(next);
          }
        }
      }
    }
    for (size_t i = 0; i < n; ++i) results[i] = grads[i].defined() ? new at::Tensor(std::move(grads[i])) : nullptr;
    return 0;
  } catch (const std::exception& e) {
    std::snprintf(error, error_len, "%s", e.what());
    return -1;
  }
}

}  // extern "C"
