// mla.cl — multi-head latent attention (DeepSeek-V2, 2024), in the NON-ABSORBED form:
//   Q   = x·W_qᵀ + b_q                          (B,T,C)
//   c   = x·W_dkvᵀ + b_dkv                      (B,T,d_c)  the shared low-rank latent
//   K|V = c·[W_uk ; W_uv]ᵀ                      (B,T,2C)   per-head keys and values
//   O_h = softmax(Q_h K_hᵀ/√d, causal) V_h,  y = O·W_oᵀ + b_o
// The four products are Ops::matmul (cl_kernels/matmul.cl); the attention core is sdpa's
// fused kernels, included below, reading Q out of (B,T,C) and K, V in place out of the
// (B,T,2C) up-projection (offsets 0 and C, row stride 2C). Work-item mapping and what the
// core keeps for backward (O and the row log-sum-exp L): see sdpa.cl. The layer also keeps
// Q, c and K|V for the products' backward.
// Why not absorbed (q̃_h = Q_h W_uk,h, scores q̃·c over d_c): training needs dK and dV of
// every head anyway, and with d_c = 4d the absorbed scores and P·c cost 4× the FLOPs of
// QKᵀ and PV. Absorption pays at inference, where it shrinks the KV cache to c.
#include "attention/sdpa.cl"
