// gqa — grouped-query attention (Ainslie et al. 2023), VARIANTS.md §gqa: W_q (C→C) and
// W_kv (C→2·G·d); query head h reads K/V head ⌊h·G/H⌋. Kernels:
// cl_kernels/attention/gqa.cl (flash.cl's tiled core; dK_g, dV_g summed over the group
// inside one work-group; --precision tf32: gqa_tf32.cl, on tensor cores). Host side shared
// with flash: flash_core.hpp; gqa replaces the fused projection by its two projections.
#include <algorithm>
#include <vector>

#include "host/runtime/error.hpp"
#include "model/attention/common_reference.hpp"
#include "model/attention/flash_core.hpp"
#include "model/reference/layers.hpp"

namespace attnscope {

namespace {

// Parameter order: qw, qb, kvw, kvb, attprojw, attprojb.
enum { kQw, kQb, kKvw, kKvb, kAttprojw, kAttprojb };

class GroupedQueryAttention final : public TiledExactAttention {
 public:
  using TiledExactAttention::TiledExactAttention;

  VariantInfo info() const override {
    return {"gqa",
            "grouped-query attention: G K/V heads (W_kv: C -> 2*G*d), each shared by H/G "
            "query heads; exact causal softmax in FlashAttention-2 tiles, dK/dV summed over "
            "the group inside a work-group",
            "O(T²·d) time, O(T·d) memory; K/V projection and cache G/H of MHA's",
            "Ainslie et al. 2023, GQA: Training Generalized Multi-Query Transformer Models "
            "from Multi-Head Checkpoints (arXiv:2305.13245)",
            {{"kv_heads", 0, "K/V heads", "n_head/4", 1, /*shapes_parameters=*/true}}};
  }

  // G: --kv-heads, or by default the largest divisor of H that is at most H/4 (at least 1).
  void resolve(const AttentionDims& dims) override {
    const int H = dims.H, G = option("kv_heads");
    if (G == 0) {
      kv_heads_ = std::max(1, H / 4);
      while (H % kv_heads_ != 0) --kv_heads_;
    } else if (G < 1 || G > H || H % G != 0) {
      throw UsageError("--kv-heads must divide n_head (" + std::to_string(H) + "), got " +
                       std::to_string(G));
    } else {
      kv_heads_ = G;
    }
    set_derived("kv_heads", kv_heads_);
    TiledExactAttention::resolve(dims);
  }

  void reference_forward(const ReferenceArgs& args, float* out) const override {
    const auto& [dims, step, params, x] = args;
    std::vector<float> q, kv, att;
    reference_core(dims, params, x, q, kv, att);
    reference::matmul_forward(out, att.data(), params[kAttprojw], params[kAttprojb],
                              dims.B * dims.T, dims.C, dims.C);
  }

  void reference_backward(const ReferenceArgs& args,
                          const ReferenceGrads& gradients) const override {
    const auto& [dims, step, params, x] = args;
    const auto& [dout, dx, dparams] = gradients;
    const int N = dims.B * dims.T, C = dims.C, KV = kv_width(dims);
    std::vector<float> q, kv, att;  // recomputed: the reference keeps no state
    reference_core(dims, params, x, q, kv, att);
    std::vector<float> datt(size_t(N) * C), dq(q.size(), 0.f), dkv(kv.size(), 0.f);
    reference::matmul_backward(datt.data(), dparams[kAttprojw], dparams[kAttprojb], dout,
                               att.data(), params[kAttprojw], N, C, C);
    reference::exact_attention_backward({dq.data(), C}, {dkv.data(), KV},
                                        {dkv.data() + KV / 2, KV}, {datt.data(), C},
                                        {q.data(), C}, {kv.data(), KV},
                                        {kv.data() + KV / 2, KV}, shape(dims));
    std::vector<float> dx_kv(size_t(N) * C);
    reference::matmul_backward(dx, dparams[kQw], dparams[kQb], dq.data(), x, params[kQw], N, C,
                               C);
    reference::matmul_backward(dx_kv.data(), dparams[kKvw], dparams[kKvb], dkv.data(), x,
                               params[kKvw], N, C, KV);
    reference::accumulate(dx, dx_kv.data(), dx_kv.size());
  }

