// linear: causal linear attention (Katharopoulos et al. 2020), VARIANTS.md §linear.
//   O_i = φ(Q_i) S_i / (φ(Q_i)·z_i + ε),  S_i = Σ_{j≤i} φ(K_j)ᵀ V_j,  z_i = Σ_{j≤i} φ(K_j),
//   φ(u) = elu(u) + 1, ε = 1e-6, no 1/√d.
// Appending a column of ones to V (V' = [V | 1]) makes z the last column of S' = [S | z],
// so the forward pass and all three backward products are one primitive,
//   causal_product(a, b, v):  out_i = Σ_{j ≤ i} (a_i·b_j) v_j      (reverse: Σ_{j ≥ i}),
// computed chunk by chunk (--chunk, c): inside a chunk the masked quadratic form, across
// chunks the state Σ_j b_jᵀ v_j (Dk × Dv) of the chunks before (reverse: after). The chunks
// are independent given their states, so three kernels make one product:
//   linear_chunk_states   h_n = Σ_{j ∈ chunk n} b_jᵀ v_j             one group per chunk
//   linear_state_scan     S_n = Σ_{m < n} h_m (reverse: m > n), in place
//   linear_chunk_output   out_n = a_n S_n + mask(a_n b_nᵀ) v_n         one group per chunk
// The host (model/attention/linear.cpp) runs:
//   forward:  linear_features (φQ, φK, V') → causal_product(φQ, φK, V') = [num | den − ε]
//             → linear_normalize (O = num / den)
//   backward: linear_features again → linear_output_grad: g' = [dO/den | −(dO·O)/den], the
//             gradient of [num | den] → dφQ = causal_product(g', V', φK);
//             dφK = reverse causal_product(V', g', φQ); dV = reverse causal_product(φK, φQ, g'[:d])
//             → linear_input_grad (dQ = dφQ·φ'(Q), dK = dφK·φ'(K), dV) into dqkv.
// Kept for backward (by the host, per layer): qkv (B,T,3C), O (B,T,C), den (B,H,T). φQ, φK,
// V' and the per-chunk states (G·⌈T/c⌉·Dk·Dv floats) are transient scratch, recomputed.
//
// Work-item mapping (Dk ≤ d + 1 and Dv ≤ d + 1 at run time, d = HEAD_SIZE):
//   linear_chunk_states, linear_chunk_output: one work-group per (chunk, head g) of
//     TILE × COL_GROUPS work-items covering all BLOCK_COLS ≥ Dv columns, so nothing is
//     recomputed per column block; work-item (r, cg) owns row r of the current TILE-row
//     sub-tile (output) or state rows r, r + TILE, .. (states), and the COLS_PER_ITEM
//     columns cg, cg + COL_GROUPS, .. (interleaved: a warp's loads are consecutive). A chunk
//     longer than TILE is processed as sub-tiles (query tile × key tiles on the allowed side
//     of the diagonal), so local memory is bounded by TILE, not by the chunk.
//   linear_state_scan: one work-item per (state entry, head g), walking the chunks.
//   linear_output_grad: one work-group of HEAD_SIZE work-items per (head, position, batch),
//     one per channel, the dot product summed in local memory; the other element-wise
//     kernels: one work-item per element of a (B, T, C) array.
// Operand layouts: a, b (G, T, Dk); v (G, T, ldv) of which the first Dv columns are read;
// out (G, T, Dv); states (G, ⌈T/c⌉, Dk, Dv); G = B·H, heads of one batch element adjacent.

#ifndef HEAD_SIZE
#define HEAD_SIZE 64  // d: bounds Dk and Dv (≤ d + 1)
#endif

#include "reduce.cl"  // work_group_sum: the per-head dot products of the backward

#ifndef TILE
#define TILE 32  // rows of a query or key sub-tile held in local memory (1..chunk)
#endif
#ifndef COLS_PER_ITEM
#define COLS_PER_ITEM 8  // output columns per work-item, kept in registers
#endif
#ifndef STATE_ROWS
#define STATE_ROWS 16  // rows of the state streamed through local memory by linear_chunk_output
#endif

#ifndef SCAN_BATCH
#define SCAN_BATCH 8  // chunks linear_state_scan loads before storing
#endif

