// flash.cl — exact causal softmax attention, tiled as FlashAttention-2 (Dao 2023), forward
// and backward; the core of the exact tiled family: gqa.cl and sliding_window.cl include
// this file with GROUP_SIZE / WINDOWED set (VARIANTS.md: flash, gqa, sliding_window).
//
// Computes, per batch b and query head h (K/V head g = h / GROUP_SIZE), with d = HEAD_SIZE:
//     S_ij = q_i·k_j/√d for allowed pairs (j ≤ i; WINDOWED: also j > i − window),
//     O_i = Σ_j softmax_j(S_ij) v_j,  L_i = log Σ_j exp(S_ij).
// Scores are carried in base 2 (s = S·log2 e, exp2) and L is stored in natural units.
//
// Layouts (the host passes row strides and column offsets, so the kernels read the
// projections in place, no permutes): row t of batch b of head h of Q starts at
//     q + (b·T + t)·q_stride + q_offset + h·d,
// of K and V (head g) at k|v + (b·T + t)·kv_stride + k_offset|v_offset + g·d. flash and
// sliding_window pass the fused (B,T,3C) projection for q, k and v; gqa passes Q (B,T,C)
// and K|V (B,T,2·G·d). O and dO are (B,T,C) with head h at columns h·d. L, delta: (B,H,T).
// Gradients are written with the layout of what they differentiate (dq like q, dk/dv like
// k/v) and overwrite it.
//
// Kernels and work-item mapping (one work-item owns one row; tiles of the other side are
// staged in __local memory, each row's state stays in private registers):
//   <v>_forward        work-group = BR queries of one (b, h); loops over tiles of BC keys
//                      with the online softmax (running max m, sum l, O accumulator);
//                      visits only tiles that intersect the causal (or band) region.
//                      Writes O and L: that is all it keeps for backward (with Q, K, V).
//   <v>_backward_delta one work-item per (b, t, h): delta_i = Σ_c dO_ic·O_ic (= Σ_j P_ij dP_ij).
//   <v>_backward_dkdv  work-group = BKV keys of one (b, g); loops over the GROUP_SIZE query
//                      heads of the group and, for each, over tiles of BQ queries,
//                      recomputing P_ij = exp(S_ij − L_i); accumulates dV_j = Σ_i P_ij dO_i,
//                      dK_j = Σ_i dS_ij q_i/√d, dS_ij = P_ij (dO_i·v_j − delta_i).
//   <v>_backward_dq    work-group = BR queries of one (b, h); loops over key tiles as
//                      forward: dQ_i = Σ_j dS_ij k_j/√d.
// Every gradient is one work-item's sum in a fixed order: no atomics, deterministic. No
// (T,T) buffer exists. Own-row tiles are stored transposed ([d/4][rows] float4) so that
// each work-item reads its own row without bank conflicts; the other side's tiles are
// row-major and read by all work-items at the same address (broadcast).
// Index arithmetic is 32-bit within a batch (the host checks T·stride < 2^31).

#ifndef HEAD_SIZE
#define HEAD_SIZE 64  // d, floats per head (1..128; rows are padded to a multiple of 4)
#endif
#ifndef BR
#define BR 64  // queries per work-group in forward and dQ (= work-group size)
#endif
#ifndef BC
#define BC 32  // keys per tile in forward and dQ (private scores per work-item)
#endif
#ifndef BKV
#define BKV 64  // keys per work-group in dK/dV (= work-group size)
#endif
#ifndef BQ
#define BQ 32  // queries per tile in dK/dV (private scores per work-item)
#endif
#ifndef GROUP_SIZE
#define GROUP_SIZE 1  // query heads per K/V head (gqa: H/G; 1 = multi-head)
#endif
#ifndef WINDOWED
#define WINDOWED 0  // 1: query i sees only keys i − window < j ≤ i (sliding_window)
#endif
#ifndef VARIANT_KERNEL
#define VARIANT_KERNEL(name) flash_##name  // kernel names carry the variant, for profiles
#endif

#define D4 ((HEAD_SIZE + 3) / 4)  // float4s per (zero-padded) row
#define DP (4 * D4)               // floats per padded row

// ---- masks and tile ranges ----

