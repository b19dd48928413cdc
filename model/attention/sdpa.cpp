// sdpa: exact causal softmax attention in one fused kernel per (batch, head, query block)
// — the block's score rows held on chip, full-row softmax, then PV; no (B,H,T,T) tensor in
// global memory (cl_kernels/attention/sdpa.cl through SdpaCore). Parameters exactly
// baseline's (GPT-2's fused W_qkv and W_o), so the two agree to fp32 rounding. A layer
// keeps qkv, O and the row log-sum-exp L; backward recomputes P = exp(S − L).
#include <memory>

#include "model/attention/common_reference.hpp"
#include "model/attention/sdpa_core.hpp"
#include "model/registry.hpp"

namespace attnscope {

namespace {

const char* const kKernelFile = "attention/sdpa.cl";

struct SdpaActivations : AttentionActivations {
  DeviceBuffer qkv;  // (B,T,3C): Q | K | V, read in place by the kernels
  DeviceBuffer att;  // (B,T,C): O — input of the output projection, and D = rowsum(dO ⊙ O)
  DeviceBuffer lse;  // (B,H,T): L
};

class SdpaAttention : public AttentionVariant {
 public:
  using AttentionVariant::AttentionVariant;

  VariantInfo info() const override {
    return {"sdpa",
            "exact attention, one fused kernel per (batch, head, query block): score rows "
            "held on chip (two passes over on-chip chunks when a row outgrows local memory), "
            "full-row softmax, PV; keeps O and the row log-sum-exp, backward recomputes P",
            "O(T²·d) FLOPs, O(T) memory per head",
            "Vaswani et al. 2017, Attention Is All You Need (as PyTorch's fused "
            "scaled_dot_product_attention math path)"};
  }

  std::vector<TensorSpec> parameters(const AttentionDims& dims) const override {
    return make_variant("baseline", options())->parameters(dims);  // exactly baseline's
  }

  AttentionCost cost(const AttentionDims& dims) const override {
    const SdpaPlan plan = core_ && core_->head_size() == dims.head_size()
                              ? core_->plan()
                              : typical_gpu_sdpa_plan(dims.head_size());
    const double N = double(dims.B) * dims.T, C = dims.C;
    const double projections = 2 * N * C * (3 * C) + 2 * N * C * C;  // W_qkv, W_o
    AttentionCost c;
    c.model_flops_forward = projections + exact_attention_model_flops_forward(dims);
    c.model_flops_backward = 2 * c.model_flops_forward;
    c.executed_flops_forward = projections + sdpa_forward_flops(plan, dims);
    c.executed_flops_backward = 2 * projections + sdpa_backward_flops(plan, dims);
    c.saved_bytes = sizeof(float) * (3 * N * C + N * C + double(dims.B) * dims.H * dims.T);
    return c;
  }

  std::vector<DeviceBufferSpec> device_buffers(const AttentionDims& dims) const override {
    const size_t btc = size_t(dims.B) * dims.T * dims.C, bht = size_t(dims.B) * dims.H * dims.T;
    return {layer_floats("sdpa qkv", 3 * btc),        layer_floats("sdpa O", btc),
            layer_floats("sdpa L", bht),              shared_floats("sdpa dO scratch", btc),
            shared_floats("sdpa dqkv scratch", 3 * btc), shared_floats("sdpa D scratch", bht)};
  }

  std::unique_ptr<AttentionActivations> allocate(Ops& ops, const AttentionDims& dims) override {
    Runtime& rt = ops.runtime();
    if (!core_ || core_->head_size() != dims.head_size())
      core_ = std::make_unique<SdpaCore>(rt, kKernelFile, dims.head_size());
    const size_t btc = size_t(dims.B) * dims.T * dims.C, bht = size_t(dims.B) * dims.H * dims.T;
    ensure_floats(rt, datt_, btc, "sdpa dO scratch");
    ensure_floats(rt, dqkv_, 3 * btc, "sdpa dqkv scratch");
    ensure_floats(rt, delta_, bht, "sdpa D scratch");
    auto acts = std::make_unique<SdpaActivations>();
    acts->qkv = rt.alloc_floats(3 * btc, "sdpa qkv");
    acts->att = rt.alloc_floats(btc, "sdpa O");
    acts->lse = rt.alloc_floats(bht, "sdpa L");
    return acts;
  }

  void forward(const DeviceArgs& args, const cl::Buffer& out) override {
    const auto& [ops, dims, step, params, x, activations] = args;
    auto& acts = static_cast<SdpaActivations&>(activations);
    const int N = dims.B * dims.T, C = dims.C;
    ops.matmul_forward(acts.qkv, x, params[0], &params[1], N, C, 3 * C);
    core_->forward(dims, {acts.att, 0, C}, acts.lse, {acts.qkv, 0, 3 * C},
                   {acts.qkv, C, 3 * C}, {acts.qkv, 2 * C, 3 * C});
    ops.matmul_forward(out, acts.att, params[2], &params[3], N, C, C);
  }

  void backward(const DeviceArgs& args, const DeviceGrads& gradients) override {
    const auto& [ops, dims, step, params, x, activations] = args;
    const auto& [dout, dx, grads] = gradients;
    auto& acts = static_cast<SdpaActivations&>(activations);
    const int N = dims.B * dims.T, C = dims.C;
    ops.matmul_backward(datt_, grads[2], &grads[3], dout, acts.att, params[2], N, C, C);
    core_->backward(dims, {dqkv_, 0, 3 * C}, {dqkv_, C, 3 * C}, {dqkv_, 2 * C, 3 * C}, delta_,
                    {datt_, 0, C}, {acts.att, 0, C}, acts.lse, {acts.qkv, 0, 3 * C},
                    {acts.qkv, C, 3 * C}, {acts.qkv, 2 * C, 3 * C});
    ops.matmul_backward(dx, grads[0], &grads[1], dqkv_, x, params[0], N, C, 3 * C);
  }

  void reference_forward(const ReferenceArgs& args, float* out) const override {
    const auto& [dims, step, params, x] = args;
    reference::mha_block_forward(dims, /*window=*/0, params, x, out);
  }

  void reference_backward(const ReferenceArgs& args,
                          const ReferenceGrads& gradients) const override {
    const auto& [dims, step, params, x] = args;
    const auto& [dout, dx, dparams] = gradients;
    reference::mha_block_backward(dims, /*window=*/0, params, x, dout, dx, dparams);
  }

 private:
  std::unique_ptr<SdpaCore> core_;  // built by allocate() for the device and head size
  // Backward scratch shared by all layers (they run one at a time on the in-order queue),
  // sized for the largest dims allocate() has seen.
  DeviceBuffer datt_;  // (B,T,C): dO
  DeviceBuffer dqkv_;  // (B,T,3C): dQ | dK | dV, written in place by the kernels
  DeviceBuffer delta_;  // (B,H,T): D
};

}  // namespace

std::unique_ptr<AttentionVariant> make_sdpa(const AttentionOptions& options) {
  return std::make_unique<SdpaAttention>(options);
}

}  // namespace attnscope
