// The attention-variant interface. A variant is the whole attention block of a GPT-2
// layer: its own projections (from the layernormed input x, (B,T,C)) and its core, up to
// and including the output projection y = concat_h(O_h)·W_oᵀ + b_o. What each variant
// computes, exactly: docs/VARIANTS.md; how a variant plugs in: docs/DESIGN.md.
//
// Adding a variant: one cl_kernels/attention/<name>.cl (forward and backward kernels),
// one class implementing this interface, declaring its options in info()
// (model/attention/<name>.cpp), one registry line (model/registry.cpp), one test
// (tests/; the generic variant tests pick it up from the registry) and its section of
// docs/VARIANTS.md. README, "Adding a variant", walks through it.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "host/runtime/runtime.hpp"
#include "model/ops.hpp"

namespace attnscope {

struct AttentionDims {
  int B = 1, T = 1, C = 64, H = 4;
  int head_size() const { return C / H; }
};

// Option values by name as given (command line, tests), e.g. {"window", 128}. Each
// variant reads only the options it declares (VariantInfo::options), through
// AttentionVariant::option(), which falls back to the declared default.
struct AttentionOptions {
  std::map<std::string, int> values;
  uint64_t seed = 1337;  // the run's seed: lsh draws its rotations from (seed, step)
};

// One option a variant declares next to its code. The command line (--<name> with '_'
// spelled '-'), `attnscope variants`, the check dump, the run descriptions and the
// checkpoints all take it from here.
struct VariantOption {
  VariantOption(std::string name, int default_value, std::string help,
                std::string default_text = "", int minimum = 1, bool shapes_parameters = false)
      : name(std::move(name)), default_value(default_value), help(std::move(help)),
        default_text(std::move(default_text)), minimum(minimum),
        shapes_parameters(shapes_parameters) {}

  std::string name;          // "kv_heads": --kv-heads, options.values["kv_heads"]
  int default_value;         // 0: resolve() derives it from the dims, as default_text says
  std::string help;          // "K/V heads"
  std::string default_text;  // the derived default in words ("n_head/4"); empty: the value
  int minimum;               // smaller values are a usage error when parsing
  bool shapes_parameters;    // changes parameters(): recorded in checkpoints

  std::string flag() const;          // "--kv-heads"
  std::string default_label() const;  // "n_head/4", or the value: "256"
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

// One device buffer a variant allocates for given dims: per layer (what forward keeps for
// backward) or once, shared by the layers (scratch). The memory plan
// (model/memory_plan.hpp) sums them before anything is allocated.
struct DeviceBufferSpec {
  std::string label;
  size_t bytes = 0;
  bool per_layer = true;
};
inline DeviceBufferSpec layer_floats(std::string label, size_t floats) {
  return {std::move(label), floats * sizeof(float), true};
}
inline DeviceBufferSpec shared_floats(std::string label, size_t floats) {
  return {std::move(label), floats * sizeof(float), false};
}

struct VariantInfo {
  std::string name;
  std::string summary;     // one line: what it computes
  std::string complexity;  // e.g. "O(T²·d)"
  std::string paper;       // citation
  std::vector<VariantOption> options = {};
};

// Device activations one layer keeps from forward for backward (and its scratch).
class AttentionActivations {
 public:
  virtual ~AttentionActivations() = default;
};

// Which step this is (LSH draws its rotations from (seed, step); 0 for a validation
// forward pass) and which layer of the model calls (LSH's bucket dump names its files by it).
struct StepContext {
  int64_t step = 0;
  int layer = 0;
};

// What one layer's device forward and backward work on: the dims, the step, the layer's
// parameters (in parameters() order), its input x (B,T,C), and the activations that
// allocate() made for it, where forward keeps what backward needs.
struct DeviceArgs {
  Ops& ops;
  const AttentionDims& dims;
  const StepContext& step;
  const std::vector<cl::Buffer>& params;
  const cl::Buffer& x;
  AttentionActivations& acts;
};

// What backward adds: the gradient dout (B,T,C) of the block's output; it overwrites dx
// (B,T,C) and accumulates (+=) the parameters' gradients into grads.
struct DeviceGrads {
  const cl::Buffer& dout;
  const cl::Buffer& dx;
  const std::vector<cl::Buffer>& grads;
};

// The same for the CPU reference, on host arrays: params in parameters() order, x (B,T,C).
struct ReferenceArgs {
  const AttentionDims& dims;
  const StepContext& step;
  const std::vector<const float*>& params;
  const float* x;
};
// dout (B,T,C) in; dx overwritten; dparams accumulated (+=).
struct ReferenceGrads {
  const float* dout;
  float* dx;
  const std::vector<float*>& dparams;
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
  // Checks the options against the dims and derives the defaults that depend on them
  // (set_derived()); throws UsageError naming the option. Called before anything else
  // with these dims, and again whenever the dims change.
  virtual void resolve(const AttentionDims& dims) { (void)dims; }
  const AttentionOptions& options() const { return options_; }
  // The value of one of this variant's declared options: as given; for an option whose
  // declared default is 0 and that was given as 0 or not at all, what resolve() derived
  // (0 before that); otherwise the declared default. Throws Error for an undeclared name.
  int option(const std::string& name) const;
  // The declared options with their values, e.g. "hashes=2 buckets=16 chunk=64".
  std::string describe_options() const;
  // The values of the options that shape parameters() (gqa's kv_heads, mla's latent_dim):
  // a checkpoint records them and is refused by a model whose options differ. Options that
  // change only the computation (window, chunk, hashes) are left out, so one checkpoint
  // serves every setting of them.
  std::vector<int> parameter_options() const;

