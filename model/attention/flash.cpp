// flash — FlashAttention-2 (Dao 2023): exact causal softmax attention, tiled. Kernels:
// cl_kernels/attention/flash.cl (--precision tf32: flash_tf32.cl, on tensor cores); host
// side, shared with gqa and sliding_window: flash_core.hpp. Parameters exactly baseline's (qkvw, qkvb, attprojw, attprojb).
#include "model/attention/flash_core.hpp"

namespace attnscope {

namespace {

class FlashAttention final : public TiledExactAttention {
 public:
  using TiledExactAttention::TiledExactAttention;

  VariantInfo info() const override {
    return {"flash",
            "FlashAttention-2: a work-group per query block loops over K/V tiles in local "
            "memory with online softmax and keeps only O and the log-sum-exp; backward "
            "recomputes P per tile (dK/dV by key blocks, dQ by query blocks); tiles above "
            "the causal diagonal are skipped",
            "O(T²·d) time, O(T·d) memory",
            "Dao 2023, FlashAttention-2: Faster Attention with Better Parallelism and Work "
            "Partitioning (arXiv:2307.08691)"};
  }

 protected:
  std::string family() const override { return "flash"; }
};

}  // namespace

std::unique_ptr<AttentionVariant> make_flash(const AttentionOptions& options) {
  return std::make_unique<FlashAttention>(options);
}

}  // namespace attnscope