// Whether query i may attend to key j (i < T: rows past the end attend to nothing).
inline bool allowed(int i, int j, int T, int window) {
#if WINDOWED
  return j <= i && i < T && j > i - window;
#else
  (void)window;
  return j <= i && i < T;
#endif
}

// Whether every pair of queries [i0, i1] × keys [j0, j1] is allowed: then no mask is needed.
inline bool tile_unmasked(int i0, int i1, int j0, int j1, int T, int window) {
#if WINDOWED
  return j1 <= i0 && i1 < T && j0 > i1 - window;
#else
  (void)j0;
  (void)window;
  return j1 <= i0 && i1 < T;
#endif
}

// First key any of the queries [i0, ...] needs.
inline int first_key(int i0, int window) {
#if WINDOWED
  return max(0, i0 - window + 1);
#else
  (void)i0;
  (void)window;
  return 0;
#endif
}

// One past the last query that any key of [j0, j1] is attended by.
inline int query_end(int j1, int T, int window) {
#if WINDOWED
  return min(T, j1 + window);
#else
  (void)j1;
  (void)window;
  return T;
#endif
}

// ---- staging into __local memory ----

// Rows [row0, row0 + rows) of one head (head: its row 0) into tile[r·D4 + c4], zero past T
// and past HEAD_SIZE. Consecutive work-items read consecutive floats of a row (coalesced).
inline void stage_rows(__local float4* tile, const int rows, __global const float* head,
                       const int row_stride, const int row0, const int T, const int lid,
                       const int n_items) {
  __local float* t = (__local float*)tile;
  for (int e = lid; e < rows * DP; e += n_items) {
    const int r = e / DP, c = e - r * DP, row = row0 + r;
    t[e] = (row < T && c < HEAD_SIZE) ? head[row * row_stride + c] : 0.f;
  }
}

// The same, transposed to tile[c4·rows + r]: work-item r then reads its own row's float4s
// at consecutive addresses across work-items.
inline void stage_rows_transposed(__local float4* tile, const int rows,
                                  __global const float* head, const int row_stride,
                                  const int row0, const int T, const int lid, const int n_items) {
  __local float* t = (__local float*)tile;
  for (int e = lid; e < rows * DP; e += n_items) {
    const int r = e / DP, c = e - r * DP, row = row0 + r;
    t[((c >> 2) * rows + r) * 4 + (c & 3)] =
        (row < T && c < HEAD_SIZE) ? head[row * row_stride + c] : 0.f;
  }
}

inline float dot4(const float4 a, const float4 b, const float acc) {
  return fma(a.x, b.x, fma(a.y, b.y, fma(a.z, b.z, fma(a.w, b.w, acc))));
}

// Writes a private row, scaled, to dst[0 .. HEAD_SIZE).
inline void store_row(__global float* dst, const float4* x, const float scale) {
#pragma unroll
  for (int c4 = 0; c4 < D4; ++c4) {
    const float4 value = x[c4] * scale;
    if (4 * c4 + 0 < HEAD_SIZE) dst[4 * c4 + 0] = value.x;
    if (4 * c4 + 1 < HEAD_SIZE) dst[4 * c4 + 1] = value.y;
    if (4 * c4 + 2 < HEAD_SIZE) dst[4 * c4 + 2] = value.z;
    if (4 * c4 + 3 < HEAD_SIZE) dst[4 * c4 + 3] = value.w;
  }
}

// log2(e)/√d: S·log2 e from a raw dot product.
#define SCORE_SCALE_LOG2 (M_LOG2E_F * rsqrt((float)HEAD_SIZE))

// ---- forward ----

