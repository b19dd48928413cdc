// mla: multi-head latent attention (DeepSeek-V2), non-absorbed form (VARIANTS.md §mla):
// Q = x·W_qᵀ + b_q; latent c = x·W_dkvᵀ + b_dkv (d_c = --latent-dim, default 4·head size);
// K|V = c·[W_uk ; W_uv]ᵀ; exact causal softmax attention per head (flash's tiled kernels,
// built from cl_kernels/attention/mla.cl, or mla_tf32.cl with --precision tf32; host side
// flash_core.hpp); y = O·W_oᵀ + b_o.
// GPT-2 keeps learned absolute positions, so there is no decoupled RoPE key. W_uk and W_uv
// are stored stacked as one (2C, d_c) tensor, like GPT-2's W_qkv, so the up-projection is
// one product.
#include <memory>
#include <string>

#include "host/runtime/error.hpp"
#include "model/attention/common_reference.hpp"
#include "model/attention/flash_core.hpp"
#include "model/attention/sdpa_core.hpp"  // exact_attention_model_flops_forward
#include "model/reference/layers.hpp"

namespace attnscope {

namespace {

const char* const kKernelFamily = "mla";  // cl_kernels/attention/mla.cl, kernels mla_*

// params / grads, in parameters() order.
enum Param { kQw, kQb, kDkvw, kDkvb, kUkvw, kProjw, kProjb };

struct MlaActivations : AttentionActivations {
  DeviceBuffer q;       // (B,T,C): Q
  DeviceBuffer latent;  // (B,T,d_c): c — input of the up-projection
  DeviceBuffer kv;      // (B,T,2C): K | V, read in place by the attention kernels
  DeviceBuffer att;     // (B,T,C): O — input of the output projection, and D = rowsum(dO ⊙ O)
  DeviceBuffer lse;     // (B,H,T): L
};

class MlaAttention : public AttentionVariant {
 public:
  using AttentionVariant::AttentionVariant;

  VariantInfo info() const override {
    return {"mla",
            "multi-head latent attention, non-absorbed: latent c = x·W_dkvᵀ + b (d_c), "
            "per-head K, V = c·W_ukᵀ, c·W_uvᵀ materialised, exact causal attention (flash's "
            "tiled kernels); no decoupled RoPE (learned absolute positions)",
            "O(T²·d + T·C·d_c) FLOPs",
            "DeepSeek-AI 2024, DeepSeek-V2: A Strong, Economical, and Efficient "
            "Mixture-of-Experts Language Model (arXiv 2405.04434)",
            {{"latent_dim", 0, "latent width d_c", "4 x head size", 1,
              /*shapes_parameters=*/true}}};
  }

  void resolve(const AttentionDims& dims) override {
    if (option("latent_dim") < 0)
      throw UsageError("mla: --latent-dim must be at least 1 (got " +
                       std::to_string(option("latent_dim")) + ")");
    set_derived("latent_dim", 4 * dims.head_size());
  }

  std::vector<TensorSpec> parameters(const AttentionDims& dims) const override {
    const size_t C = dims.C, dc = latent_dim(dims);
    return {{"qw", {C, C}, Init::kNormal, true},
            {"qb", {C}, Init::kZero, false},
            {"dkvw", {dc, C}, Init::kNormal, true},
            {"dkvb", {dc}, Init::kZero, false},
            {"ukvw", {2 * C, dc}, Init::kNormal, true},  // W_uk (rows 0..C-1) | W_uv
            {"attprojw", {C, C}, Init::kResidualProjection, true},
            {"attprojb", {C}, Init::kZero, false}};
  }

  std::string attention_kernels() const override { return core_ ? core_->arithmetic() : "fp32"; }
  std::string attention_backward() const override { return core_ ? core_->backward_form() : ""; }

  AttentionCost cost(const AttentionDims& dims) const override {
    // The kernels allocate() built, if for this head size; else a typical GPU's fp32 ones.
    const bool built = core_ && core_->head_size() == dims.head_size();
    const FlashTiles tiles = built ? core_->tiles() : typical_gpu_flash_tiles(dims.head_size());
    const TiledFlops attention = tiled_attention_flops(
        tiled_shape(dims), tiles, built && core_->forward_tf32(), built && core_->backward_tf32(),
        built && core_->fused_dq());
    const double N = double(dims.B) * dims.T, C = dims.C, dc = latent_dim(dims);
    // W_q, W_dkv, [W_uk; W_uv], W_o
    const double projections = 2 * N * C * C + 2 * N * C * dc + 2 * N * dc * 2 * C + 2 * N * C * C;
    AttentionCost c;
    c.model_flops_forward = projections + exact_attention_model_flops_forward(dims);
    c.model_flops_backward = 2 * c.model_flops_forward;
    c.executed_flops_forward = projections + attention.forward;
    c.executed_flops_backward = 2 * projections + attention.backward;
    // Q, c, K|V, O and L
    c.saved_bytes = sizeof(float) * (N * C + N * dc + 2 * N * C + N * C + double(dims.B) * dims.H * dims.T);
    return c;
  }

