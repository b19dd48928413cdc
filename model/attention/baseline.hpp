// baseline: GPT-2's eager causal multi-head attention (VARIANTS.md, "Exact softmax
// attention"), as llm.c computes it: the scores are materialised as a (B,H,T,T) tensor,
// softmaxed with the causal mask, and P is kept for backward. QKᵀ, PV and their backward
// products are batched GEMMs (Ops::gemm); cl_kernels/attention/baseline.cl has the rest.
// Declared here (rather than only through make_baseline) so tests can look at what a
// layer keeps; other variants need not expose their classes.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "model/attention_variant.hpp"

namespace attnscope {

// What one layer keeps from forward for backward (llm.c's qkvr, att, atty). The layer's
// input x is kept by the model, not here.
struct BaselineActivations : AttentionActivations {
  DeviceBuffer qkvr;   // (3, B, H, T, d): Q, K, V split into heads — read by every core GEMM
  DeviceBuffer probs;  // (B, H, T, T): P, exact zeros above the diagonal — dV = Pᵀ dO, dS
  DeviceBuffer att;    // (B, T, C): O with heads merged — input of the output projection
};

class BaselineAttention : public AttentionVariant {
 public:
  using AttentionVariant::AttentionVariant;

  VariantInfo info() const override;
  std::vector<TensorSpec> parameters(const AttentionDims& dims) const override;
  AttentionCost cost(const AttentionDims& dims) const override;

  std::vector<DeviceBufferSpec> device_buffers(const AttentionDims& dims) const override;
  std::unique_ptr<AttentionActivations> allocate(Ops& ops, const AttentionDims& dims) override;
  void forward(const DeviceArgs& args, const cl::Buffer& out) override;
  void backward(const DeviceArgs& args, const DeviceGrads& gradients) override;

  void reference_forward(const ReferenceArgs& args, float* out) const override;
  void reference_backward(const ReferenceArgs& args,
                          const ReferenceGrads& gradients) const override;

 private:
  void build_kernels(Runtime& rt);
  void grow_scratch(Runtime& rt, const AttentionDims& dims);
  void permute_heads(Runtime& rt, cl::Kernel& kernel, const cl::Buffer& out, const cl::Buffer& in,
                     const AttentionDims& dims, int parts);
  void split_heads(Runtime& rt, const cl::Buffer& out, const cl::Buffer& in,
                   const AttentionDims& dims, int parts);
  void merge_heads(Runtime& rt, const cl::Buffer& out, const cl::Buffer& in,
                   const AttentionDims& dims, int parts);
  void softmax_forward(Runtime& rt, const cl::Buffer& att, const AttentionDims& dims);
  void softmax_backward(Runtime& rt, const cl::Buffer& datt, const cl::Buffer& att,
                        const AttentionDims& dims);

  cl::Kernel split_heads_, merge_heads_, softmax_forward_, softmax_backward_;
  size_t softmax_wg_ = 0;  // 0 until build_kernels()

  // Transient buffers shared by all layers (layers run one at a time on the in-order
  // queue), sized for the largest dims allocate() has seen.
  DeviceBuffer qkv_;     // (B, T, 3C): forward's qkv; backward's dqkv
  DeviceBuffer heads_;   // (B, H, T, d): forward's O per head; backward's dO per head
  DeviceBuffer datt_;    // (B, T, C): backward's gradient of the merged O
  DeviceBuffer dqkvr_;   // (3, B, H, T, d): backward's dQ, dK, dV per head
  DeviceBuffer dprobs_;  // (B, H, T, T): backward's dP, then dS in place
};

}  // namespace attnscope