__kernel __attribute__((reqd_work_group_size(BR, 1, 1))) void VARIANT_KERNEL(forward)(
    __global float* out, __global float* lse, __global const float* q, const int q_stride,
    const int q_offset, __global const float* k, __global const float* v, const int kv_stride,
    const int k_offset, const int v_offset, const int T, const int n_head, const int window) {
  __local float4 q_tile[D4 * BR];  // own rows, transposed
  __local float4 k_tile[BC * D4];
  __local float4 v_tile[BC * D4];
  const int lid = get_local_id(0);
  const int q0 = (get_num_groups(0) - 1 - get_group_id(0)) * BR;  // longest rows first
  const int b = get_group_id(1) / n_head, h = get_group_id(1) % n_head, g = h / GROUP_SIZE;
  const int i = q0 + lid;
  const size_t batch_q = (size_t)b * T * q_stride, batch_kv = (size_t)b * T * kv_stride;
  __global const float* k_head = k + batch_kv + k_offset + g * HEAD_SIZE;
  __global const float* v_head = v + batch_kv + v_offset + g * HEAD_SIZE;
  stage_rows_transposed(q_tile, BR, q + batch_q + q_offset + h * HEAD_SIZE, q_stride, q0, T,
                        lid, BR);

  float4 o[D4];
#pragma unroll
  for (int c4 = 0; c4 < D4; ++c4) o[c4] = (float4)(0.f);
  float m = -FLT_MAX, l = 0.f;  // finite start: a fully masked tile leaves them unchanged
  const int k_end = min(T, q0 + BR);
  for (int k0 = first_key(q0, window); k0 < k_end; k0 += BC) {
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile is consumed
    stage_rows(k_tile, BC, k_head, kv_stride, k0, T, lid, BR);
    stage_rows(v_tile, BC, v_head, kv_stride, k0, T, lid, BR);
    barrier(CLK_LOCAL_MEM_FENCE);

    float s[BC];
#pragma unroll
    for (int j = 0; j < BC; ++j) s[j] = 0.f;
    for (int c4 = 0; c4 < D4; ++c4) {
      const float4 qv = q_tile[c4 * BR + lid];
#pragma unroll
      for (int j = 0; j < BC; ++j) s[j] = dot4(qv, k_tile[j * D4 + c4], s[j]);
    }
    const bool full = tile_unmasked(q0, q0 + BR - 1, k0, k0 + BC - 1, T, window);
    float tile_max = -FLT_MAX;
#pragma unroll
    for (int j = 0; j < BC; ++j) {
      s[j] = (full || allowed(i, k0 + j, T, window)) ? s[j] * SCORE_SCALE_LOG2 : -INFINITY;
      tile_max = fmax(tile_max, s[j]);
    }
    // Online softmax: rescale what was accumulated under the old max.
    const float m_new = fmax(m, tile_max), alpha = exp2(m - m_new);
    l *= alpha;
#pragma unroll
    for (int c4 = 0; c4 < D4; ++c4) o[c4] *= alpha;
#pragma unroll
    for (int j = 0; j < BC; ++j) {
      const float p = exp2(s[j] - m_new);
      l += p;
#pragma unroll
      for (int c4 = 0; c4 < D4; ++c4) o[c4] = fma((float4)(p), v_tile[j * D4 + c4], o[c4]);
    }
    m = m_new;
  }
  if (i < T) {
    __global float* out_row = out + ((size_t)b * T + i) * (n_head * HEAD_SIZE) + h * HEAD_SIZE;
    store_row(out_row, o, 1.f / l);
    lse[((size_t)b * n_head + h) * T + i] = (m + log2(l)) * M_LN2_F;
  }
}

// ---- backward ----

__kernel void VARIANT_KERNEL(backward_delta)(__global float* delta, __global const float* dout,
                                             __global const float* out, const int B, const int T,
                                             const int n_head) {
  const int row = get_global_id(0);  // (b·T + t)·n_head + h: rows of d contiguous floats
  if (row >= B * T * n_head) return;
  const int h = row % n_head, bt = row / n_head, b = bt / T, t = bt % T;
  __global const float* o = out + (size_t)row * HEAD_SIZE;
  __global const float* dO = dout + (size_t)row * HEAD_SIZE;
  float acc = 0.f;
  for (int c = 0; c < HEAD_SIZE; ++c) acc = fma(dO[c], o[c], acc);
  delta[((size_t)b * n_head + h) * T + t] = acc;
}

