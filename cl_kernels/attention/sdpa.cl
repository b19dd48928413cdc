// sdpa.cl — exact causal softmax attention, the "fused SDPA math kernel" design: one
// work-group per (batch, head, query block) computes its queries' whole score rows, holds
// them on chip (__local), takes an exact full-row softmax and multiplies by V. No (T,T)
// tensor ever reaches global memory. (flash.cl is the other design: online softmax over
// K/V tiles with a running rescale of O; here nothing is ever rescaled.)
//
// Layout. Q, K, V, O, dQ, dK, dV are (B, T, ·) arrays read and written in place: head h of
// token t of batch b is the HEAD_SIZE floats at offset + (b·T + t)·stride + h·HEAD_SIZE,
// so sdpa reads Q, K, V straight out of the fused (B,T,3C) projection (offsets 0, C, 2C,
// stride 3C) and mla out of its own buffers. L and D are (B, H, T).
//
// sdpa_forward — work-group (query block q0, head h, batch b), BLOCK_ROWS queries. The
// score rows of the block live in `scores` (__local, BLOCK_ROWS × chunk, sized by the host
// from CL_DEVICE_LOCAL_MEM_SIZE). The block needs keys [0, key_count), key_count =
// min(T, q0 + BLOCK_ROWS):
//   key_count <= chunk (full rows fit): S = Q Kᵀ/√d once, row max m, P = exp(S − m) in
//     place, O = P V / Σ_j P — every score computed once.
//   key_count > chunk (long T): pass 1 walks the row chunk by chunk for the row max m;
//     pass 2 recomputes each chunk's scores, P = exp(S − m) with the final m (so there is
//     nothing to rescale), accumulates Σ_j P and P V. QKᵀ is computed twice.
//   Keeps O and L_i = m_i + log Σ_j exp(S_ij − m_i) for backward.
// sdpa_backward_delta — one work-item per (b, t, h): D_i = Σ_c dO_ic O_ic.
// sdpa_backward_dq — work-group per query block: for each key tile, P = exp(S − L)
//   recomputed, dP = dO Vᵀ, dS = P ⊙ (dP − D) staged in __local, dQ += dS K/√d.
// sdpa_backward_dkv — work-group per key block: for each query tile from the block's first
//   key on, Pᵀ and dSᵀ recomputed, dV += Pᵀ dO, dK += dSᵀ Q/√d.
// Every output element is one work-item's sum in a fixed order: no atomics, deterministic.
//
// Work-item mapping (all kernels). A work-group is THREADS_ROW × THREADS_COL work-items;
// item (lr, lc) owns block rows lr + a·THREADS_ROW (a < ROWS_PER_THREAD), of a column tile
// the columns lc + b·THREADS_COL (b < COLS_PER_THREAD), and of a head vector the
// dimensions lc + i·THREADS_COL. Tiles of head vectors are staged in __local with rows
// padded by one float, so the column walks of neighbouring items fall in different banks;
// global loads are row-contiguous (coalesced). Per-row accumulators live in registers.

#ifndef HEAD_SIZE
#define HEAD_SIZE 64  // d: floats per head vector (the host always sets it)
#endif
#ifndef THREADS_ROW
#define THREADS_ROW 8  // work-items along a block's rows
#endif
#ifndef THREADS_COL
#define THREADS_COL 16  // work-items along a tile's columns and a head vector's dimensions
#endif
#ifndef ROWS_PER_THREAD
#define ROWS_PER_THREAD 4  // block rows per work-item (BLOCK_ROWS = THREADS_ROW · this)
#endif
#ifndef COLS_PER_THREAD
#define COLS_PER_THREAD 2  // tile columns per work-item (BLOCK_COLS = THREADS_COL · this)
#endif

#define WG_SIZE (THREADS_ROW * THREADS_COL)
#define BLOCK_ROWS (THREADS_ROW * ROWS_PER_THREAD)
#define BLOCK_COLS (THREADS_COL * COLS_PER_THREAD)
#define DIMS_PER_THREAD ((HEAD_SIZE + THREADS_COL - 1) / THREADS_COL)
#define VEC_STRIDE (HEAD_SIZE + 1)     // padded local row of a head vector
#define TILE_STRIDE (BLOCK_COLS + 1)   // padded local row of a score tile

// n rounded up to whole column tiles.
inline int round_up_cols(int n) { return (n + BLOCK_COLS - 1) / BLOCK_COLS * BLOCK_COLS; }