#define COL_GROUPS ((HEAD_SIZE + COLS_PER_ITEM) / COLS_PER_ITEM)  // ⌈(d + 1) / COLS_PER_ITEM⌉
#define BLOCK_COLS (COL_GROUPS * COLS_PER_ITEM)                   // ≥ d + 1 ≥ Dv
#define GROUP_SIZE (TILE * COL_GROUPS)
#define STATE_ITERS ((HEAD_SIZE + TILE) / TILE)  // ⌈(d + 1) / TILE⌉ state rows per work-item
#define LINEAR_EPS 1e-6f

inline float phi(float u) { return u > 0.f ? u + 1.f : exp(u); }
inline float phi_grad(float u) { return u > 0.f ? 1.f : exp(u); }

// rows [row0, row0 + rows) of a row-major (·, width) array → tile (TILE, pitch), zero rows
// past `rows`.
void load_rows(__local float* tile, __global const float* src, int row0, int rows, int width,
               int pitch) {
  for (int idx = get_local_id(0); idx < TILE * width; idx += GROUP_SIZE) {
    const int r = idx / width, k = idx % width;
    tile[r * pitch + k] = r < rows ? src[(size_t)(row0 + r) * width + k] : 0.f;
  }
}

// rows [row0, row0 + rows) of a (·, ld) array, its first `cols` columns → tile (rows_max,
// BLOCK_COLS), zero elsewhere.
void load_block(__local float* tile, __global const float* src, int row0, int rows,
                int rows_max, int cols, int ld) {
  for (int idx = get_local_id(0); idx < rows_max * BLOCK_COLS; idx += GROUP_SIZE) {
    const int r = idx / BLOCK_COLS, c = idx % BLOCK_COLS;
    tile[idx] = r < rows && c < cols ? src[(size_t)(row0 + r) * ld + c] : 0.f;
  }
}

// states[g, n] = Σ_{j ∈ chunk n} b_jᵀ v_j (Dk × Dv).
__kernel void linear_chunk_states(__global float* states, __global const float* b,
                                  __global const float* v, const int T, const int Dk,
                                  const int Dv, const int ldv, const int chunk,
                                  __local float* b_tile,    // TILE × (Dk | 1)
                                  __local float* v_tile) {  // TILE × BLOCK_COLS
  const int lid = get_local_id(0), r = lid / COL_GROUPS, cg = lid % COL_GROUPS;
  const int n = get_group_id(1), n_chunks = get_num_groups(1);
  const size_t g = get_group_id(2);
  const int pitch = Dk | 1, c0 = n * chunk, c1 = min(c0 + chunk, T);
  b += g * T * Dk;
  v += g * T * ldv;
  float acc[STATE_ITERS][COLS_PER_ITEM];
  for (int i = 0; i < STATE_ITERS; ++i)
    for (int u = 0; u < COLS_PER_ITEM; ++u) acc[i][u] = 0.f;
  for (int j0 = c0; j0 < c1; j0 += TILE) {
    barrier(CLK_LOCAL_MEM_FENCE);
    load_rows(b_tile, b, j0, min(TILE, c1 - j0), Dk, pitch);
    load_block(v_tile, v, j0, min(TILE, c1 - j0), TILE, Dv, ldv);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int j = 0; j < TILE; ++j)
      for (int i = 0; i < STATE_ITERS; ++i) {
        const float bk = r + i * TILE < Dk ? b_tile[j * pitch + r + i * TILE] : 0.f;
        for (int u = 0; u < COLS_PER_ITEM; ++u)
          acc[i][u] += bk * v_tile[j * BLOCK_COLS + cg + u * COL_GROUPS];
      }
  }
  states += (g * n_chunks + n) * Dk * Dv;
  for (int i = 0; i < STATE_ITERS; ++i)
    for (int u = 0; u < COLS_PER_ITEM; ++u) {
      const int k = r + i * TILE, c = cg + u * COL_GROUPS;
      if (k < Dk && c < Dv) states[k * Dv + c] = acc[i][u];
    }
}

