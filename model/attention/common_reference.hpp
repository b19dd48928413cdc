// CPU reference pieces shared by the attention variants' reference_forward/backward:
// plain C++, double accumulation, written to be read next to VARIANTS.md, not to be fast.
// A variant's reference composes them instead of re-deriving softmax attention:
//   baseline, sdpa, flash   mha_block_forward/backward(dims, window = 0, ...)
//   sliding_window          mha_block_forward/backward(dims, window = w, ...)
//   gqa, mla                their own projections (reference::matmul_* of
//                           model/reference/layers.hpp), exact_attention_forward/backward
//                           (gqa with kv_heads = G), then the output projection
// Tensors are row-major; views below say where each head's vector lives.
#pragma once
#include <vector>

#include "model/attention_variant.hpp"

namespace attnscope::reference {

// Per-head vectors inside a row-major (B·T, row_stride) array: head h of token (b, t) is
// the head_size floats at data + (b·T + t)·row_stride + h·head_size. Q, K and V can then be
// read straight out of a fused qkv (B, T, 3C) array, or out of any layout a variant has.
template <typename Float>
struct HeadsView {
  Float* data = nullptr;
  int row_stride = 0;
  Float* at(int b, int t, int h, int T, int head_size) const {
    return data + (size_t(b) * T + t) * row_stride + size_t(h) * head_size;
  }
};
using ConstHeads = HeadsView<const float>;
using Heads = HeadsView<float>;

// Exact causal softmax attention of H query heads of size head_size over T positions.
// kv_heads = G: query head h reads key/value head ⌊h·G/H⌋ (0 means G = H, plain MHA).
// window = w > 0 restricts query i to keys i − w < j ≤ i (0: every j ≤ i).
struct ExactAttentionShape {
  int B = 1, T = 1, H = 1, head_size = 1;
  int kv_heads = 0;
  int window = 0;

  int kv_head_of(int h) const { return kv_heads > 0 ? h * kv_heads / H : h; }
  int first_key(int i) const { return window > 0 && i - window + 1 > 0 ? i - window + 1 : 0; }
};

// out_h = softmax_row(Q_h K_gᵀ/√d, masked) V_g for every (b, h), g = kv_head_of(h).
// Optional outputs (null to skip): probs (B,H,T,T), P with exact zeros where masked;
// lse (B,H,T), the row log-sum-exp log Σ_j exp(S_ij) over allowed j (what sdpa/flash keep).
void exact_attention_forward(const Heads& out, float* probs, float* lse, const ConstHeads& q,
                             const ConstHeads& k, const ConstHeads& v,
                             const ExactAttentionShape& shape);

// Backward of exact_attention_forward, P recomputed in double (VARIANTS.md: dV = Pᵀ dO,
// dP = dO Vᵀ, dS = P ⊙ (dP − D), dQ = dS K/√d, dK = dSᵀ Q/√d). dq, dk and dv ACCUMULATE
// (+=), so callers zero them first; with kv_heads < H, dk/dv of a key/value head thereby sum
// over the query heads of its group, and dq/dk/dv may be views into one fused dqkv.
void exact_attention_backward(const Heads& dq, const Heads& dk, const Heads& dv,
                              const ConstHeads& dout, const ConstHeads& q, const ConstHeads& k,
                              const ConstHeads& v, const ExactAttentionShape& shape);

// Q, K and V of GPT-2's fused projection qkv (B, T, 3C) = x·W_qkvᵀ + b_qkv: Q | K | V.
struct QKVHeads {
  ConstHeads q, k, v;
};
QKVHeads split_qkv(const float* qkv, int C);
struct QKVGradHeads {
  Heads q, k, v;
};
QKVGradHeads split_qkv_grad(float* dqkv, int C);

// GPT-2's attention block with exact causal softmax attention (window as in
// ExactAttentionShape) as its core: qkv = x·W_qkvᵀ + b_qkv, O = attention(Q, K, V),
// out = O·W_oᵀ + b_o. params = {qkvw (3C,C), qkvb (3C), attprojw (C,C), attprojb (C)}, as
// baseline's parameters(). Backward: dx overwritten, dparams accumulated (+=).
void mha_block_forward(const AttentionDims& dims, int window,
                       const std::vector<const float*>& params, const float* x, float* out);
void mha_block_backward(const AttentionDims& dims, int window,
                        const std::vector<const float*>& params, const float* x,
                        const float* dout, float* dx, const std::vector<float*>& dparams);

}  // namespace attnscope::reference
