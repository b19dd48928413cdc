// linear: causal linear attention (Katharopoulos et al. 2020), VARIANTS.md §linear.
//   O_i = φ(Q_i) S_i / (φ(Q_i)·z_i + ε),  S_i = Σ_{j≤i} φ(K_j)ᵀ V_j,  z_i = Σ_{j≤i} φ(K_j),
//   φ(u) = elu(u) + 1, ε = 1e-6, no 1/√d.
// Appending a column of ones to V (V' = [V | 1]) makes z the last column of S' = [S | z],
// so the forward pass and all three backward products are one primitive,
//   causal_product(a, b, v):  out_i = Σ_{j ≤ i} (a_i·b_j) v_j      (reverse: Σ_{j ≥ i}),
// computed chunk by chunk (--chunk): inside a chunk the masked quadratic form, across
// chunks a running state Σ_j b_jᵀ v_j (Dk × Dv). The host (model/attention/linear.cpp) runs:
//   forward:  linear_features (φQ, φK, V') → causal_product(φQ, φK, V') = [num | den − ε]
//             → linear_normalize (O = num / den)
//   backward: linear_features again → linear_output_grad: g' = [dO/den | −(dO·O)/den], the
//             gradient of [num | den] → dφQ = causal_product(g', V', φK);
//             dφK = reverse causal_product(V', g', φQ); dV = reverse causal_product(φK, φQ, g'[:d])
//             → linear_input_grad (dQ = dφQ·φ'(Q), dK = dφK·φ'(K), dV) into dqkv.
// Kept for backward (by the host, per layer): qkv (B,T,3C), O (B,T,C), den (B,H,T). φQ, φK
// and V' are recomputed; no per-chunk state is kept (the reverse sweeps rebuild theirs).
//
// Work-item mapping:
//   linear_causal_product: one work-group per (block of BLOCK_COLS columns of v, head g),
//     TILE × BLOCK_COLS work-items; work-item (r, c) owns output row r of the current
//     query tile, column c of the block. The group walks the chunks in order (reverse:
//     last to first) keeping its Dk × BLOCK_COLS slice of the state in local memory; a
//     chunk longer than TILE is processed as TILE-row sub-tiles (query tile × key tiles
//     on or below the diagonal), so local memory is bounded by TILE, not by the chunk.
//   the element-wise kernels: one work-item per element of a (B, T, C) array, except
//     linear_output_grad: one per (head, position), looping over the head's d values.
// Operand layouts: a, b (G, T, Dk); v (G, T, ldv) of which the first Dv columns are read;
// out (G, T, Dv); G = B·H, heads of one batch element adjacent.

#ifndef TILE
#define TILE 32  // rows of a query or key sub-tile held in local memory (1..chunk)
#endif
#ifndef BLOCK_COLS
#define BLOCK_COLS 8  // columns of v and out per work-group; work-group = TILE·BLOCK_COLS
#endif

#define LINEAR_EPS 1e-6f

inline float phi(float u) { return u > 0.f ? u + 1.f : exp(u); }
inline float phi_grad(float u) { return u > 0.f ? 1.f : exp(u); }

// rows [row0, row0 + rows) of a row-major (·, width) array → tile (TILE, pitch), zero rows
// past `rows`.
void load_rows(__local float* tile, __global const float* src, int row0, int rows, int width,
               int pitch) {
  const int lid = get_local_id(0), n = TILE * BLOCK_COLS;
  for (int idx = lid; idx < TILE * width; idx += n) {
    const int r = idx / width, k = idx % width;
    tile[r * pitch + k] = r < rows ? src[(size_t)(row0 + r) * width + k] : 0.f;
  }
}

// rows [row0, row0 + rows), columns [col0, col0 + BLOCK_COLS) of v → (TILE, BLOCK_COLS).
void load_value_block(__local float* tile, __global const float* v, int row0, int rows,
                      int col0, int Dv, int ldv) {
  const int lid = get_local_id(0);
  const int r = lid / BLOCK_COLS, c = lid % BLOCK_COLS;
  const bool inside = r < rows && col0 + c < Dv;
  tile[r * BLOCK_COLS + c] = inside ? v[(size_t)(row0 + r) * ldv + col0 + c] : 0.f;
}