 protected:
  std::string family() const override { return "gqa"; }
  int kv_heads(const AttentionDims&) const override { return kv_heads_; }

  std::vector<TensorSpec> projection_parameters(const AttentionDims& dims) const override {
    const size_t C = dims.C, KV = kv_width(dims);
    return {{"qw", {C, C}, Init::kNormal, true},
            {"qb", {C}, Init::kZero, false},
            {"kvw", {KV, C}, Init::kNormal, true},
            {"kvb", {KV}, Init::kZero, false}};
  }
  size_t q_floats(const AttentionDims& d) const override { return size_t(d.B) * d.T * d.C; }
  size_t kv_floats(const AttentionDims& d) const override {
    return size_t(d.B) * d.T * kv_width(d);
  }
  // Q (B,T,C); K|V (B,T,2·G·d): K head g at column g·d, V head g at G·d + g·d.
  QkvLayout layout(const AttentionDims& d) const override {
    return {d.C, 0, kv_width(d), 0, kv_width(d) / 2};
  }

  void project_forward(Ops& ops, const AttentionDims& d, const std::vector<cl::Buffer>& params,
                       const cl::Buffer& x, const cl::Buffer& q, const cl::Buffer& kv) override {
    const int N = d.B * d.T;
    ops.matmul_forward(q, x, params[kQw], &params[kQb], N, d.C, d.C);
    ops.matmul_forward(kv, x, params[kKvw], &params[kKvb], N, d.C, kv_width(d));
  }

  void project_backward(Ops& ops, const AttentionDims& d, const std::vector<cl::Buffer>& params,
                        const std::vector<cl::Buffer>& grads, const cl::Buffer& x,
                        const cl::Buffer& dq, const cl::Buffer& dkv, const cl::Buffer& dx,
                        const cl::Buffer& scratch) override {
    const int N = d.B * d.T;
    ops.matmul_backward(dx, grads[kQw], &grads[kQb], dq, x, params[kQw], N, d.C, d.C);
    ops.matmul_backward(scratch, grads[kKvw], &grads[kKvb], dkv, x, params[kKvw], N, d.C,
                        kv_width(d));
    ops.accumulate(dx, scratch, size_t(N) * d.C);
  }

 private:
  int kv_width(const AttentionDims& d) const { return 2 * kv_heads_ * d.head_size(); }

  reference::ExactAttentionShape shape(const AttentionDims& d) const {
    reference::ExactAttentionShape s;
    s.B = d.B, s.T = d.T, s.H = d.H, s.head_size = d.head_size();
    s.kv_heads = kv_heads_;
    return s;
  }

  // q (B,T,C), kv (B,T,2·G·d) and the attention output att (B,T,C) of x.
  void reference_core(const AttentionDims& d, const std::vector<const float*>& params,
                      const float* x, std::vector<float>& q, std::vector<float>& kv,
                      std::vector<float>& att) const {
    const int N = d.B * d.T, KV = kv_width(d);
    q.resize(size_t(N) * d.C);
    kv.resize(size_t(N) * KV);
    att.resize(size_t(N) * d.C);
    reference::matmul_forward(q.data(), x, params[kQw], params[kQb], N, d.C, d.C);
    reference::matmul_forward(kv.data(), x, params[kKvw], params[kKvb], N, d.C, KV);
    reference::exact_attention_forward({att.data(), d.C}, nullptr, nullptr, {q.data(), d.C},
                                       {kv.data(), KV}, {kv.data() + KV / 2, KV}, shape(d));
  }

  int kv_heads_ = 1;
};

}  // namespace

std::unique_ptr<AttentionVariant> make_gqa(const AttentionOptions& options) {
  return std::make_unique<GroupedQueryAttention>(options);
}

}  // namespace attnscope