  std::vector<DeviceBufferSpec> device_buffers(const AttentionDims& dims) const override {
    const size_t btc = size_t(dims.B) * dims.T * dims.C, bht = size_t(dims.B) * dims.H * dims.T;
    const size_t btl = size_t(dims.B) * dims.T * latent_dim(dims);
    return {layer_floats("mla Q", btc),         layer_floats("mla latent", btl),
            layer_floats("mla K|V", 2 * btc),   layer_floats("mla O", btc),
            layer_floats("mla L", bht),         shared_floats("mla dO scratch", btc),
            shared_floats("mla dQ scratch", btc), shared_floats("mla dK|dV scratch", 2 * btc),
            shared_floats("mla dc scratch", btl), shared_floats("mla D scratch", bht)};
  }

  std::unique_ptr<AttentionActivations> allocate(Ops& ops, const AttentionDims& dims) override {
    Runtime& rt = ops.runtime();
    check_tiled_rows_fit("mla", qkv_layout(dims.C), dims.T);
    const TiledPrecision precision = tiled_precision(ops.precision());
    const TiledBackward backward = tiled_backward(ops);
    if (!core_ || core_->head_size() != dims.head_size() || core_->precision() != precision ||
        core_->backward() != backward)
      core_ = TiledAttentionKernels::for_device(rt, kKernelFamily, tiled_shape(dims), precision,
                                                backward);
    const size_t btc = size_t(dims.B) * dims.T * dims.C, bht = size_t(dims.B) * dims.H * dims.T;
    const size_t btl = size_t(dims.B) * dims.T * latent_dim(dims);
    ensure_floats(rt, datt_, btc, "mla dO scratch");
    ensure_floats(rt, dq_, btc, "mla dQ scratch");
    ensure_floats(rt, dkv_, 2 * btc, "mla dK|dV scratch");
    ensure_floats(rt, dlatent_, btl, "mla dc scratch");
    ensure_floats(rt, delta_, bht, "mla D scratch");
    auto acts = std::make_unique<MlaActivations>();
    acts->q = rt.alloc_floats(btc, "mla Q");
    acts->latent = rt.alloc_floats(btl, "mla latent");
    acts->kv = rt.alloc_floats(2 * btc, "mla K|V");
    acts->att = rt.alloc_floats(btc, "mla O");
    acts->lse = rt.alloc_floats(bht, "mla L");
    return acts;
  }

  void forward(const DeviceArgs& args, const cl::Buffer& out) override {
    const auto& [ops, dims, step, params, x, activations] = args;
    auto& acts = static_cast<MlaActivations&>(activations);
    const int N = dims.B * dims.T, C = dims.C, dc = latent_dim(dims);
    ops.matmul_forward(acts.q, x, params[kQw], &params[kQb], N, C, C);
    ops.matmul_forward(acts.latent, x, params[kDkvw], &params[kDkvb], N, C, dc);
    ops.matmul_forward(acts.kv, acts.latent, params[kUkvw], nullptr, N, dc, 2 * C);
    core_->forward(acts.att, acts.lse, acts.q, acts.kv, qkv_layout(C), tiled_shape(dims));
    ops.matmul_forward(out, acts.att, params[kProjw], &params[kProjb], N, C, C);
  }

  void backward(const DeviceArgs& args, const DeviceGrads& gradients) override {
    const auto& [ops, dims, step, params, x, activations] = args;
    const auto& [dout, dx, grads] = gradients;
    auto& acts = static_cast<MlaActivations&>(activations);
    const int N = dims.B * dims.T, C = dims.C, dc = latent_dim(dims);
    ops.matmul_backward(datt_, grads[kProjw], &grads[kProjb], dout, acts.att, params[kProjw], N,
                        C, C);
    // No groups of query heads: delta_ stands in for the unused dK|dV shares.
    core_->backward(dq_, dkv_, delta_, delta_, datt_, acts.att, acts.lse, acts.q, acts.kv,
                    qkv_layout(C), tiled_shape(dims));
    ops.matmul_backward(dlatent_, grads[kUkvw], nullptr, dkv_, acts.latent, params[kUkvw], N, dc,
                        2 * C);
    // x feeds two products: dx = dc·W_dkv + dQ·W_q (datt_ is free again for the second).
    ops.matmul_backward(dx, grads[kDkvw], &grads[kDkvb], dlatent_, x, params[kDkvw], N, C, dc);
    ops.matmul_backward(datt_, grads[kQw], &grads[kQb], dq_, x, params[kQw], N, C, C);
    ops.accumulate(dx, datt_, size_t(N) * C);
  }

