#include "model/parameters.hpp"

#include <algorithm>
#include <cmath>

#include "host/runtime/error.hpp"

namespace attnscope {
namespace {

// A fixed string hash (std::hash differs between standard libraries).
uint32_t fnv1a(const std::string& s) {
  uint32_t h = 2166136261u;
  for (unsigned char c : s) h = (h ^ c) * 16777619u;
  return h;
}

}  // namespace

ParameterLayout::ParameterLayout(const ModelConfig& c, const std::vector<TensorSpec>& attention,
                                 size_t align_floats)
    : align_(align_floats < 1 ? 1 : align_floats) {
  const size_t L = c.n_layer, C = c.n_embd;
  add("wte", 1, size_t(c.padded_vocab_size) * C, Init::kNormal, true);
  add("wpe", 1, size_t(c.max_seq_len) * C, Init::kNormal, true);
  add("ln1w", L, C, Init::kOne, false);
  add("ln1b", L, C, Init::kZero, false);
  attention_begin_ = groups_.size();
  for (const auto& spec : attention) add(spec.name, L, spec.count(), spec.init, spec.weight_decay, true);
  attention_count_ = attention.size();
  add("ln2w", L, C, Init::kOne, false);
  add("ln2b", L, C, Init::kZero, false);
  add("fcw", L, 4 * C * C, Init::kNormal, true);
  add("fcb", L, 4 * C, Init::kZero, false);
  add("fcprojw", L, C * 4 * C, Init::kResidualProjection, true);
  add("fcprojb", L, C, Init::kZero, false);
  add("lnfw", 1, C, Init::kOne, false);
  add("lnfb", 1, C, Init::kZero, false);
}

void ParameterLayout::add(const std::string& name, size_t layers, size_t floats, Init init,
                          bool decay, bool attention) {
  ParamGroup g;
  g.name = name;
  g.layer_count = layers;
  g.floats_per_layer = floats;
  g.init = init;
  g.weight_decay = decay;
  g.attention = attention;
  g.packed_offset = packed_floats_;
  g.device_offset = device_floats_;
  g.device_stride = (floats + align_ - 1) / align_ * align_;
  packed_floats_ += g.packed_floats();
  device_floats_ += g.device_floats();
  groups_.push_back(g);
}

const ParamGroup& ParameterLayout::group(const std::string& name) const {
  for (const auto& g : groups_)
    if (g.name == name) return g;
  throw Error("no parameter tensor named " + name);
}

std::vector<float> ParameterLayout::to_device_image(const std::vector<float>& packed) const {
  std::vector<float> image(device_floats_, 0.f);
  for (const auto& g : groups_)
    for (size_t l = 0; l < g.layer_count; ++l)
      std::copy_n(packed.begin() + g.packed_offset + l * g.floats_per_layer, g.floats_per_layer,
                  image.begin() + g.device_offset + l * g.device_stride);
  return image;
}

std::vector<float> ParameterLayout::to_packed(const std::vector<float>& image) const {
  std::vector<float> packed(packed_floats_);
  for (const auto& g : groups_)
    for (size_t l = 0; l < g.layer_count; ++l)
      std::copy_n(image.begin() + g.device_offset + l * g.device_stride, g.floats_per_layer,
                  packed.begin() + g.packed_offset + l * g.floats_per_layer);
  return packed;
}

std::vector<float> init_parameters(const ParameterLayout& layout, const ModelConfig& config,
                                   uint64_t seed) {
  std::vector<float> packed(layout.packed_floats());
  const float residual_std = 0.02f / std::sqrt(2.0f * float(config.n_layer));
  for (const auto& g : layout.groups()) {
    float* p = packed.data() + g.packed_offset;
    const size_t n = g.packed_floats();
    switch (g.init) {
      case Init::kZero: std::fill_n(p, n, 0.f); break;
      case Init::kOne: std::fill_n(p, n, 1.f); break;
      case Init::kNormal:
      case Init::kResidualProjection: {
        // One stream per tensor name, so a tensor's values do not depend on which other
        // tensors (e.g. another variant's attention weights) come before it.
        std::seed_seq seq{uint32_t(seed), uint32_t(seed >> 32),
                          fnv1a(g.name)};
        std::mt19937_64 rng(seq);
        std::normal_distribution<float> normal(0.f, g.init == Init::kNormal ? 0.02f : residual_std);
        for (size_t i = 0; i < n; ++i) p[i] = normal(rng);
        break;
      }
    }
  }
  const ParamGroup& wte = layout.group("wte");
  std::fill(packed.begin() + wte.packed_offset + size_t(config.vocab_size) * config.n_embd,
            packed.begin() + wte.packed_offset + wte.packed_floats(), 0.f);
  return packed;
}

std::string describe_non_finite(const ParameterLayout& layout, const std::vector<float>& packed) {
  for (const ParamGroup& g : layout.groups())
    for (size_t layer = 0; layer < g.layer_count; ++layer) {
      const float* begin = packed.data() + g.packed_offset + layer * g.floats_per_layer;
      const float* end = begin + g.floats_per_layer;
      const float* first = std::find_if(begin, end, [](float v) { return !std::isfinite(v); });
      if (first == end) continue;
      const auto count = std::count_if(first, end, [](float v) { return !std::isfinite(v); });
      const std::string tensor =
          g.layer_count > 1 ? "layer " + std::to_string(layer) + "'s " + g.name : g.name;
      return tensor + " (" + std::to_string(count) + " of " + std::to_string(g.floats_per_layer) +
             " values are not finite; the first, " + std::to_string(*first) + ", is element " +
             std::to_string(first - begin) + ")";
    }
  return "";
}

}  // namespace attnscope