// Offset of head h of token t of batch b in a (B, T, stride) array.
inline size_t head_offset(int b, int t, int T, int stride, int h) {
  return (size_t)(b * T + t) * stride + (size_t)h * HEAD_SIZE;
}

// tile[r][c] = head h of token row0 + r, for r < n_rows; zero where row0 + r >= row_end.
inline void load_vectors(__local float* tile, int n_rows, const __global float* src,
                         int stride, int b, int h, int T, int row0, int row_end) {
  for (int e = get_local_id(0); e < n_rows * HEAD_SIZE; e += WG_SIZE) {
    const int r = e / HEAD_SIZE, c = e % HEAD_SIZE, t = row0 + r;
    tile[r * VEC_STRIDE + c] = t < row_end ? src[head_offset(b, t, T, stride, h) + c] : 0.f;
  }
}

// acc[a][j] = rows[lr + a·THREADS_ROW] · cols[lc + j·THREADS_COL]: this item's dot products
// between the rows of one vector tile and the columns of another (S = Q Kᵀ, dP = dO Vᵀ).
inline void tile_dots(float acc[ROWS_PER_THREAD][COLS_PER_THREAD], __local const float* rows,
                      __local const float* cols, int lr, int lc) {
  for (int a = 0; a < ROWS_PER_THREAD; ++a)
    for (int j = 0; j < COLS_PER_THREAD; ++j) acc[a][j] = 0.f;
  for (int k = 0; k < HEAD_SIZE; ++k) {
    float r[ROWS_PER_THREAD], c[COLS_PER_THREAD];
    for (int a = 0; a < ROWS_PER_THREAD; ++a) r[a] = rows[(lr + a * THREADS_ROW) * VEC_STRIDE + k];
    for (int j = 0; j < COLS_PER_THREAD; ++j) c[j] = cols[(lc + j * THREADS_COL) * VEC_STRIDE + k];
    for (int a = 0; a < ROWS_PER_THREAD; ++a)
      for (int j = 0; j < COLS_PER_THREAD; ++j) acc[a][j] += r[a] * c[j];
  }
}

// acc[a][i] += Σ_{j < BLOCK_COLS} weights[lr + a·THREADS_ROW][j] · vectors[j][lc + i·THREADS_COL]:
// this item's rows of a weight tile times a vector tile (O += P V, dQ += dS K, dV += Pᵀ dO,
// dK += dSᵀ Q). Masked weights are exact zeros and padded vector rows are zero.
inline void tile_accumulate(float acc[ROWS_PER_THREAD][DIMS_PER_THREAD],
                            __local const float* weights, int weight_stride,
                            __local const float* vectors, int lr, int lc) {
  for (int j = 0; j < BLOCK_COLS; ++j) {
    float v[DIMS_PER_THREAD];
    for (int i = 0; i < DIMS_PER_THREAD; ++i) {
      const int c = lc + i * THREADS_COL;
      v[i] = c < HEAD_SIZE ? vectors[j * VEC_STRIDE + c] : 0.f;
    }
    for (int a = 0; a < ROWS_PER_THREAD; ++a) {
      const float w = weights[(lr + a * THREADS_ROW) * weight_stride + j];
      for (int i = 0; i < DIMS_PER_THREAD; ++i) acc[a][i] += w * v[i];
    }
  }
}

inline void zero_accumulators(float acc[ROWS_PER_THREAD][DIMS_PER_THREAD]) {
  for (int a = 0; a < ROWS_PER_THREAD; ++a)
    for (int i = 0; i < DIMS_PER_THREAD; ++i) acc[a][i] = 0.f;
}

// dst[row0 + r] = scale · acc for this item's rows below T (head h, batch b).
inline void store_vectors(__global float* dst, int stride, int b, int h, int T, int row0,
                          float acc[ROWS_PER_THREAD][DIMS_PER_THREAD], const float row_scale[ROWS_PER_THREAD],
                          int lr, int lc) {
  for (int a = 0; a < ROWS_PER_THREAD; ++a) {
    const int t = row0 + lr + a * THREADS_ROW;
    if (t >= T) break;  // rows grow with a
    const size_t base = head_offset(b, t, T, stride, h);
    for (int i = 0; i < DIMS_PER_THREAD; ++i) {
      const int c = lc + i * THREADS_COL;
      if (c < HEAD_SIZE) dst[base + c] = row_scale[a] * acc[a][i];
    }
  }
}