__kernel void linear_causal_product(__global float* out, __global const float* a,
                                    __global const float* b, __global const float* v,
                                    const int T, const int Dk, const int Dv, const int ldv,
                                    const int chunk, const int reverse,
                                    __local float* a_tile,      // TILE × pitch
                                    __local float* b_tile,      // TILE × pitch
                                    __local float* v_tile,      // TILE × BLOCK_COLS
                                    __local float* scores,      // TILE × TILE
                                    __local float* state) {     // Dk × BLOCK_COLS
  const int lid = get_local_id(0), r = lid / BLOCK_COLS, c = lid % BLOCK_COLS;
  const int col0 = get_group_id(0) * BLOCK_COLS;
  const size_t g = get_group_id(1);
  const int pitch = Dk | 1;  // odd row pitch: rows of a tile fall in different banks
  a += g * T * Dk;
  b += g * T * Dk;
  v += g * T * ldv;
  out += g * T * Dv;

  for (int idx = lid; idx < Dk * BLOCK_COLS; idx += TILE * BLOCK_COLS) state[idx] = 0.f;
  const int n_chunks = (T + chunk - 1) / chunk;
  for (int n = 0; n < n_chunks; ++n) {
    const int c0 = (reverse ? n_chunks - 1 - n : n) * chunk, c1 = min(c0 + chunk, T);
    for (int q0 = c0; q0 < c1; q0 += TILE) {
      barrier(CLK_LOCAL_MEM_FENCE);  // the state update / previous tile is done
      load_rows(a_tile, a, q0, min(TILE, c1 - q0), Dk, pitch);
      barrier(CLK_LOCAL_MEM_FENCE);
      float acc = 0.f;  // across chunks: a_i · state (the state excludes this chunk)
      for (int k = 0; k < Dk; ++k) acc += a_tile[r * pitch + k] * state[k * BLOCK_COLS + c];
      // Inside the chunk: key tiles on the allowed side of the diagonal.
      const int k_begin = reverse ? q0 : c0, k_end = reverse ? c1 : q0 + 1;
      for (int k0 = k_begin; k0 < k_end; k0 += TILE) {
        barrier(CLK_LOCAL_MEM_FENCE);
        load_rows(b_tile, b, k0, min(TILE, c1 - k0), Dk, pitch);
        load_value_block(v_tile, v, k0, min(TILE, c1 - k0), col0, Dv, ldv);
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int j = c; j < TILE; j += BLOCK_COLS) {
          const int i_pos = q0 + r, j_pos = k0 + j;
          const bool allowed = reverse ? j_pos >= i_pos : j_pos <= i_pos;
          float s = 0.f;
          for (int k = 0; k < Dk; ++k) s += a_tile[r * pitch + k] * b_tile[j * pitch + k];
          scores[r * TILE + j] = allowed ? s : 0.f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int j = 0; j < TILE; ++j) acc += scores[r * TILE + j] * v_tile[j * BLOCK_COLS + c];
      }
      if (q0 + r < c1 && col0 + c < Dv) out[(size_t)(q0 + r) * Dv + col0 + c] = acc;
    }
    // state += b_chunkᵀ v_chunk
    for (int k0 = c0; k0 < c1; k0 += TILE) {
      barrier(CLK_LOCAL_MEM_FENCE);
      load_rows(b_tile, b, k0, min(TILE, c1 - k0), Dk, pitch);
      load_value_block(v_tile, v, k0, min(TILE, c1 - k0), col0, Dv, ldv);
      barrier(CLK_LOCAL_MEM_FENCE);
      for (int k = r; k < Dk; k += TILE) {
        float s = 0.f;
        for (int j = 0; j < TILE; ++j) s += b_tile[j * pitch + k] * v_tile[j * BLOCK_COLS + c];
        state[k * BLOCK_COLS + c] += s;
      }
    }
  }
}

// Indices of element (b, t, column) of a (B, T, C) array, the work-item's element.
#define ELEMENT_INDICES                                                 \
  const int col = get_global_id(0), t = get_global_id(1), bt = get_global_id(2); \
  if (col >= C) return;                                                  \
  const int d = C / H, h = col / d, k = col % d;                         \
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
__kernel void linear_output_grad(__global float* g_ext, __global const float* datt,
                                 __global const float* att, __global const float* den,
                                 const int B, const int T, const int C, const int H) {
  const int h = get_global_id(0), t = get_global_id(1), bt = get_global_id(2);
  if (h >= H || bt >= B) return;
  const int d = C / H;
  const size_t g = (size_t)bt * H + h, src = ((size_t)bt * T + t) * C + h * d;
  const size_t ext = (g * T + t) * (d + 1);
  const float inv_den = 1.f / den[g * T + t];
  float dot = 0.f;
  for (int k = 0; k < d; ++k) {
    dot += datt[src + k] * att[src + k];
    g_ext[ext + k] = datt[src + k] * inv_den;
  }
  g_ext[ext + d] = -dot * inv_den;
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
