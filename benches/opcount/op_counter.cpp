// Operator counter for one LibTorch process, loaded with LD_PRELOAD into PyTorch (python) or into
// hybrid-ir's `speed` (tch-cpu / tch-cuda), so that both engines are counted by this same code.
//
// It registers a global RecordFunction callback (PyTorch's "fleet-wide operator profiling" hook):
// every operator that goes through the dispatcher reports its start and end, on every thread.
// The program marks phases ("forward", "backward", "optimizer") through the C functions below
// (found with dlsym, so neither engine links this library); outside a phase nothing is counted.
//
// Per phase it keeps tables of operator name -> calls:
//   - "all": every dispatched operator, nested ones included (aten::linear and the aten::addmm it
//     calls are two entries);
//   - "launching": operators that run a kernel: not in METADATA_OPS (views, reshapes, allocation,
//     ...), not a host read, not a CompositeImplicitAutograd operator (such as aten::linear or
//     aten::matmul: a decomposition with no kernel, whose parts count instead), and with no
//     nested operator that is counted (aten::relu calls aten::clamp_min, aten::ones_like calls
//     aten::fill_: one kernel, counted once, at the innermost operator);
//   - "host_reads": aten::item, aten::_local_scalar_dense (no kernel; a device sync on a GPU);
//   - "other": records that are not dispatcher operators (the autograd engine's node frames).
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/record_function.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace {

// Operators that only change metadata (shape, strides, aliasing) or allocate without writing:
// no kernel runs. Composites that copy only when they must (to, contiguous, type_as) are listed
// too: when they copy, the copy is their nested aten::copy_ / aten::clone and counts there.
const char* const METADATA_OPS[] = {
    "aten::view", "aten::_unsafe_view", "aten::view_as", "aten::reshape", "aten::_reshape_alias",
    "aten::reshape_as", "aten::as_strided", "aten::t", "aten::transpose", "aten::permute",
    "aten::expand", "aten::expand_as", "aten::unsqueeze", "aten::squeeze", "aten::select",
    "aten::slice", "aten::narrow", "aten::diagonal", "aten::detach", "aten::detach_", "aten::alias",
    "aten::lift_fresh", "aten::unbind", "aten::split", "aten::split_with_sizes", "aten::chunk",
    "aten::unflatten", "aten::flatten", "aten::numpy_T", "aten::mT", "aten::empty",
    "aten::empty_like", "aten::empty_strided", "aten::new_empty", "aten::new_empty_strided",
    "aten::resize_", "aten::set_", "aten::to", "aten::contiguous", "aten::type_as",
    "aten::requires_grad_", "aten::result_type", "aten::size", "aten::stride", "aten::sym_size",
    "aten::sym_stride", "aten::sym_numel", "aten::dim", "aten::is_same_size", "aten::is_nonzero",
    "aten::_has_compatible_shallow_copy_type", "aten::retain_grad", "aten::output_nr",
    "aten::_version", "aten::is_leaf", "aten::resolve_conj", "aten::resolve_neg", "aten::conj",
    "aten::_conj", "aten::_neg_view",
};

// Reads of a device value by the host: no kernel, but a synchronisation on a GPU.
const char* const HOST_READS[] = {"aten::item", "aten::_local_scalar_dense"};

bool listed(const char* name, const char* const* list, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (std::strcmp(name, list[i]) == 0) return true;
  }
  return false;
}

struct Tables {
  std::map<std::string, uint64_t> all, launching, host_reads, other;
};

std::mutex mutex;
std::vector<std::string> phase_names;   // index + 1 is a phase id; 0 means "not counting"
std::vector<Tables> tables;             // per phase id - 1
std::atomic<int> phase{0};
std::map<std::string, bool> composite;  // operator name -> CompositeImplicitAutograd (cached)

// Whether the operator is a decomposition without a kernel of its own. Called under `mutex`.
bool is_composite(const c10::OperatorName& op, const std::string& name) {
  auto found = composite.find(name);
  if (found != composite.end()) return found->second;
  auto handle = c10::Dispatcher::singleton().findOp(op);
  const bool yes = handle && handle->hasKernelForDispatchKey(c10::DispatchKey::CompositeImplicitAutograd);
  composite.emplace(name, yes);
  return yes;
}