// value[a] of each of this item's rows, combined (max or sum, in a fixed order) over the
// THREADS_COL items that share the row; every one of them gets the result.
inline void combine_across_row(float value[ROWS_PER_THREAD], __local float* partial, int lr,
                               int lc, bool take_max) {
  barrier(CLK_LOCAL_MEM_FENCE);  // partial may still be read by a previous combine
  for (int a = 0; a < ROWS_PER_THREAD; ++a)
    partial[(lr + a * THREADS_ROW) * THREADS_COL + lc] = value[a];
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int a = 0; a < ROWS_PER_THREAD; ++a) {
    const __local float* row = partial + (lr + a * THREADS_ROW) * THREADS_COL;
    float r = row[0];
    for (int t = 1; t < THREADS_COL; ++t) r = take_max ? fmax(r, row[t]) : r + row[t];
    value[a] = r;
  }
}

// ---------------------------------------------------------------------------------------
// Forward

// scores[r][j] = Q_{q0+r} · K_{c0+j} · scale for this item's entries of keys [c0, c0+n),
// −∞ where masked (key after the query, or beyond key_count). n is padded to whole tiles.
inline void score_chunk(__local float* scores, int score_stride, __local const float* q_tile,
                        __local float* k_tile, const __global float* k, int k_stride, int b,
                        int h, int T, int q0, int c0, int n, int key_count, float scale, int lr,
                        int lc) {
  for (int t0 = 0; t0 < n; t0 += BLOCK_COLS) {
    barrier(CLK_LOCAL_MEM_FENCE);  // k_tile still read by the previous tile (or P V)
    load_vectors(k_tile, BLOCK_COLS, k, k_stride, b, h, T, c0 + t0, key_count);
    barrier(CLK_LOCAL_MEM_FENCE);
    float s[ROWS_PER_THREAD][COLS_PER_THREAD];
    tile_dots(s, q_tile, k_tile, lr, lc);
    for (int a = 0; a < ROWS_PER_THREAD; ++a)
      for (int j = 0; j < COLS_PER_THREAD; ++j) {
        const int row = lr + a * THREADS_ROW, col = t0 + lc + j * THREADS_COL;
        const int query = q0 + row, key = c0 + col;
        const bool allowed = key <= query && key < key_count;
        scores[row * score_stride + col] = allowed ? s[a][j] * scale : -INFINITY;
      }
  }
}

// row_max[a] = max(row_max[a], this item's entries of its rows in the chunk).
inline void update_row_max(float row_max[ROWS_PER_THREAD], __local const float* scores,
                           int score_stride, int n, int lr, int lc) {
  for (int t0 = 0; t0 < n; t0 += BLOCK_COLS)
    for (int a = 0; a < ROWS_PER_THREAD; ++a)
      for (int j = 0; j < COLS_PER_THREAD; ++j) {
        const int row = lr + a * THREADS_ROW, col = t0 + lc + j * THREADS_COL;
        row_max[a] = fmax(row_max[a], scores[row * score_stride + col]);
      }
}

// In place P = exp(S − m) over this item's entries; row_sum[a] += its share of Σ_j P.
inline void exponentiate(__local float* scores, int score_stride, int n,
                         const float row_max[ROWS_PER_THREAD], float row_sum[ROWS_PER_THREAD],
                         int lr, int lc) {
  for (int t0 = 0; t0 < n; t0 += BLOCK_COLS)
    for (int a = 0; a < ROWS_PER_THREAD; ++a)
      for (int j = 0; j < COLS_PER_THREAD; ++j) {
        const int row = lr + a * THREADS_ROW, col = t0 + lc + j * THREADS_COL;
        __local float* s = scores + row * score_stride + col;
        const float p = exp(*s - row_max[a]);
        *s = p;
        row_sum[a] += p;
      }
}

// acc += P V over the chunk's keys [c0, c0 + n).
inline void accumulate_values(float acc[ROWS_PER_THREAD][DIMS_PER_THREAD],
                              __local const float* scores, int score_stride,
                              __local float* v_tile, const __global float* v, int v_stride,
                              int b, int h, int T, int c0, int n, int key_count, int lr, int lc) {
  for (int t0 = 0; t0 < n; t0 += BLOCK_COLS) {
    barrier(CLK_LOCAL_MEM_FENCE);  // v_tile still read by the previous tile (or QKᵀ)
    load_vectors(v_tile, BLOCK_COLS, v, v_stride, b, h, T, c0 + t0, key_count);
    barrier(CLK_LOCAL_MEM_FENCE);
    tile_accumulate(acc, scores + t0, score_stride, v_tile, lr, lc);
  }
}