// In place over the chunks of head g: states[n] ← Σ_{m < n} states[m] (reverse: m > n).
// SCAN_BATCH chunks are loaded before any is stored, so that many loads are in flight
// instead of one dependent load-store round trip per chunk.
__kernel void linear_state_scan(__global float* states, const int n_chunks, const int entries,
                                const int reverse) {
  const int e = get_global_id(0);
  if (e >= entries) return;
  states += (size_t)get_global_id(1) * n_chunks * entries + e;
  float running = 0.f;
  for (int m0 = 0; m0 < n_chunks; m0 += SCAN_BATCH) {
    float h[SCAN_BATCH];
    for (int u = 0; u < SCAN_BATCH; ++u) {
      const int m = reverse ? n_chunks - 1 - (m0 + u) : m0 + u;
      h[u] = m0 + u < n_chunks ? states[(size_t)m * entries] : 0.f;
    }
    for (int u = 0; u < SCAN_BATCH && m0 + u < n_chunks; ++u) {
      const int m = reverse ? n_chunks - 1 - (m0 + u) : m0 + u;
      states[(size_t)m * entries] = running;
      running += h[u];
    }
  }
}

// out_n = a_n S_n + mask(a_n b_nᵀ) v_n for chunk n, S_n from linear_state_scan.
__kernel void linear_chunk_output(__global float* out, __global const float* a,
                                  __global const float* b, __global const float* v,
                                  __global const float* states, const int T, const int Dk,
                                  const int Dv, const int ldv, const int chunk, const int reverse,
                                  __local float* a_tile,      // TILE × (Dk | 1)
                                  __local float* b_tile,      // TILE × (Dk | 1)
                                  __local float* v_tile,      // TILE × BLOCK_COLS
                                  __local float* scores,      // TILE × TILE
                                  __local float* s_tile) {    // STATE_ROWS × BLOCK_COLS
  const int lid = get_local_id(0), r = lid / COL_GROUPS, cg = lid % COL_GROUPS;
  const int n = get_group_id(1), n_chunks = get_num_groups(1);
  const size_t g = get_group_id(2);
  const int pitch = Dk | 1, c0 = n * chunk, c1 = min(c0 + chunk, T);
  a += g * T * Dk;
  b += g * T * Dk;
  v += g * T * ldv;
  out += g * T * Dv;
  states += (g * n_chunks + n) * Dk * Dv;

  for (int q0 = c0; q0 < c1; q0 += TILE) {
    barrier(CLK_LOCAL_MEM_FENCE);
    load_rows(a_tile, a, q0, min(TILE, c1 - q0), Dk, pitch);
    float acc[COLS_PER_ITEM];
    for (int u = 0; u < COLS_PER_ITEM; ++u) acc[u] = 0.f;
    // Across chunks: a_i · S_n, the state streamed STATE_ROWS rows at a time.
    for (int k0 = 0; k0 < Dk; k0 += STATE_ROWS) {
      barrier(CLK_LOCAL_MEM_FENCE);
      load_block(s_tile, states, k0, min(STATE_ROWS, Dk - k0), STATE_ROWS, Dv, Dv);
      barrier(CLK_LOCAL_MEM_FENCE);
      for (int kk = 0; kk < STATE_ROWS && k0 + kk < Dk; ++kk) {
        const float ak = a_tile[r * pitch + k0 + kk];
        for (int u = 0; u < COLS_PER_ITEM; ++u)
          acc[u] += ak * s_tile[kk * BLOCK_COLS + cg + u * COL_GROUPS];
      }
    }
    // Inside the chunk: key tiles on the allowed side of the diagonal.
    const int k_begin = reverse ? q0 : c0, k_end = reverse ? c1 : q0 + 1;
    for (int j0 = k_begin; j0 < k_end; j0 += TILE) {
      barrier(CLK_LOCAL_MEM_FENCE);
      load_rows(b_tile, b, j0, min(TILE, c1 - j0), Dk, pitch);
      load_block(v_tile, v, j0, min(TILE, c1 - j0), TILE, Dv, ldv);
      barrier(CLK_LOCAL_MEM_FENCE);
      for (int j = cg; j < TILE; j += COL_GROUPS) {
        const int i_pos = q0 + r, j_pos = j0 + j;
        float s = 0.f;
        for (int k = 0; k < Dk; ++k) s += a_tile[r * pitch + k] * b_tile[j * pitch + k];
        scores[r * TILE + j] = (reverse ? j_pos >= i_pos : j_pos <= i_pos) ? s : 0.f;
      }
      barrier(CLK_LOCAL_MEM_FENCE);
      for (int j = 0; j < TILE; ++j) {
        const float p = scores[r * TILE + j];
        for (int u = 0; u < COLS_PER_ITEM; ++u)
          acc[u] += p * v_tile[j * BLOCK_COLS + cg + u * COL_GROUPS];
      }
    }
    if (q0 + r < c1)
      for (int u = 0; u < COLS_PER_ITEM; ++u) {
        const int c = cg + u * COL_GROUPS;
        if (c < Dv) out[(size_t)(q0 + r) * Dv + c] = acc[u];
      }
  }
}