__kernel __attribute__((reqd_work_group_size(BKV, 1, 1))) void VARIANT_KERNEL(backward_dkdv)(
    __global float* dkv, __global const float* q, const int q_stride, const int q_offset,
    __global const float* k, __global const float* v, const int kv_stride, const int k_offset,
    const int v_offset, __global const float* dout, __global const float* lse,
    __global const float* delta, const int T, const int n_head, const int window) {
  __local float4 k_tile[D4 * BKV];  // own rows, transposed
  __local float4 v_tile[D4 * BKV];
  __local float4 q_tile[BQ * D4];
  __local float4 do_tile[BQ * D4];
  __local float lse2_tile[BQ];  // L_i·log2 e
  __local float delta_tile[BQ];
  const int n_kv_head = n_head / GROUP_SIZE;
  const int lid = get_local_id(0);
  const int k0 = get_group_id(0) * BKV;  // first key blocks have the most queries: first
  const int b = get_group_id(1) / n_kv_head, g = get_group_id(1) % n_kv_head;
  const int j = k0 + lid;
  const size_t batch_q = (size_t)b * T * q_stride, batch_kv = (size_t)b * T * kv_stride;
  const size_t batch_o = (size_t)b * T * (n_head * HEAD_SIZE);
  stage_rows_transposed(k_tile, BKV, k + batch_kv + k_offset + g * HEAD_SIZE, kv_stride, k0, T,
                        lid, BKV);
  stage_rows_transposed(v_tile, BKV, v + batch_kv + v_offset + g * HEAD_SIZE, kv_stride, k0, T,
                        lid, BKV);

  float4 dk[D4], dv[D4];
#pragma unroll
  for (int c4 = 0; c4 < D4; ++c4) dk[c4] = dv[c4] = (float4)(0.f);
  const int i_end = query_end(k0 + BKV - 1, T, window);
  // dK_g, dV_g sum over the group's query heads, in this fixed order.
  for (int h = g * GROUP_SIZE; h < (g + 1) * GROUP_SIZE; ++h) {
    __global const float* q_head = q + batch_q + q_offset + h * HEAD_SIZE;
    __global const float* do_head = dout + batch_o + h * HEAD_SIZE;
    __global const float* lse_row = lse + ((size_t)b * n_head + h) * T;
    __global const float* delta_row = delta + ((size_t)b * n_head + h) * T;
    for (int i0 = k0; i0 < i_end; i0 += BQ) {
      barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile is consumed
      stage_rows(q_tile, BQ, q_head, q_stride, i0, T, lid, BKV);
      stage_rows(do_tile, BQ, do_head, n_head * HEAD_SIZE, i0, T, lid, BKV);
      for (int r = lid; r < BQ; r += BKV) {
        const bool in = i0 + r < T;
        lse2_tile[r] = in ? lse_row[i0 + r] * M_LOG2E_F : 0.f;
        delta_tile[r] = in ? delta_row[i0 + r] : 0.f;
      }
      barrier(CLK_LOCAL_MEM_FENCE);

      float s[BQ], dp[BQ];  // S_ij and dP_ij = dO_i·v_j for this key j
#pragma unroll
      for (int r = 0; r < BQ; ++r) s[r] = dp[r] = 0.f;
      for (int c4 = 0; c4 < D4; ++c4) {
        const float4 kv = k_tile[c4 * BKV + lid], vv = v_tile[c4 * BKV + lid];
#pragma unroll
        for (int r = 0; r < BQ; ++r) {
          s[r] = dot4(q_tile[r * D4 + c4], kv, s[r]);
          dp[r] = dot4(do_tile[r * D4 + c4], vv, dp[r]);
        }
      }
      const bool full = tile_unmasked(i0, i0 + BQ - 1, k0, k0 + BKV - 1, T, window);
#pragma unroll
      for (int r = 0; r < BQ; ++r) {
        const float p = (full || allowed(i0 + r, j, T, window))
                            ? exp2(s[r] * SCORE_SCALE_LOG2 - lse2_tile[r])
                            : 0.f;
        const float ds = p * (dp[r] - delta_tile[r]);
#pragma unroll
        for (int c4 = 0; c4 < D4; ++c4) {
          dv[c4] = fma((float4)(p), do_tile[r * D4 + c4], dv[c4]);
          dk[c4] = fma((float4)(ds), q_tile[r * D4 + c4], dk[c4]);
        }
      }
    }
  }
  if (j < T) {
    __global float* row = dkv + batch_kv + (size_t)j * kv_stride + g * HEAD_SIZE;
    __global float* dk_row = row + k_offset;
    __global float* dv_row = row + v_offset;
    store_row(dk_row, dk, rsqrt((float)HEAD_SIZE));
    store_row(dv_row, dv, 1.f);
  }
}