// grid (⌈T/BLOCK_ROWS⌉·WG_SIZE, H, B), work-group (WG_SIZE). scores: BLOCK_ROWS × (chunk+1)
// floats of __local memory; chunk is a multiple of BLOCK_COLS.
__kernel __attribute__((reqd_work_group_size(WG_SIZE, 1, 1)))
void sdpa_forward(__global float* out, const int out_offset, const int out_stride,
                  __global float* lse,
                  const __global float* q, const int q_offset, const int q_stride,
                  const __global float* k, const int k_offset, const int k_stride,
                  const __global float* v, const int v_offset, const int v_stride,
                  const int T, const float scale, const int chunk, __local float* scores) {
  const int lr = get_local_id(0) / THREADS_COL, lc = get_local_id(0) % THREADS_COL;
  const int q0 = get_group_id(0) * BLOCK_ROWS, h = get_group_id(1), b = get_group_id(2);
  const int H = get_num_groups(1);
  q += q_offset, k += k_offset, v += v_offset, out += out_offset;
  const int key_count = min(T, q0 + BLOCK_ROWS);  // causal: the block's last query's keys
  const bool rows_fit = key_count <= chunk;
  const int score_stride = chunk + 1;

  __local float q_tile[BLOCK_ROWS * VEC_STRIDE];
  __local float kv_tile[BLOCK_COLS * VEC_STRIDE];
  __local float partial[BLOCK_ROWS * THREADS_COL];
  load_vectors(q_tile, BLOCK_ROWS, q, q_stride, b, h, T, q0, T);

  // Pass 1: the row max (on the full-row path the scores stay in place for pass 2).
  float row_max[ROWS_PER_THREAD];
  for (int a = 0; a < ROWS_PER_THREAD; ++a) row_max[a] = -INFINITY;
  for (int c0 = 0; c0 < key_count; c0 += chunk) {
    const int n = round_up_cols(min(chunk, key_count - c0));
    score_chunk(scores, score_stride, q_tile, kv_tile, k, k_stride, b, h, T, q0, c0, n,
                key_count, scale, lr, lc);
    update_row_max(row_max, scores, score_stride, n, lr, lc);
  }
  combine_across_row(row_max, partial, lr, lc, true);

  // Pass 2: P = exp(S − m), its row sums, and P V.
  float row_sum[ROWS_PER_THREAD], acc[ROWS_PER_THREAD][DIMS_PER_THREAD];
  for (int a = 0; a < ROWS_PER_THREAD; ++a) row_sum[a] = 0.f;
  zero_accumulators(acc);
  for (int c0 = 0; c0 < key_count; c0 += chunk) {
    const int n = round_up_cols(min(chunk, key_count - c0));
    if (!rows_fit)
      score_chunk(scores, score_stride, q_tile, kv_tile, k, k_stride, b, h, T, q0, c0, n,
                  key_count, scale, lr, lc);
    exponentiate(scores, score_stride, n, row_max, row_sum, lr, lc);
    accumulate_values(acc, scores, score_stride, kv_tile, v, v_stride, b, h, T, c0, n,
                      key_count, lr, lc);
  }
  combine_across_row(row_sum, partial, lr, lc, false);

  float inverse_sum[ROWS_PER_THREAD];
  for (int a = 0; a < ROWS_PER_THREAD; ++a) inverse_sum[a] = 1.f / row_sum[a];
  store_vectors(out, out_stride, b, h, T, q0, acc, inverse_sum, lr, lc);
  if (lc == 0)
    for (int a = 0; a < ROWS_PER_THREAD; ++a) {
      const int t = q0 + lr + a * THREADS_ROW;
      if (t < T) lse[(size_t)(b * H + h) * T + t] = row_max[a] + log(row_sum[a]);
    }
}

// ---------------------------------------------------------------------------------------
// Backward