  // Parameter tensors of one layer, in checkpoint order.
  virtual std::vector<TensorSpec> parameters(const AttentionDims& dims) const = 0;
  virtual AttentionCost cost(const AttentionDims& dims) const = 0;

  // ---- device ----
  // Every buffer allocate() makes for these dims, and those forward grows to (after
  // resolve(dims)); a test holds the sum equal to what allocate() tracks.
  virtual std::vector<DeviceBufferSpec> device_buffers(const AttentionDims& dims) const = 0;
  // Builds the variant's programs (once per process through the runtime's cache) and
  // allocates one layer's activations for these dims.
  virtual std::unique_ptr<AttentionActivations> allocate(Ops& ops, const AttentionDims& dims) = 0;
  // out (B,T,C) = attention block of args.x.
  virtual void forward(const DeviceArgs& args, const cl::Buffer& out) = 0;
  // Uses what forward saved in args.acts for the same x and step.
  virtual void backward(const DeviceArgs& args, const DeviceGrads& grads) = 0;
  // The arithmetic of the variant's own attention kernels as allocate() chose them for the
  // device: "fp32", or which of them run on tensor cores (the GEMMs it calls follow the
  // run's precision), and for the exact tiled family whether dQ is added with float atomics
  // (Ops' AttentionBackward). bench records it per run in the manifest; train prints it.
  virtual std::string attention_kernels() const { return "fp32"; }
  // For variants whose fp32 backward comes in two forms (Ops' AttentionBackward: the exact
  // tiled family), which one allocate() built: "split" or "fused"; empty for the others.
  // summary.csv's attention_backward column.
  virtual std::string attention_backward() const { return ""; }

  // ---- CPU reference (plain C++, double accumulation) ----
  virtual void reference_forward(const ReferenceArgs& args, float* out) const = 0;
  virtual void reference_backward(const ReferenceArgs& args, const ReferenceGrads& grads) const = 0;

  // Step-dependent constants the variant draws for itself (none by default), for the
  // dump of `attnscope check --dump`. Must match what forward and the reference use.
  virtual std::vector<NamedTensor> debug_tensors(const AttentionDims& dims,
                                                 const StepContext& step) const {
    (void)dims;
    (void)step;
    return {};
  }

 protected:
  // For resolve(): the derived default of an option declared with default 0.
  void set_derived(const std::string& name, int value) { derived_[name] = value; }

 private:
  const AttentionOptions options_;
  std::map<std::string, int> derived_;
};

// Grows a scratch buffer to at least `floats` floats (contents not kept). Variants share
// their transient buffers across layers, sized for the largest dims allocate() has seen.
void ensure_floats(Runtime& rt, DeviceBuffer& buffer, size_t floats, const std::string& label);

}  // namespace attnscope