// Indices of element (b, t, column) of a (B, T, C) array, the work-item's element.
#define ELEMENT_INDICES                                                 \
  const int col = get_global_id(0), t = get_global_id(1), bt = get_global_id(2); \
  if (col >= C) return;                                                  \
  const int d = HEAD_SIZE, h = col / d, k = col % d;                     \
  const size_t g = (size_t)bt * H + h, row = (size_t)bt * T + t;

// qkv (B,T,3C) → φQ, φK (G,T,d), V' = [V | 1] (G,T,d+1).
__kernel void linear_features(__global float* phi_q, __global float* phi_k, __global float* v_ext,
                              __global const float* qkv, const int T, const int C, const int H) {
  ELEMENT_INDICES
  const size_t src = row * 3 * C + col, dst = (g * T + t) * d + k, ext = (g * T + t) * (d + 1);
  phi_q[dst] = phi(qkv[src]);
  phi_k[dst] = phi(qkv[src + C]);
  v_ext[ext + k] = qkv[src + 2 * C];
  if (k == 0) v_ext[ext + d] = 1.f;
}

// [num | den − ε] (G,T,d+1) → att (B,T,C) = num / den; den (G,T) kept for backward.
__kernel void linear_normalize(__global float* att, __global float* den,
                               __global const float* num_ext, const int T, const int C,
                               const int H) {
  ELEMENT_INDICES
  const size_t ext = (g * T + t) * (d + 1);
  const float denominator = num_ext[ext + d] + LINEAR_EPS;
  att[row * C + col] = num_ext[ext + k] / denominator;
  if (k == 0) den[g * T + t] = denominator;
}

// g' (G,T,d+1) = [dO/den | −(dO·O)/den]: the gradient of [num | den] given dO = datt.
// Work-group = the HEAD_SIZE channels of one (head, position, batch).
__kernel void linear_output_grad(__global float* g_ext, __global const float* datt,
                                 __global const float* att, __global const float* den,
                                 const int T, const int C, const int H,
                                 __local float* buf) {  // HEAD_SIZE
  const int k = get_local_id(0), h = get_group_id(0), t = get_global_id(1), bt = get_global_id(2);
  const size_t g = (size_t)bt * H + h, src = ((size_t)bt * T + t) * C + h * HEAD_SIZE + k;
  const size_t ext = (g * T + t) * (HEAD_SIZE + 1);
  const float inv_den = 1.f / den[g * T + t], dout = datt[src];
  const float dot = work_group_sum(dout * att[src], buf);
  g_ext[ext + k] = dout * inv_den;
  if (k == 0) g_ext[ext + HEAD_SIZE] = -dot * inv_den;
}

// dqkv (B,T,3C) ← dφQ·φ'(Q), dφK·φ'(K), dV (each (G,T,d)).
__kernel void linear_input_grad(__global float* dqkv, __global const float* dphi_q,
                                __global const float* dphi_k, __global const float* dv,
                                __global const float* qkv, const int T, const int C,
                                const int H) {
  ELEMENT_INDICES
  const size_t dst = row * 3 * C + col, src = (g * T + t) * d + k;
  dqkv[dst] = dphi_q[src] * phi_grad(qkv[dst]);
  dqkv[dst + C] = dphi_k[src] * phi_grad(qkv[dst + C]);
  dqkv[dst + 2 * C] = dv[src];
}