// Per open operator of this thread: whether a nested operator was counted as launching.
thread_local std::vector<bool> work_below;

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction&) {
  work_below.push_back(false);
  return nullptr;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext*) {
  if (work_below.empty()) return;  // started before the callback was registered
  const bool below = work_below.back();
  work_below.pop_back();
  const auto op = fn.operator_name();
  const std::string name = fn.name();
  const int id = phase.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mutex);
  const bool host_read = op && listed(name.c_str(), HOST_READS, sizeof(HOST_READS) / sizeof(*HOST_READS));
  const bool launches = op && !below && !host_read &&
                        !listed(name.c_str(), METADATA_OPS, sizeof(METADATA_OPS) / sizeof(*METADATA_OPS)) &&
                        !is_composite(*op, name);
  if (!work_below.empty() && (launches || below)) work_below.back() = true;
  if (id == 0) return;
  Tables& t = tables[id - 1];
  if (!op) {
    t.other[name] += 1;
    return;
  }
  t.all[name] += 1;
  if (launches) t.launching[name] += 1;
  if (host_read) t.host_reads[name] += 1;
}

// Registered when the library is loaded, before main() of the program it is preloaded into.
struct Register {
  Register() {
    at::addGlobalCallback(at::RecordFunctionCallback(&on_start, &on_end).needsInputs(false).scopes({at::RecordScope::FUNCTION}));
  }
} registered;

void write_table(FILE* f, const std::map<std::string, uint64_t>& table) {
  std::fputc('{', f);
  bool first = true;
  for (const auto& [name, calls] : table) {
    std::fprintf(f, "%s\"", first ? "" : ", ");
    for (char c : name) {
      if (c == '"' || c == '\\') std::fputc('\\', f);
      std::fputc(c, f);
    }
    std::fprintf(f, "\": %llu", static_cast<unsigned long long>(calls));
    first = false;
  }
  std::fputc('}', f);
}

void write_list(FILE* f, const char* const* list, size_t n) {
  std::fputc('[', f);
  for (size_t i = 0; i < n; ++i) std::fprintf(f, "%s\"%s\"", i ? ", " : "", list[i]);
  std::fputc(']', f);
}

}  // namespace

extern "C" {

// Counts what follows under `name` (a new or earlier phase); NULL or "" stops counting.
void hybrid_ir_opcount_phase(const char* name) {
  if (name == nullptr || *name == '\0') {
    phase.store(0);
    return;
  }
  std::lock_guard<std::mutex> lock(mutex);
  for (size_t i = 0; i < phase_names.size(); ++i) {
    if (phase_names[i] == name) {
      phase.store(static_cast<int>(i) + 1);
      return;
    }
  }
  phase_names.emplace_back(name);
  tables.emplace_back();
  phase.store(static_cast<int>(phase_names.size()));
}

// Writes the tables as JSON to `path`; 0 on success, -1 if the file cannot be written.
int hybrid_ir_opcount_write(const char* path) {
  std::lock_guard<std::mutex> lock(mutex);
  FILE* f = std::fopen(path, "w");
  if (f == nullptr) return -1;
  std::fprintf(f, "{\"metadata_ops\": ");
  write_list(f, METADATA_OPS, sizeof(METADATA_OPS) / sizeof(*METADATA_OPS));
  std::fprintf(f, ", \"host_read_ops\": ");
  write_list(f, HOST_READS, sizeof(HOST_READS) / sizeof(*HOST_READS));
  std::fprintf(f, ", \"phases\": {");
  for (size_t i = 0; i < phase_names.size(); ++i) {
    std::fprintf(f, "%s\"%s\": {\"all\": ", i ? ", " : "", phase_names[i].c_str());
    write_table(f, tables[i].all);
    std::fprintf(f, ", \"launching\": ");
    write_table(f, tables[i].launching);
    std::fprintf(f, ", \"host_reads\": ");
    write_table(f, tables[i].host_reads);
    std::fprintf(f, ", \"other\": ");
    write_table(f, tables[i].other);
    std::fputc('}', f);
  }
  std::fprintf(f, "}}\n");
  return std::fclose(f) == 0 ? 0 : -1;
}

}  // extern "C"
