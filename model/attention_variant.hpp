// The attention-variant interface. A variant is the whole attention block of a GPT-2
// layer: its own projections (from the layernormed input x, (B,T,C)) and its core, up to
// and including the output projection y = concat_h(O_h)·W_oᵀ + b_o. Exact definitions of
// what each variant computes: ../shared/VARIANTS.md (mirrored in docs/VARIANTS.md).
//
// Adding a variant: one cl_kernels/attention/<name>.cl (forward and backward kernels),
// one class implementing this interface (model/attention/<name>.cpp), one registry line
// (model/registry.cpp), one test (tests/ — the generic variant tests pick it up from the
// registry).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "host/runtime.hpp"
#include "model/ops.hpp"

namespace attnscope {

struct AttentionDims {
  int B = 1, T = 1, C = 64, H = 4;
  int head_size() const { return C / H; }
};

// Options of all variants (each reads its own). 0 means "the variant's default", which
// resolve() fills in from the dims (DESIGN.md's table).
struct AttentionOptions {
  int kv_heads = 0;    // gqa: G; default H/4 (at least 1)
  int latent_dim = 0;  // mla: d_c; default 4·head_size
  int chunk = 64;      // linear: chunk length; lsh: c (keys per chunk)
  int window = 256;    // sliding_window: w
  int hashes = 2;      // lsh: hash rounds
  int buckets = 0;     // lsh: n_b (even); default max(2, T/64) rounded to even
  uint64_t seed = 1337;  // lsh: rotations are drawn from (seed, step)
};

enum class Init { kNormal, kResidualProjection, kZero, kOne };

// One parameter tensor of one layer. Init: kNormal = N(0, 0.02); kResidualProjection =
// N(0, 0.02/√(2L)) (GPT-2's scaling of projections into the residual stream).
struct TensorSpec {
  std::string name;
  std::vector<size_t> shape;
  Init init = Init::kNormal;
  bool weight_decay = true;  // AdamW decays matrices only
  size_t count() const {
    size_t n = 1;
    for (size_t s : shape) n *= s;
    return n;
  }
};

// Analytic cost of one layer's attention block (projections included) for one step.
// FLOPs count 2 per multiply-add of matrix-shaped work (VARIANTS.md, "Cost accounting");
// backward of a product counts twice its forward.
struct AttentionCost {
  double model_flops_forward = 0;     // what the definition needs
  double model_flops_backward = 0;
  double executed_flops_forward = 0;  // what the kernels compute
  double executed_flops_backward = 0;
  double saved_bytes = 0;             // activations kept from forward for backward
};

struct VariantInfo {
  std::string name;
  std::string summary;     // one line: what it computes
  std::string complexity;  // e.g. "O(T²·d)"
  std::string options;     // e.g. "--window (256)"
  std::string paper;       // citation
};

// Device activations one layer keeps from forward for backward (and its scratch).
class AttentionActivations {
 public:
  virtual ~AttentionActivations() = default;
};

// Which step this is: LSH draws its rotations from (seed, step).
struct StepContext {
  int64_t step = 0;
};

// A host tensor a variant exposes for debugging (`attnscope check --dump` writes it as
// <name>.npy beside the inputs), e.g. LSH's rotations and bucket ids, so a check case
// can be replayed in another framework. Integer data is stored as float (exact below 2²⁴).
struct NamedTensor {
  std::string name;
  std::vector<size_t> shape;
  std::vector<float> data;
};

class AttentionVariant {
 public:
  explicit AttentionVariant(const AttentionOptions& options) : options_(options) {}
  virtual ~AttentionVariant() = default;

  virtual VariantInfo info() const = 0;
  // Checks the options against the dims and fills in defaults; throws UsageError naming
  // the option. Called before anything else with these dims.
  virtual void resolve(const AttentionDims& dims) { (void)dims; }
  const AttentionOptions& options() const { return options_; }
  // Human-readable resolved options, e.g. "window=256".
  virtual std::string describe_options() const { return ""; }
  // The resolved options that shape parameters() (gqa's kv_heads, mla's latent_dim): a
  // checkpoint records them and is refused by a model whose options differ. Options that
  // change only the computation (window, chunk, hashes) are left out, so one checkpoint
  // serves every setting of them.
  virtual std::vector<int> parameter_options() const { return {}; }

  // Parameter tensors of one layer, in checkpoint order.
  virtual std::vector<TensorSpec> parameters(const AttentionDims& dims) const = 0;
  virtual AttentionCost cost(const AttentionDims& dims) const = 0;

  // ---- device ----
  // Builds the variant's programs (once per process through the runtime's cache) and
  // allocates one layer's activations for these dims.
  virtual std::unique_ptr<AttentionActivations> allocate(Ops& ops, const AttentionDims& dims) = 0;
  // out (B,T,C) = attention block of x (B,T,C). params in parameters() order.
  virtual void forward(Ops& ops, const AttentionDims& dims, const StepContext& step,
                       const std::vector<cl::Buffer>& params, const cl::Buffer& x,
                       const cl::Buffer& out, AttentionActivations& acts) = 0;
  // dx (B,T,C) overwritten; grads accumulated (+=). Uses what forward saved in acts for
  // the same x and step.
  virtual void backward(Ops& ops, const AttentionDims& dims, const StepContext& step,
                        const std::vector<cl::Buffer>& params, const std::vector<cl::Buffer>& grads,
                        const cl::Buffer& x, const cl::Buffer& dout, const cl::Buffer& dx,
                        AttentionActivations& acts) = 0;

  // ---- CPU reference (plain C++, double accumulation) ----
  virtual void reference_forward(const AttentionDims& dims, const StepContext& step,
                                 const std::vector<const float*>& params, const float* x,
                                 float* out) const = 0;
  // dx overwritten; dparams accumulated (+=).
  virtual void reference_backward(const AttentionDims& dims, const StepContext& step,
                                  const std::vector<const float*>& params, const float* x,
                                  const float* dout, float* dx,
                                  const std::vector<float*>& dparams) const = 0;

  // Step-dependent constants the variant draws for itself (none by default), for the
  // dump of `attnscope check --dump`. Must match what forward and the reference use.
  virtual std::vector<NamedTensor> debug_tensors(const AttentionDims& dims,
                                                 const StepContext& step) const {
    (void)dims;
    (void)step;
    return {};
  }

 protected:
  AttentionOptions options_;
};

}  // namespace attnscope
