// baseline: GPT-2 eager causal multi-head attention, the kernels around the GEMMs.
// The host (model/attention/baseline.cpp) runs, per layer:
//   forward:  qkv = x·W_qkvᵀ + b (matmul) → split_heads → S = QKᵀ/√d (batched gemm, written
//             into the P buffer) → causal_softmax_forward (in place: S → P) → O = PV (gemm)
//             → merge_heads → out = O·W_oᵀ + b_o (matmul)
//   backward: matmul backward → split_heads (dO) → dP = dO Vᵀ, dV = Pᵀ dO (gemm) →
//             causal_softmax_backward (in place: dP → dS) → dQ = dS K/√d, dK = dSᵀ Q/√d (gemm)
//             → merge_heads (dqkv) → matmul backward
// Kept for backward (per layer): Q, K, V split into heads (3,B,H,T,d), P (B,H,T,T) with
// exact zeros above the diagonal, and O with heads merged (B,T,C) — llm.c's qkvr, att, atty.
// S is not kept: the softmax overwrites it with P (VARIANTS.md allows "P alone").
//
// Work-item mapping:
//   split_heads, merge_heads: one work-item per element, or per float4 when d % 4 == 0,
//     indexed along the (B,T,parts·C) array so that side is read/written contiguously.
//   causal_softmax_*: one work-group of SOFTMAX_WG work-items per row (b,h,i) of the
//     (B·H·T, T) matrix; the work-items stride over the row's columns and combine their
//     partial max / sums by a tree reduction in local memory.

#ifndef SOFTMAX_WG
#define SOFTMAX_WG 128  // work-items per softmax row: a power of two ≤ the device's limit
#endif

// out (parts, B, H, T, d) ← in (B, T, parts·C), C = H·d: splits Q|K|V (parts = 3) or one
// tensor (parts = 1) into per-head matrices, so each (b, h) slice is a (T, d) GEMM operand.
// Element e = VEC·gid of the (B, T, parts·C) side is (b, t, p, h, c). These copies are
// memory-bound: 32-bit index arithmetic (the host checks that the tensor has fewer than
// 2^32 elements; a 64-bit division costs several times a 32-bit one) and, when d % 4 == 0
// (vec = 4), one float4 a work-item.
uint head_major_index(const uint e, const uint B, const uint T, const uint H, const uint d,
                      const uint parts) {
  const uint C = H * d, row = parts * C;
  const uint c = e % d, h = e / d % H, p = e / C % parts, t = e / row % T, b = e / (row * T);
  return (((p * B + b) * H + h) * T + t) * d + c;
}

// dst[di..] ← src[si..]: a float4 (vec = 4) or one float.
void copy_floats(__global float* dst, const uint di, __global const float* src, const uint si,
                 const uint vec) {
  if (vec == 4)
    vstore4(vload4(0, src + si), 0, dst + di);
  else
    dst[di] = src[si];
}

__kernel void split_heads(__global float* out, __global const float* in, const uint B,
                          const uint T, const uint H, const uint d, const uint parts,
                          const uint vec) {
  const uint e = get_global_id(0) * vec;
  if (e < B * T * parts * H * d)
    copy_floats(out, head_major_index(e, B, T, H, d, parts), in, e, vec);
}

// out (B, T, parts·C) ← in (parts, B, H, T, d): the inverse of split_heads.
__kernel void merge_heads(__global float* out, __global const float* in, const uint B,
                          const uint T, const uint H, const uint d, const uint parts,
                          const uint vec) {
  const uint e = get_global_id(0) * vec;
  if (e < B * T * parts * H * d)
    copy_floats(out, e, in, head_major_index(e, B, T, H, d, parts), vec);
}

// Combines one value per work-item over the work-group; every work-item gets the result.
// buf (SOFTMAX_WG floats) is free again on return.
float group_max(__local float* buf, float value) {
  const int lid = get_local_id(0);
  buf[lid] = value;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = SOFTMAX_WG / 2; stride > 0; stride >>= 1) {
    if (lid < stride) buf[lid] = fmax(buf[lid], buf[lid + stride]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float result = buf[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return result;
}

float group_sum(__local float* buf, float value) {
  const int lid = get_local_id(0);
  buf[lid] = value;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int stride = SOFTMAX_WG / 2; stride > 0; stride >>= 1) {
    if (lid < stride) buf[lid] += buf[lid + stride];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float result = buf[0];
  barrier(CLK_LOCAL_MEM_FENCE);
  return result;
}

// In place over rows of (B·H·T, T): row (b,h,i) holds the scaled scores S_i·, and becomes
// P_ij = exp(S_ij − max) / Σ_{j'≤i} exp(S_ij' − max) for j ≤ i, exactly 0 for j > i (the
// entries above the diagonal are never read, so the GEMM may leave anything there).
// Each element is read and rewritten by the same work-item, after both reductions.
__kernel void causal_softmax_forward(__global float* att, const int T) {
  __local float buf[SOFTMAX_WG];
  const size_t row = get_group_id(0);
  const int lid = get_local_id(0), i = row % T;
  __global float* s = att + row * T;
  float row_max = -INFINITY;
  for (int j = lid; j <= i; j += SOFTMAX_WG) row_max = fmax(row_max, s[j]);
  row_max = group_max(buf, row_max);
  float sum = 0.f;
  for (int j = lid; j <= i; j += SOFTMAX_WG) sum += exp(s[j] - row_max);
  const float inv_sum = 1.f / group_sum(buf, sum);
  for (int j = lid; j < T; j += SOFTMAX_WG) s[j] = j <= i ? exp(s[j] - row_max) * inv_sum : 0.f;
}

// In place over rows of (B·H·T, T): datt holds dP and becomes dS_ij = P_ij (dP_ij − D_i),
// D_i = Σ_{j≤i} P_ij dP_ij, and exactly 0 above the diagonal (where dP is whatever the
// GEMM computed from the unmasked product). The 1/√d goes into the dQ/dK GEMMs' alpha.
__kernel void causal_softmax_backward(__global float* datt, __global const float* att,
                                      const int T) {
  __local float buf[SOFTMAX_WG];
  const size_t row = get_group_id(0);
  const int lid = get_local_id(0), i = row % T;
  __global float* ds = datt + row * T;
  __global const float* p = att + row * T;
  float partial = 0.f;
  for (int j = lid; j <= i; j += SOFTMAX_WG) partial += p[j] * ds[j];
  const float D = group_sum(buf, partial);
  for (int j = lid; j < T; j += SOFTMAX_WG) ds[j] = j <= i ? p[j] * (ds[j] - D) : 0.f;
}
