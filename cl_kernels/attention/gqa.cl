// gqa.cl — grouped-query attention (Ainslie et al. 2023), forward and backward: exact causal
// softmax attention in which query head h reads K/V head g = h / GROUP_SIZE = ⌊h·G/H⌋
// (VARIANTS.md §gqa). The kernels are flash.cl's tiled FlashAttention-2 core; what changes:
//   - the host passes Q (B,T,C) from W_q and K|V (B,T,2·G·d) from W_kv as separate
//     buffers (q_stride = C; kv_stride = 2·G·d, k_offset = 0, v_offset = G·d);
//   - gqa_backward_dkdv: a work-group owns BB keys of one K/V head and loops over the
//     GROUP_SIZE query heads of its group inside the work-group, so dK_g, dV_g sum over the
//     group deterministically, without atomics.
// Kept for backward: Q, K|V, O and the row log-sum-exp L (B,H,T), as flash.
#ifndef GROUP_SIZE
#error "gqa.cl needs GROUP_SIZE (query heads per K/V head, H/G) from the host"
#endif
#define VARIANT_KERNEL(name) gqa_##name
#include "attention/flash.cl"
