// mla.cl — multi-head latent attention (DeepSeek-V2, 2024), in the NON-ABSORBED form:
//   Q   = x·W_qᵀ + b_q                          (B,T,C)
//   c   = x·W_dkvᵀ + b_dkv                      (B,T,d_c)  the shared low-rank latent
//   K|V = c·[W_uk ; W_uv]ᵀ                      (B,T,2C)   per-head keys and values
//   O_h = softmax(Q_h K_hᵀ/√d, causal) V_h,  y = O·W_oᵀ + b_o
// The four products are Ops::matmul (cl_kernels/matmul.cl); the attention core is flash.cl's
// tiled FlashAttention-2 kernels, included below, reading Q out of (B,T,C) and K, V in place
// out of the (B,T,2C) up-projection (q_stride = C; kv_stride = 2C, k_offset = 0,
// v_offset = C). Work-item mapping and what the core keeps for backward (O and the row
// log-sum-exp L): see flash.cl. The layer also keeps Q, c and K|V for the products' backward.
// Why not absorbed (q̃_h = Q_h W_uk,h, scores q̃·c over d_c): training needs dK and dV of
// every head anyway, and with d_c = 4d the absorbed scores and P·c cost 4× the FLOPs of
// QKᵀ and PV. Absorption pays at inference, where it shrinks the KV cache to c.
#define VARIANT_KERNEL(name) mla_##name
#include "attention/flash.cl"