__kernel __attribute__((reqd_work_group_size(BR, 1, 1))) void VARIANT_KERNEL(backward_dq)(
    __global float* dq, __global const float* q, const int q_stride, const int q_offset,
    __global const float* k, __global const float* v, const int kv_stride, const int k_offset,
    const int v_offset, __global const float* dout, __global const float* lse,
    __global const float* delta, const int T, const int n_head, const int window) {
  __local float4 q_tile[D4 * BR];  // own rows, transposed
  __local float4 do_tile[D4 * BR];
  __local float4 k_tile[BC * D4];
  __local float4 v_tile[BC * D4];
  const int lid = get_local_id(0);
  const int q0 = (get_num_groups(0) - 1 - get_group_id(0)) * BR;  // longest rows first
  const int b = get_group_id(1) / n_head, h = get_group_id(1) % n_head, g = h / GROUP_SIZE;
  const int i = q0 + lid;
  const size_t batch_q = (size_t)b * T * q_stride, batch_kv = (size_t)b * T * kv_stride;
  const size_t batch_o = (size_t)b * T * (n_head * HEAD_SIZE);
  __global const float* k_head = k + batch_kv + k_offset + g * HEAD_SIZE;
  __global const float* v_head = v + batch_kv + v_offset + g * HEAD_SIZE;
  stage_rows_transposed(q_tile, BR, q + batch_q + q_offset + h * HEAD_SIZE, q_stride, q0, T,
                        lid, BR);
  stage_rows_transposed(do_tile, BR, dout + batch_o + h * HEAD_SIZE, n_head * HEAD_SIZE, q0, T,
                        lid, BR);
  const size_t stat = ((size_t)b * n_head + h) * T + i;
  const float lse2 = i < T ? lse[stat] * M_LOG2E_F : 0.f;
  const float delta_i = i < T ? delta[stat] : 0.f;

  float4 acc[D4];
#pragma unroll
  for (int c4 = 0; c4 < D4; ++c4) acc[c4] = (float4)(0.f);
  const int k_end = min(T, q0 + BR);
  for (int k0 = first_key(q0, window); k0 < k_end; k0 += BC) {
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile is consumed
    stage_rows(k_tile, BC, k_head, kv_stride, k0, T, lid, BR);
    stage_rows(v_tile, BC, v_head, kv_stride, k0, T, lid, BR);
    barrier(CLK_LOCAL_MEM_FENCE);

    float s[BC], dp[BC];  // S_ij and dP_ij = dO_i·v_j for this query i
#pragma unroll
    for (int j = 0; j < BC; ++j) s[j] = dp[j] = 0.f;
    for (int c4 = 0; c4 < D4; ++c4) {
      const float4 qv = q_tile[c4 * BR + lid], dov = do_tile[c4 * BR + lid];
#pragma unroll
      for (int j = 0; j < BC; ++j) {
        s[j] = dot4(qv, k_tile[j * D4 + c4], s[j]);
        dp[j] = dot4(dov, v_tile[j * D4 + c4], dp[j]);
      }
    }
    const bool full = tile_unmasked(q0, q0 + BR - 1, k0, k0 + BC - 1, T, window);
#pragma unroll
    for (int j = 0; j < BC; ++j) {
      const float p = (full || allowed(i, k0 + j, T, window))
                          ? exp2(s[j] * SCORE_SCALE_LOG2 - lse2)
                          : 0.f;
      const float ds = p * (dp[j] - delta_i);
#pragma unroll
      for (int c4 = 0; c4 < D4; ++c4) acc[c4] = fma((float4)(ds), k_tile[j * D4 + c4], acc[c4]);
    }
  }
  if (i < T) {
    __global float* dq_row = dq + batch_q + (size_t)i * q_stride + q_offset + h * HEAD_SIZE;
    store_row(dq_row, acc, rsqrt((float)HEAD_SIZE));
  }
}
