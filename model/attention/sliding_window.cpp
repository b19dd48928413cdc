// sliding_window — causal local attention (Longformer, Mistral): exact softmax over the band
// i − w < j ≤ i. Kernels: cl_kernels/attention/sliding_window.cl (flash.cl with the band
// compiled in; only tiles that intersect the band are visited; --precision tf32:
// sliding_window_tf32.cl, on tensor cores). Parameters exactly
// baseline's, so the same initial weights apply; with w ≥ T it computes baseline.
#include "host/runtime/error.hpp"
#include "model/attention/flash_core.hpp"

namespace attnscope {

namespace {

class SlidingWindowAttention final : public TiledExactAttention {
 public:
  using TiledExactAttention::TiledExactAttention;

  VariantInfo info() const override {
    return {"sliding_window",
            "causal local attention: token i attends to keys i-w < j <= i with exact "
            "softmax; FlashAttention-2 tiles that visit only the band",
            "O(T·w·d) time, O(T·d) memory",
            "Beltagy et al. 2020, Longformer: The Long-Document Transformer "
            "(arXiv:2004.05150); Jiang et al. 2023, Mistral 7B (arXiv:2310.06825)",
            {{"window", 256, "window w"}}};
  }

  void resolve(const AttentionDims& dims) override {
    if (option("window") < 1)
      throw UsageError("--window must be at least 1, got " + std::to_string(option("window")));
    TiledExactAttention::resolve(dims);
  }

 protected:
  std::string family() const override { return "sliding_window"; }
  int window(const AttentionDims&) const override { return option("window"); }
};

}  // namespace

std::unique_ptr<AttentionVariant> make_sliding_window(const AttentionOptions& options) {
  return std::make_unique<SlidingWindowAttention>(options);
}

}  // namespace attnscope