  void reference_forward(const ReferenceArgs& args, float* out) const override {
    const auto& [dims, step, params, x] = args;
    Projections p = project(dims, params, x);
    reference::matmul_forward(out, p.att.data(), params[kProjw], params[kProjb], p.N, dims.C,
                              dims.C);
  }

  void reference_backward(const ReferenceArgs& args,
                          const ReferenceGrads& gradients) const override {
    const auto& [dims, step, params, x] = args;
    const auto& [dout, dx, dparams] = gradients;
    Projections p = project(dims, params, x);  // recomputed: the reference keeps no state
    const int N = p.N, C = dims.C, dc = latent_dim(dims);
    std::vector<float> datt(size_t(N) * C), dq(size_t(N) * C, 0.f), dkv(size_t(N) * 2 * C, 0.f);
    reference::matmul_backward(datt.data(), dparams[kProjw], dparams[kProjb], dout, p.att.data(),
                               params[kProjw], N, C, C);
    reference::exact_attention_backward({dq.data(), C}, {dkv.data(), 2 * C},
                                        {dkv.data() + C, 2 * C}, {datt.data(), C},
                                        {p.q.data(), C}, {p.kv.data(), 2 * C},
                                        {p.kv.data() + C, 2 * C}, shape(dims));
    std::vector<float> dlatent(size_t(N) * dc), dx_q(size_t(N) * C);
    reference::matmul_backward(dlatent.data(), dparams[kUkvw], nullptr, dkv.data(),
                               p.latent.data(), params[kUkvw], N, dc, 2 * C);
    reference::matmul_backward(dx, dparams[kDkvw], dparams[kDkvb], dlatent.data(), x,
                               params[kDkvw], N, C, dc);
    reference::matmul_backward(dx_q.data(), dparams[kQw], dparams[kQb], dq.data(), x,
                               params[kQw], N, C, C);
    reference::accumulate(dx, dx_q.data(), size_t(N) * C);
  }

 private:
  // The resolved d_c, or the default for these dims before resolve().
  int latent_dim(const AttentionDims& dims) const {
    return option("latent_dim") > 0 ? option("latent_dim") : 4 * dims.head_size();
  }

  // Q rows in their own (B,T,C) buffer; K and V in place in the (B,T,2C) up-projection.
  static QkvLayout qkv_layout(int C) { return {C, 0, 2 * C, 0, C}; }

  static TiledShape tiled_shape(const AttentionDims& dims) {
    TiledShape s;
    s.B = dims.B, s.T = dims.T, s.H = dims.H, s.head_size = dims.head_size();
    return s;
  }

  static reference::ExactAttentionShape shape(const AttentionDims& dims) {
    reference::ExactAttentionShape s;
    s.B = dims.B;
    s.T = dims.T;
    s.H = dims.H;
    s.head_size = dims.head_size();
    return s;
  }

  // The reference's forward up to O: Q, c, K|V and O, as the device keeps them.
  struct Projections {
    int N = 0;
    std::vector<float> q, latent, kv, att;
  };
  Projections project(const AttentionDims& dims, const std::vector<const float*>& params,
                      const float* x) const {
    Projections p;
    const int C = dims.C, dc = latent_dim(dims);
    p.N = dims.B * dims.T;
    p.q.resize(size_t(p.N) * C);
    p.latent.resize(size_t(p.N) * dc);
    p.kv.resize(size_t(p.N) * 2 * C);
    p.att.resize(size_t(p.N) * C);
    reference::matmul_forward(p.q.data(), x, params[kQw], params[kQb], p.N, C, C);
    reference::matmul_forward(p.latent.data(), x, params[kDkvw], params[kDkvb], p.N, C, dc);
    reference::matmul_forward(p.kv.data(), p.latent.data(), params[kUkvw], nullptr, p.N, dc, 2 * C);
    reference::exact_attention_forward({p.att.data(), C}, nullptr, nullptr, {p.q.data(), C},
                                       {p.kv.data(), 2 * C}, {p.kv.data() + C, 2 * C},
                                       shape(dims));
    return p;
  }

  std::unique_ptr<TiledAttentionKernels> core_;  // built by allocate() for the device and head size
  // Backward scratch shared by all layers (they run one at a time on the in-order queue),
  // sized for the largest dims allocate() has seen.
  DeviceBuffer datt_;     // (B,T,C): dO, then dQ·W_q
  DeviceBuffer dq_;       // (B,T,C): dQ
  DeviceBuffer dkv_;      // (B,T,2C): dK | dV
  DeviceBuffer dlatent_;  // (B,T,d_c): dc
  DeviceBuffer delta_;    // (B,H,T): D
};

}  // namespace

std::unique_ptr<AttentionVariant> make_mla(const AttentionOptions& options) {
  return std::make_unique<MlaAttention>(options);
}

}  // namespace attnscope