// D_i = Σ_c dO_ic O_ic. grid (≥ B·T·H), one work-item per (b, t, h), h fastest, so
// neighbouring items read neighbouring head vectors of one token.
__kernel void sdpa_backward_delta(__global float* delta,
                                  const __global float* dout, const int dout_offset,
                                  const int dout_stride,
                                  const __global float* out, const int out_offset,
                                  const int out_stride, const int T, const int H,
                                  const int count) {
  const int n = get_global_id(0);
  if (n >= count) return;
  const int h = n % H, row = n / H, t = row % T, b = row / T;
  dout += dout_offset + head_offset(b, t, T, dout_stride, h);
  out += out_offset + head_offset(b, t, T, out_stride, h);
  float sum = 0.f;
  for (int c = 0; c < HEAD_SIZE; ++c) sum += dout[c] * out[c];
  delta[(size_t)(b * H + h) * T + t] = sum;
}

// grid (⌈T/BLOCK_ROWS⌉·WG_SIZE, H, B), work-group (WG_SIZE): one query block per group.
__kernel __attribute__((reqd_work_group_size(WG_SIZE, 1, 1)))
void sdpa_backward_dq(__global float* dq, const int dq_offset, const int dq_stride,
                      const __global float* dout, const int dout_offset, const int dout_stride,
                      const __global float* lse, const __global float* delta,
                      const __global float* q, const int q_offset, const int q_stride,
                      const __global float* k, const int k_offset, const int k_stride,
                      const __global float* v, const int v_offset, const int v_stride,
                      const int T, const float scale) {
  const int lr = get_local_id(0) / THREADS_COL, lc = get_local_id(0) % THREADS_COL;
  const int q0 = get_group_id(0) * BLOCK_ROWS, h = get_group_id(1), b = get_group_id(2);
  const int H = get_num_groups(1);
  dq += dq_offset, dout += dout_offset, q += q_offset, k += k_offset, v += v_offset;
  const int key_count = min(T, q0 + BLOCK_ROWS);

  __local float q_tile[BLOCK_ROWS * VEC_STRIDE], do_tile[BLOCK_ROWS * VEC_STRIDE];
  __local float k_tile[BLOCK_COLS * VEC_STRIDE], v_tile[BLOCK_COLS * VEC_STRIDE];
  __local float ds_tile[BLOCK_ROWS * TILE_STRIDE];
  load_vectors(q_tile, BLOCK_ROWS, q, q_stride, b, h, T, q0, T);
  load_vectors(do_tile, BLOCK_ROWS, dout, dout_stride, b, h, T, q0, T);
  float row_lse[ROWS_PER_THREAD], row_delta[ROWS_PER_THREAD], row_scale[ROWS_PER_THREAD];
  for (int a = 0; a < ROWS_PER_THREAD; ++a) {
    const int t = q0 + lr + a * THREADS_ROW;
    const size_t stat = (size_t)(b * H + h) * T + t;
    row_lse[a] = t < T ? lse[stat] : 0.f;
    row_delta[a] = t < T ? delta[stat] : 0.f;
    row_scale[a] = scale;
  }

  float acc[ROWS_PER_THREAD][DIMS_PER_THREAD];
  zero_accumulators(acc);
  for (int t0 = 0; t0 < key_count; t0 += BLOCK_COLS) {
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile's dS K is done with the tiles
    load_vectors(k_tile, BLOCK_COLS, k, k_stride, b, h, T, t0, key_count);
    load_vectors(v_tile, BLOCK_COLS, v, v_stride, b, h, T, t0, key_count);
    barrier(CLK_LOCAL_MEM_FENCE);
    float s[ROWS_PER_THREAD][COLS_PER_THREAD], dp[ROWS_PER_THREAD][COLS_PER_THREAD];
    tile_dots(s, q_tile, k_tile, lr, lc);
    tile_dots(dp, do_tile, v_tile, lr, lc);
    for (int a = 0; a < ROWS_PER_THREAD; ++a)
      for (int j = 0; j < COLS_PER_THREAD; ++j) {
        const int row = lr + a * THREADS_ROW, col = lc + j * THREADS_COL;
        const int query = q0 + row, key = t0 + col;
        const float p = key <= query && key < key_count ? exp(s[a][j] * scale - row_lse[a]) : 0.f;
        ds_tile[row * TILE_STRIDE + col] = p * (dp[a][j] - row_delta[a]);
      }
    barrier(CLK_LOCAL_MEM_FENCE);
    tile_accumulate(acc, ds_tile, TILE_STRIDE, k_tile, lr, lc);
  }
  store_vectors(dq, dq_stride, b, h, T, q0, acc, row_scale, lr, lc);
}

