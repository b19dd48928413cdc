// The flat parameter layout. Tensors are grouped by kind across layers in llm.c's order
// (wte, wpe, ln1w, ln1b, <attention tensors>, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb,
// lnfw, lnfb); for baseline the attention tensors are llm.c's qkvw, qkvb, attprojw,
// attprojb, so a packed host vector is exactly llm.c's parameter file body.
//
// On the device the same order is kept, but each (tensor, layer) slice starts on the
// device's sub-buffer alignment, so a kernel can take it as its own cl::Buffer. Padding is
// zero in parameters, gradients and moments, so whole-buffer reductions (gradient norm)
// and per-group AdamW launches are unaffected by it.
#pragma once
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "model/attention_variant.hpp"
#include "model/config.hpp"

namespace attnscope {

struct ParamGroup {
  std::string name;
  size_t layer_count = 1;       // L for per-layer tensors, 1 for wte/wpe/lnf
  size_t floats_per_layer = 0;  // unpadded
  Init init = Init::kNormal;
  bool weight_decay = true;
  bool attention = false;       // belongs to the attention variant
  size_t packed_offset = 0;     // in the packed (llm.c) vector
  size_t device_offset = 0;     // in the padded device buffer, floats
  size_t device_stride = 0;     // padded floats per layer
  size_t packed_floats() const { return layer_count * floats_per_layer; }
  size_t device_floats() const { return layer_count * device_stride; }
};

class ParameterLayout {
 public:
  // align_floats: the device's sub-buffer alignment in floats (1 for host-only use).
  ParameterLayout(const ModelConfig& config, const std::vector<TensorSpec>& attention_specs,
                  size_t align_floats);

  const std::vector<ParamGroup>& groups() const { return groups_; }
  const ParamGroup& group(const std::string& name) const;
  size_t packed_floats() const { return packed_floats_; }  // number of parameters
  size_t device_floats() const { return device_floats_; }
  size_t attention_group_begin() const { return attention_begin_; }
  size_t attention_group_count() const { return attention_count_; }

  // packed (llm.c order, unpadded) ↔ padded device image
  std::vector<float> to_device_image(const std::vector<float>& packed) const;
  std::vector<float> to_packed(const std::vector<float>& device_image) const;

 private:
  void add(const std::string& name, size_t layers, size_t floats, Init init, bool decay,
           bool attention = false);
  std::vector<ParamGroup> groups_;
  size_t align_;
  size_t packed_floats_ = 0;
  size_t device_floats_ = 0;
  size_t attention_begin_ = 0;
  size_t attention_count_ = 0;
};

// GPT-2 initialisation of a packed vector, deterministic in seed: N(0, 0.02) for
// matrices and embeddings, residual projections scaled by 1/√(2L), biases 0, layernorm
// weights 1. Each tensor is drawn from its own stream (seed, tensor name), so variants
// share every tensor they have in common (same name and shape) — fair comparisons start
// from the same weights. The padded vocabulary rows of wte are zero (as in
// llm.c's exported checkpoints): no token ever selects them.
std::vector<float> init_parameters(const ParameterLayout& layout, const ModelConfig& config,
                                   uint64_t seed);

// The first tensor of packed (llm.c order) that holds a value which is not finite, as
// "layer 1's qkvw (3 of 12288 values are not finite; the first, nan, is element 0)";
// "" when every value is finite.
std::string describe_non_finite(const ParameterLayout& layout, const std::vector<float>& packed);

}  // namespace attnscope