// grid (⌈T/BLOCK_ROWS⌉·WG_SIZE, H, B), work-group (WG_SIZE): one key block per group; its
// queries start at its first key (causal), in tiles of BLOCK_COLS.
__kernel __attribute__((reqd_work_group_size(WG_SIZE, 1, 1)))
void sdpa_backward_dkv(__global float* dk, const int dk_offset, const int dk_stride,
                       __global float* dv, const int dv_offset, const int dv_stride,
                       const __global float* dout, const int dout_offset, const int dout_stride,
                       const __global float* lse, const __global float* delta,
                       const __global float* q, const int q_offset, const int q_stride,
                       const __global float* k, const int k_offset, const int k_stride,
                       const __global float* v, const int v_offset, const int v_stride,
                       const int T, const float scale) {
  const int lr = get_local_id(0) / THREADS_COL, lc = get_local_id(0) % THREADS_COL;
  const int k0 = get_group_id(0) * BLOCK_ROWS, h = get_group_id(1), b = get_group_id(2);
  const int H = get_num_groups(1);
  dk += dk_offset, dv += dv_offset, dout += dout_offset;
  q += q_offset, k += k_offset, v += v_offset;
  lse += (size_t)(b * H + h) * T, delta += (size_t)(b * H + h) * T;

  __local float k_tile[BLOCK_ROWS * VEC_STRIDE], v_tile[BLOCK_ROWS * VEC_STRIDE];
  __local float q_tile[BLOCK_COLS * VEC_STRIDE], do_tile[BLOCK_COLS * VEC_STRIDE];
  __local float p_tile[BLOCK_ROWS * TILE_STRIDE], ds_tile[BLOCK_ROWS * TILE_STRIDE];
  __local float lse_tile[BLOCK_COLS], delta_tile[BLOCK_COLS];
  load_vectors(k_tile, BLOCK_ROWS, k, k_stride, b, h, T, k0, T);
  load_vectors(v_tile, BLOCK_ROWS, v, v_stride, b, h, T, k0, T);

  float dk_acc[ROWS_PER_THREAD][DIMS_PER_THREAD], dv_acc[ROWS_PER_THREAD][DIMS_PER_THREAD];
  zero_accumulators(dk_acc);
  zero_accumulators(dv_acc);
  for (int t0 = k0; t0 < T; t0 += BLOCK_COLS) {
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile's products are done with the tiles
    load_vectors(q_tile, BLOCK_COLS, q, q_stride, b, h, T, t0, T);
    load_vectors(do_tile, BLOCK_COLS, dout, dout_stride, b, h, T, t0, T);
    for (int e = get_local_id(0); e < BLOCK_COLS; e += WG_SIZE) {
      lse_tile[e] = t0 + e < T ? lse[t0 + e] : 0.f;
      delta_tile[e] = t0 + e < T ? delta[t0 + e] : 0.f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    float st[ROWS_PER_THREAD][COLS_PER_THREAD], dpt[ROWS_PER_THREAD][COLS_PER_THREAD];
    tile_dots(st, k_tile, q_tile, lr, lc);   // S_ij as [key j][query i]
    tile_dots(dpt, v_tile, do_tile, lr, lc);  // dP_ij = dO_i · V_j
    for (int a = 0; a < ROWS_PER_THREAD; ++a)
      for (int j = 0; j < COLS_PER_THREAD; ++j) {
        const int row = lr + a * THREADS_ROW, col = lc + j * THREADS_COL;
        const int key = k0 + row, query = t0 + col;
        const float p =
            key <= query && query < T ? exp(st[a][j] * scale - lse_tile[col]) : 0.f;
        p_tile[row * TILE_STRIDE + col] = p;
        ds_tile[row * TILE_STRIDE + col] = p * (dpt[a][j] - delta_tile[col]);
      }
    barrier(CLK_LOCAL_MEM_FENCE);
    tile_accumulate(dv_acc, p_tile, TILE_STRIDE, do_tile, lr, lc);
    tile_accumulate(dk_acc, ds_tile, TILE_STRIDE, q_tile, lr, lc);
  }
  float key_scale[ROWS_PER_THREAD], one[ROWS_PER_THREAD];
  for (int a = 0; a < ROWS_PER_THREAD; ++a) key_scale[a] = scale, one[a] = 1.f;
  store_vectors(dk, dk_stride, b, h, T, k0, dk_acc, key_scale, lr, lc);
  store_vectors(dv, dv_stride, b, h, T, k0, dv_acc, one, lr, lc);
}
