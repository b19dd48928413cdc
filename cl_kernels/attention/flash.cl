// flash.cl — exact causal softmax attention, tiled as FlashAttention-2 (Dao 2023), forward
// and backward; the core of the exact tiled family: gqa.cl, sliding_window.cl and mla.cl
// include this file (gqa with GROUP_SIZE, sliding_window with WINDOWED set; VARIANTS.md).
//
// Computes, per batch b and query head h (K/V head g = h / GROUP_SIZE), with d = HEAD_SIZE:
//     S_ij = q_i·k_j/√d for allowed pairs (j ≤ i; WINDOWED: also j > i − window),
//     O_i = Σ_j softmax_j(S_ij) v_j,  L_i = log Σ_j exp(S_ij).
// Scores are carried in base 2: P = exp2(q·k·(log2 e/√d) − m), the scale fused into the
// exponent's multiply-add (the forward keeps its running max m in q·k units); L is stored in
// natural units.
//
// Layouts (the host passes row strides and column offsets, so the kernels read the
// projections in place, no permutes): row t of batch b of head h of Q starts at
//     q + (b·T + t)·q_stride + q_offset + h·d,
// of K and V (head g) at k|v + (b·T + t)·kv_stride + k_offset|v_offset + g·d. flash and
// sliding_window pass the fused (B,T,3C) projection for q, k and v; gqa passes Q (B,T,C)
// and K|V (B,T,2·G·d), mla Q (B,T,C) and its up-projected K|V (B,T,2C). O and dO are (B,T,C) with head h at columns h·d. L, delta: (B,H,T).
// Gradients are written with the layout of what they differentiate (dq like q, dk/dv like
// k/v) and overwrite it.
//
// Kernels. A work-group owns a block of rows of one (b, head) and loops over tiles of the
// other side, staged in __local memory (through registers: all of a tile's global loads,
// then its local stores); only the tiles that intersect the causal (or band) region are
// visited:
//   <v>_forward        BR queries; tiles of BC keys; online softmax (running max m, sum l,
//                      O accumulator in registers; P of a tile overwrites its K in local
//                      memory). Writes O and L: all it keeps for backward (besides Q, K, V).
//   <v>_backward_delta one work-item per (b, t, h): delta_i = Σ_c dO_ic·O_ic (= Σ_j P_ij dP_ij).
//   <v>_backward_dkdv  BB keys of one K/V head and one query head; loops over tiles of BB
//                      queries, recomputing P_ij = exp(S_ij − L_i): dV_j += Σ_i P_ij dO_i,
//                      dK_j += Σ_i dS_ij q_i/√d, dS_ij = P_ij (dO_i·v_j − delta_i). With
//                      GROUP_SIZE 1 it writes dK, dV; with larger groups each query head
//                      writes its share to a (B,T,H,2·d) scratch, and
//   <v>_backward_dkdv_sum adds the GROUP_SIZE shares of each K/V head in head order. (One
//                      work-group looping over the group's heads would be GROUP_SIZE times
//                      longer than flash's longest, and the causal triangle's first key
//                      blocks set the kernel's end: gqa's dK/dV took 1.38× flash's.)
//   <v>_backward_dq    BB queries; tiles of BB keys: dQ_i = Σ_j dS_ij k_j/√d.
//   FUSED_DQ=1 (the fused backward, FlashAttention-2's): no dQ kernel. <v>_backward_delta
//                      also zeroes dQ, and <v>_backward_dkdv adds each tile's dS_ij k_j/√d
//                      to dQ_i with float atomics (atomic_add.cl): five products a tile
//                      pair instead of seven (the dQ kernel recomputes S and dP), but dQ's
//                      sums land in run-dependent order — not bitwise reproducible.
// Work-item mapping (register tiling, as in a GEMM): the work-items of a group form NR row
// blocks × NG column groups (forward: NR = BR/TM, NG = BC/TN; backward: NR = BB/TMB,
// NG = BB/TNB). Item (rb, cg) owns the rows rb, rb+NR, rb+2·NR, ... (TM of them; TMB in
// backward) and computes their scores against the tile columns cg, cg+NG, cg+2·NG, ...
// (TN; TNB); it then updates its rows' accumulators (O, dQ, dK, dV) in the head columns
// (float4s) cg, cg+NG, ..., reading the tile's P or dS back from __local memory. Per staged
// float4, TM + TN local loads feed TM·TN·4 multiply-adds.
// Why rows are interleaved (rb + NR·r, not rb·TM + r): the items of a warp then read
// consecutive staged rows, which the odd row stride RS puts in different banks; with
// blocks of TM adjacent rows they read rows TM apart, which collide (8 column groups,
// hence 4 row blocks a warp: TM = 4 two ways, TM = 8 four ways, on every row-operand load).
// Slot tiles (P, dS, and the row maxima and sums exchanged between column groups) hold
// one row per tile column or column group, in which item rb's TM rows are TM adjacent
// floats ("slots" rb·TM ..): each item writes and reads its rows as float4s (TM a multiple
// of 4), and the odd float4 stride of a slot row keeps the writes of a warp in different
// banks. Row maxima and sums are combined across the NG items of a row block in a fixed
// order. Without FUSED_DQ every result is a fixed-order sum: no atomics, deterministic.
// No (T,T) buffer.
// Staged rows are padded by one float4 (RS) so that the items' float4 loads of different
// rows fall in different banks; head rows are zero-padded to D4P float4s (a multiple of
// the column groups), so padding adds nothing to dot products and is never stored.
// Index arithmetic is 32-bit within a batch (the host checks T·stride < 2^31).

#ifndef HEAD_SIZE
#define HEAD_SIZE 64  // d, floats per head (1..128)
#endif
#ifndef TM
#define TM 4  // forward: rows per work-item
#endif
#ifndef BR
#define BR 64  // forward: queries per work-group (multiple of TM)
#endif
#ifndef BC
#define BC 32  // forward: keys per tile (multiple of TN)
#endif
#ifndef TN
#define TN 8  // forward: tile columns per work-item; BC/TN column groups (a power of 2)
#endif
#ifndef BB
#define BB 32  // backward: rows per work-group and per tile, dQ and dK/dV (multiple of TMB)
#endif
#ifndef TNB
#define TNB 4  // backward: tile columns per work-item; BB/TNB column groups (a power of 2)
#endif
#ifndef TMB
#define TMB TM  // backward: rows per work-item (BB a multiple of it)
#endif
#ifndef GROUP_SIZE
#define GROUP_SIZE 1  // query heads per K/V head (gqa: H/G; 1 = multi-head)
#endif
#ifndef WINDOWED
#define WINDOWED 0  // 1: query i sees only keys i − window < j ≤ i (sliding_window)
#endif
#ifndef FUSED_DQ
#define FUSED_DQ 0  // 1: dK/dV kernel also accumulates dQ, by atomics (see above)
#endif
#ifndef VARIANT_KERNEL
#define VARIANT_KERNEL(name) flash_##name  // kernel names carry the variant, for profiles
#endif
#include "atomic_add.cl"       // add4_to_global, add_to_global (FUSED_DQ)
#include "work_group_size.cl"  // WORK_GROUP_SIZE: declared unless registers are capped

#define MAX2(a, b) ((a) > (b) ? (a) : (b))
#define NG_F (BC / TN)                         // forward column groups
#define NG_B (BB / TNB)                        // backward column groups
#define NR_F (BR / TM)                         // forward row blocks
#define NR_B (BB / TMB)                        // backward row blocks
#define ITEMS_F (NR_F * NG_F)                  // forward work-group size
#define ITEMS_B (NR_B * NG_B)                  // backward work-group size
#define NG_MAX MAX2(NG_F, NG_B)
#define D4P (((HEAD_SIZE + 3) / 4 + NG_MAX - 1) / NG_MAX * NG_MAX)  // float4s per head row
#define RS (D4P + 1)                           // float4 stride of staged rows
#define OC_F (D4P / NG_F)                      // accumulator float4s per row, forward
#define OC_B (D4P / NG_B)                      // accumulator float4s per row, backward
#define STAGED(rows, items) (((rows) * D4P + (items) - 1) / (items))  // float4s an item stages
#define STAGED_Q_F STAGED(BR, ITEMS_F)            // float4s an item stages of a Q tile, forward
#define STAGED_KV_F STAGED(BC, ITEMS_F)           // ... of a K or V tile, forward
#define STAGED_B STAGED(BB, ITEMS_B)              // ... of any tile, backward
#define STATS_B ((BB + ITEMS_B - 1) / ITEMS_B)    // L and delta values an item stages, backward
#define SLOTS4(n) ((((n) + 3) / 4) | 1)        // float4s per slot-tile row of n slots: odd
#define PS4_F SLOTS4(BR)                       // forward slot rows: BR query slots
#define PS4_B SLOTS4(BB)                       // backward slot rows: BB own-row slots

// log2(e)/√d: S·log2 e from a raw dot product.
#define SCORE_SCALE_LOG2 (M_LOG2E_F * rsqrt((float)HEAD_SIZE))

// 2^x for P and the rescale factors (x ≤ 0 up to rounding where it counts). NVIDIA lowers
// exp2 to its approximate ex2 plus a fix-up for subnormal results (FSETP and two predicated
// FMULs: 60 of a forward tile's ~2700 instructions); native_exp2 leaves the compiler free
// to drop it, flushing such results to 0. A flushed term is below 2^-126 while every row
// sum holds a term near 1 (its maximum's), so sums, O and the gradients do not change by a
// representable amount (except a key all of whose terms are that small).
#define EXP2(x) native_exp2(x)

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

// Sets to `masked` the entries of an item's tm × tn block of scores whose pair is not
// allowed: entry (r, c) pairs row row0 + nr·r with column col0 + ng·c, the rows being
// queries, or keys when keys_are_rows (the dK/dV kernel's Sᵀ).
inline void mask_block(float* s, const int tm, const int tn, const int nr, const int ng,
                       const int row0, const int col0, const int keys_are_rows, const int T,
                       const int window, const float masked) {
#pragma unroll
  for (int r = 0; r < tm; ++r)
#pragma unroll
    for (int c = 0; c < tn; ++c) {
      const int row = row0 + nr * r, col = col0 + ng * c;
      if (!(keys_are_rows ? allowed(col, row, T, window) : allowed(row, col, T, window)))
        s[r * tn + c] = masked;
    }
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

// One past the last query that any key of [.., j1] is attended by.
inline int query_end(int j1, int T, int window) {
#if WINDOWED
  return min(T, j1 + window);
#else
  (void)j1;
  (void)window;
  return T;
#endif
}

// ---- staging and register tiles ----

// Float4 c4 of row `row` of one head (head: its row 0), zero past T and past HEAD_SIZE.
// With HEAD_SIZE a multiple of 4, rows start 16-byte aligned (the host checks that strides
// and offsets are multiples of 4: flash_core.cpp), so a float4 is one 128-bit load; vload4
// assumes only 4-byte alignment, and NVIDIA's compiler issued four 32-bit loads for it.
inline float4 head_float4(__global const float* head, const int row_stride, const int row,
                          const int c4, const int T) {
  float4 value = (float4)(0.f);
  if (row < T) {
    __global const float* src = head + row * row_stride + 4 * c4;
#if HEAD_SIZE % 4 == 0
    if (4 * D4P == HEAD_SIZE || 4 * c4 < HEAD_SIZE) value = *(__global const float4*)src;
#else
    if (4 * c4 + 0 < HEAD_SIZE) value.x = src[0];
    if (4 * c4 + 1 < HEAD_SIZE) value.y = src[1];
    if (4 * c4 + 2 < HEAD_SIZE) value.z = src[2];
    if (4 * c4 + 3 < HEAD_SIZE) value.w = src[3];
#endif
  }
  return value;
}

// Rows [row0, row0 + rows) of one head into tile[r·RS + c4], in two steps so that a caller
// issues the global loads of several tiles (K and V) before the first local store: one
// global-memory latency per tile rather than one per float4 or per staged tile.
// load_rows: item lid's float4s f = lid + e·n_items (row f / D4P, column f % D4P) into
// staged[e]; consecutive items read consecutive float4s of a row (coalesced).
// store_rows: staged[e] to the tile. rows and n_items are compile-time constants at each
// call, so the loops unroll and the f < count test folds when n_items divides the count.
inline void load_rows(float4* staged, const int rows, __global const float* head,
                      const int row_stride, const int row0, const int T, const int lid,
                      const int n_items) {
  const int count = rows * D4P;
#pragma unroll
  for (int e = 0; e < (count + n_items - 1) / n_items; ++e) {
    const int f = lid + e * n_items, r = f / D4P;
    if (count % n_items == 0 || f < count)
      staged[e] = head_float4(head, row_stride, row0 + r, f - r * D4P, T);
  }
}

inline void store_rows(__local float4* tile, const int rows, const float4* staged, const int lid,
                       const int n_items) {
  const int count = rows * D4P;
#pragma unroll
  for (int e = 0; e < (count + n_items - 1) / n_items; ++e) {
    const int f = lid + e * n_items, r = f / D4P;
    if (count % n_items == 0 || f < count) tile[r * RS + f - r * D4P] = staged[e];
  }
}

inline float dot4(const float4 a, const float4 b, const float acc) {
  return fma(a.x, b.x, fma(a.y, b.y, fma(a.z, b.z, fma(a.w, b.w, acc))));
}

// s[r·tn + c] = rows[rb + nr·r] · cols[cg + ng·c] for r < tm, c < tn: one work-item's block
// of a (rows × cols) product of staged tiles. tm, tn, nr and ng are compile-time constants
// at each call. The tn column float4s stay in registers while the row float4s stream by.
// Loads address from the item's base pointers (row0, col0) plus constants: indexed from the
// tile start, NVIDIA's compiler recomputed each load's address (LEA, IADD3: a sixth of the
// loop's instructions). Unrolled 4× (D4P = 16 at d = 64): one loop step per 4 float4s.
inline void block_dots(float* s, const int tm, const int tn, const int nr, const int ng,
                       __local const float4* rows, const int rb, __local const float4* cols,
                       const int cg) {
  __local const float4* const row0 = rows + rb * RS;
  __local const float4* const col0 = cols + cg * RS;
#pragma unroll
  for (int e = 0; e < tm * tn; ++e) s[e] = 0.f;
#pragma unroll 4
  for (int c4 = 0; c4 < D4P; ++c4) {
    float4 b[MAX2(TN, TNB)];
#pragma unroll
    for (int c = 0; c < tn; ++c) b[c] = col0[ng * c * RS + c4];
#pragma unroll
    for (int r = 0; r < tm; ++r) {
      const float4 a = row0[nr * r * RS + c4];
#pragma unroll
      for (int c = 0; c < tn; ++c) s[r * tn + c] = dot4(a, b[c], s[r * tn + c]);
    }
  }
}

// Slot-tile row `row`: x[0..n) to / from slots slot0 .. slot0+n−1, as float4s when n is a
// multiple of 4 (slot0 is a multiple of n); n is a compile-time constant at each call.
inline void store_slots(__local float4* row, const int slot0, const float* x, const int n) {
  if (n % 4 == 0) {
#pragma unroll
    for (int e = 0; e < n / 4; ++e)
      row[slot0 / 4 + e] = (float4)(x[4 * e], x[4 * e + 1], x[4 * e + 2], x[4 * e + 3]);
  } else {
#pragma unroll
    for (int e = 0; e < n; ++e) ((__local float*)row)[slot0 + e] = x[e];
  }
}

inline void load_slots(float* x, __local const float4* row, const int slot0, const int n) {
  if (n % 4 == 0) {
#pragma unroll
    for (int e = 0; e < n / 4; ++e) {
      const float4 v = row[slot0 / 4 + e];
      x[4 * e] = v.x, x[4 * e + 1] = v.y, x[4 * e + 2] = v.z, x[4 * e + 3] = v.w;
    }
  } else {
#pragma unroll
    for (int e = 0; e < n; ++e) x[e] = ((__local const float*)row)[slot0 + e];
  }
}

// acc[r·oc + c] += Σ_j weights[row j, slot rb·tm + r] · vecs[j·RS + cg + ng·c] over the n tile
// rows j (weights: a slot tile of ps4 float4s a row): an item's rows of (weights tile)ᵀ ·
// (staged tile), in its own head columns. Addresses and unrolling as in block_dots.
inline void block_accumulate(float4* acc, const int tm, const int oc, const int ng, const int n,
                             __local const float4* weights, const int ps4, const int rb,
                             __local const float4* vecs, const int cg) {
  __local const float4* const vec0 = vecs + cg;
#pragma unroll 4
  for (int j = 0; j < n; ++j) {
    float w[MAX2(TM, TMB)];
    load_slots(w, weights + j * ps4, rb * tm, tm);
#pragma unroll
    for (int c = 0; c < oc; ++c) {
      const float4 v = vec0[j * RS + ng * c];
#pragma unroll
      for (int r = 0; r < tm; ++r) acc[r * oc + c] = fma((float4)(w[r]), v, acc[r * oc + c]);
    }
  }
}

// Writes an item's head columns of one row (acc[c] → float4 column cg + ng·c), scaled.
inline void store_columns(__global float* row, const float4* acc, const int oc, const int ng,
                          const int cg, const float scale) {
#pragma unroll
  for (int c = 0; c < oc; ++c) {
    const int c4 = cg + ng * c;
    const float4 value = acc[c] * scale;
#if HEAD_SIZE % 4 == 0
    if (4 * c4 < HEAD_SIZE) vstore4(value, 0, row + 4 * c4);
#else
    if (4 * c4 + 0 < HEAD_SIZE) row[4 * c4 + 0] = value.x;
    if (4 * c4 + 1 < HEAD_SIZE) row[4 * c4 + 1] = value.y;
    if (4 * c4 + 2 < HEAD_SIZE) row[4 * c4 + 2] = value.z;
    if (4 * c4 + 3 < HEAD_SIZE) row[4 * c4 + 3] = value.w;
#endif
  }
}

#if FUSED_DQ
// Adds an item's head columns of one row (acc[c] → float4 column cg + ng·c), scaled, with
// atomics: other work-groups add to the same row concurrently. With HEAD_SIZE a multiple of
// 4 rows start 16-byte aligned (as head_float4 says), so a float4 is one vector add.
inline void add_columns(__global float* row, const float4* acc, const int oc, const int ng,
                        const int cg, const float scale) {
#pragma unroll
  for (int c = 0; c < oc; ++c) {
    const int c4 = cg + ng * c;
    const float4 value = acc[c] * scale;
#if HEAD_SIZE % 4 == 0
    if (4 * c4 < HEAD_SIZE) add4_to_global(row + 4 * c4, value);
#else
    if (4 * c4 + 0 < HEAD_SIZE) add_to_global(row + 4 * c4 + 0, value.x);
    if (4 * c4 + 1 < HEAD_SIZE) add_to_global(row + 4 * c4 + 1, value.y);
    if (4 * c4 + 2 < HEAD_SIZE) add_to_global(row + 4 * c4 + 2, value.z);
    if (4 * c4 + 3 < HEAD_SIZE) add_to_global(row + 4 * c4 + 3, value.w);
#endif
  }
}
#endif

// ---- forward ----

__kernel WORK_GROUP_SIZE(ITEMS_F) void VARIANT_KERNEL(forward)(
    __global float* out, __global float* lse, __global const float* q, const int q_stride,
    const int q_offset, __global const float* k, __global const float* v, const int kv_stride,
    const int k_offset, const int v_offset, const int T, const int n_head, const int window) {
  __local float4 q_tile[BR * RS];
  __local float4 v_tile[BC * RS];
  // K of the tile, then, once every item has its scores (the barrier after the maxima),
  // P of the tile, a slot row per key: sharing saves local memory for more work-groups.
  __local float4 kp_tile[BC * MAX2(RS, PS4_F)];
  __local float4* const k_tile = kp_tile;
  __local float4* const p_tile = kp_tile;
  __local float4 partial[NG_F * PS4_F];  // a slot row per column group: maxima, then sums
  const int lid = get_local_id(0), rb = lid / NG_F, cg = lid % NG_F, slot0 = rb * TM;
  const int q0 = (get_num_groups(0) - 1 - get_group_id(0)) * BR;  // longest rows first
  const int b = get_group_id(1) / n_head, h = get_group_id(1) % n_head, g = h / GROUP_SIZE;
  const size_t batch_q = (size_t)b * T * q_stride, batch_kv = (size_t)b * T * kv_stride;
  __global const float* k_head = k + batch_kv + k_offset + g * HEAD_SIZE;
  __global const float* v_head = v + batch_kv + v_offset + g * HEAD_SIZE;
  float4 q_own[STAGED_Q_F], k_staged[STAGED_KV_F], v_staged[STAGED_KV_F];
  load_rows(q_own, BR, q + batch_q + q_offset + h * HEAD_SIZE, q_stride, q0, T, lid, ITEMS_F);
  store_rows(q_tile, BR, q_own, lid, ITEMS_F);

  float4 o[TM * OC_F];
  float m[TM], l[TM];  // running max of q·k (finite: fully masked tiles change nothing), sum
#pragma unroll
  for (int e = 0; e < TM * OC_F; ++e) o[e] = (float4)(0.f);
#pragma unroll
  for (int r = 0; r < TM; ++r) m[r] = -FLT_MAX, l[r] = 0.f;
  const int k_end = min(T, q0 + BR);
  for (int k0 = first_key(q0, window); k0 < k_end; k0 += BC) {
    load_rows(k_staged, BC, k_head, kv_stride, k0, T, lid, ITEMS_F);
    load_rows(v_staged, BC, v_head, kv_stride, k0, T, lid, ITEMS_F);
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile is consumed
    store_rows(k_tile, BC, k_staged, lid, ITEMS_F);
    store_rows(v_tile, BC, v_staged, lid, ITEMS_F);
    barrier(CLK_LOCAL_MEM_FENCE);

    // Raw dot products q·k, masked with −∞; maxima are taken on them (the scale is positive)
    // and the scale goes into the exponent, fused with the subtraction (one FFMA a score).
    float s[TM * TN], x[TM];
    block_dots(s, TM, TN, NR_F, NG_F, q_tile, rb, k_tile, cg);
    // Diagonal, band-edge and last tiles only: a uniform branch, so that the other tiles
    // spend nothing on the mask (it was index arithmetic and a select on every score).
    if (!tile_unmasked(q0, q0 + BR - 1, k0, k0 + BC - 1, T, window))
      mask_block(s, TM, TN, NR_F, NG_F, q0 + rb, k0 + cg, 0, T, window, -INFINITY);
#pragma unroll
    for (int r = 0; r < TM; ++r) {
      x[r] = -FLT_MAX;  // the row's maximum over this item's columns
#pragma unroll
      for (int c = 0; c < TN; ++c) x[r] = fmax(x[r], s[r * TN + c]);
    }
    store_slots(partial + cg * PS4_F, slot0, x, TM);
    barrier(CLK_LOCAL_MEM_FENCE);  // the maxima are in; K is consumed (P overwrites it)
    // Online softmax: the new row max over the row's column groups, then rescale what was
    // accumulated under the old one.
    float m_new[TM];
#pragma unroll
    for (int r = 0; r < TM; ++r) m_new[r] = m[r];
    for (int gi = 0; gi < NG_F; ++gi) {
      load_slots(x, partial + gi * PS4_F, slot0, TM);
#pragma unroll
      for (int r = 0; r < TM; ++r) m_new[r] = fmax(m_new[r], x[r]);
    }
#pragma unroll
    for (int r = 0; r < TM; ++r) {
      const float m_scaled = m_new[r] * SCORE_SCALE_LOG2;
      const float alpha = EXP2(fma(m[r], SCORE_SCALE_LOG2, -m_scaled));
      m[r] = m_new[r];
      l[r] *= alpha;
#pragma unroll
      for (int c = 0; c < OC_F; ++c) o[r * OC_F + c] *= alpha;
#pragma unroll
      for (int c = 0; c < TN; ++c) {
        s[r * TN + c] = EXP2(fma(s[r * TN + c], SCORE_SCALE_LOG2, -m_scaled));
        l[r] += s[r * TN + c];
      }
    }
#pragma unroll
    for (int c = 0; c < TN; ++c) {
#pragma unroll
      for (int r = 0; r < TM; ++r) x[r] = s[r * TN + c];
      store_slots(p_tile + (cg + NG_F * c) * PS4_F, slot0, x, TM);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    block_accumulate(o, TM, OC_F, NG_F, BC, p_tile, PS4_F, rb, v_tile, cg);
  }

  // Each item summed P over its own columns: the row sum adds the column groups' sums.
  barrier(CLK_LOCAL_MEM_FENCE);
  store_slots(partial + cg * PS4_F, slot0, l, TM);
  barrier(CLK_LOCAL_MEM_FENCE);
  float sum[TM], x[TM];
#pragma unroll
  for (int r = 0; r < TM; ++r) sum[r] = 0.f;
  for (int gi = 0; gi < NG_F; ++gi) {
    load_slots(x, partial + gi * PS4_F, slot0, TM);
#pragma unroll
    for (int r = 0; r < TM; ++r) sum[r] += x[r];
  }
#pragma unroll
  for (int r = 0; r < TM; ++r) {
    const int i = q0 + rb + NR_F * r;
    if (i >= T) continue;
    __global float* out_row = out + ((size_t)b * T + i) * (n_head * HEAD_SIZE) + h * HEAD_SIZE;
    store_columns(out_row, o + r * OC_F, OC_F, NG_F, cg, 1.f / sum[r]);
    if (cg == 0)
      lse[((size_t)b * n_head + h) * T + i] = (m[r] * SCORE_SCALE_LOG2 + log2(sum[r])) * M_LN2_F;
  }
}

// ---- backward ----

// With FUSED_DQ it also zeroes the head's row of dQ (layout of q), which the dK/dV kernel
// then accumulates into.
__kernel void VARIANT_KERNEL(backward_delta)(__global float* delta, __global float* dq,
                                             const int q_stride, const int q_offset,
                                             __global const float* dout,
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
#if FUSED_DQ
  __global float* dq_row = dq + (size_t)bt * q_stride + q_offset + h * HEAD_SIZE;
  for (int c = 0; c < HEAD_SIZE; ++c) dq_row[c] = 0.f;
#else
  (void)dq, (void)q_stride, (void)q_offset;
#endif
}

// dkv: with GROUP_SIZE 1 the K|V gradient (layout of k and v); else the (B,T,H,2·d) scratch
// of per-query-head shares, row (b·T + j)·H + h holding dK then dV. dq (layout of q, zeroed
// by the delta kernel): with FUSED_DQ each tile's dQ is added to it; unused otherwise.
__kernel WORK_GROUP_SIZE(ITEMS_B) void VARIANT_KERNEL(backward_dkdv)(
    __global float* dkv, __global float* dq, __global const float* q, const int q_stride,
    const int q_offset,
    __global const float* k, __global const float* v, const int kv_stride, const int k_offset,
    const int v_offset, __global const float* dout, __global const float* lse,
    __global const float* delta, const int T, const int n_head, const int window) {
  __local float4 k_tile[BB * RS];  // own rows: keys
  __local float4 v_tile[BB * RS];
  __local float4 q_tile[BB * RS];  // tile rows: queries
  __local float4 do_tile[BB * RS];
  __local float4 p_tile[BB * PS4_B];   // P of the tile: a slot row per query
  __local float4 ds_tile[BB * PS4_B];  // dS of the tile: a slot row per query
#if FUSED_DQ
  // dS again, a slot row per key, its slots the tile's queries as the dQ product's items
  // own them (query ii in slot (ii % NR_B)·TMB + ii / NR_B; block_accumulate's layout).
  __local float4 dst_tile[BB * PS4_B];
#else
  (void)dq;
#endif
  __local float lse2_tile[BB];         // L_i·log2 e
  __local float delta_tile[BB];
  const int lid = get_local_id(0), rb = lid / NG_B, cg = lid % NG_B, slot0 = rb * TMB;
  const int k0 = get_group_id(0) * BB;  // the first key blocks have the most queries: first
  const int b = get_group_id(1) / n_head, h = get_group_id(1) % n_head, g = h / GROUP_SIZE;
  const size_t batch_q = (size_t)b * T * q_stride, batch_kv = (size_t)b * T * kv_stride;
  const size_t batch_o = (size_t)b * T * (n_head * HEAD_SIZE);
  float4 k_own[STAGED_B], v_own[STAGED_B];
  load_rows(k_own, BB, k + batch_kv + k_offset + g * HEAD_SIZE, kv_stride, k0, T, lid, ITEMS_B);
  load_rows(v_own, BB, v + batch_kv + v_offset + g * HEAD_SIZE, kv_stride, k0, T, lid, ITEMS_B);
  store_rows(k_tile, BB, k_own, lid, ITEMS_B);
  store_rows(v_tile, BB, v_own, lid, ITEMS_B);

  float4 dk[TMB * OC_B], dv[TMB * OC_B];
#pragma unroll
  for (int e = 0; e < TMB * OC_B; ++e) dk[e] = dv[e] = (float4)(0.f);
  const int i_end = query_end(k0 + BB - 1, T, window);
  __global const float* q_head = q + batch_q + q_offset + h * HEAD_SIZE;
  __global const float* do_head = dout + batch_o + h * HEAD_SIZE;
  __global const float* lse_row = lse + ((size_t)b * n_head + h) * T;
  __global const float* delta_row = delta + ((size_t)b * n_head + h) * T;
  for (int i0 = k0; i0 < i_end; i0 += BB) {
    float4 q_staged[STAGED_B], do_staged[STAGED_B];
    float lse2_staged[STATS_B], delta_staged[STATS_B];  // rows lid + e·ITEMS_B, zero past T
    load_rows(q_staged, BB, q_head, q_stride, i0, T, lid, ITEMS_B);
    load_rows(do_staged, BB, do_head, n_head * HEAD_SIZE, i0, T, lid, ITEMS_B);
#pragma unroll
    for (int e = 0; e < STATS_B; ++e) {
      const int r = lid + e * ITEMS_B;
      const bool in = r < BB && i0 + r < T;
      lse2_staged[e] = in ? lse_row[i0 + r] * M_LOG2E_F : 0.f;
      delta_staged[e] = in ? delta_row[i0 + r] : 0.f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile is consumed
    store_rows(q_tile, BB, q_staged, lid, ITEMS_B);
    store_rows(do_tile, BB, do_staged, lid, ITEMS_B);
#pragma unroll
    for (int e = 0; e < STATS_B; ++e) {
      const int r = lid + e * ITEMS_B;
      if (r < BB) lse2_tile[r] = lse2_staged[e], delta_tile[r] = delta_staged[e];
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    float s[TMB * TNB], dp[TMB * TNB];  // Sᵀ and dPᵀ: own keys × the tile's queries
    block_dots(s, TMB, TNB, NR_B, NG_B, k_tile, rb, q_tile, cg);
    block_dots(dp, TMB, TNB, NR_B, NG_B, v_tile, rb, do_tile, cg);
#pragma unroll
    for (int e = 0; e < TMB * TNB; ++e)  // Sᵀ → Pᵀ; column e % TNB is query cg + NG_B·(e % TNB)
      s[e] = EXP2(fma(s[e], SCORE_SCALE_LOG2, -lse2_tile[cg + NG_B * (e % TNB)]));
    if (!tile_unmasked(i0, i0 + BB - 1, k0, k0 + BB - 1, T, window))  // as in the forward
      mask_block(s, TMB, TNB, NR_B, NG_B, k0 + rb, i0 + cg, 1, T, window, 0.f);
#pragma unroll
    for (int c = 0; c < TNB; ++c) {
      const int ii = cg + NG_B * c;
      float p[TMB], ds[TMB];
#pragma unroll
      for (int r = 0; r < TMB; ++r) {
        const int e = r * TNB + c;
        p[r] = s[e];
        ds[r] = p[r] * (dp[e] - delta_tile[ii]);
      }
      store_slots(p_tile + ii * PS4_B, slot0, p, TMB);
      store_slots(ds_tile + ii * PS4_B, slot0, ds, TMB);
#if FUSED_DQ
#pragma unroll
      for (int r = 0; r < TMB; ++r)
        ((__local float*)(dst_tile + (rb + NR_B * r) * PS4_B))[(ii % NR_B) * TMB + ii / NR_B] =
            ds[r];
#endif
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    block_accumulate(dv, TMB, OC_B, NG_B, BB, p_tile, PS4_B, rb, do_tile, cg);
    block_accumulate(dk, TMB, OC_B, NG_B, BB, ds_tile, PS4_B, rb, q_tile, cg);
#if FUSED_DQ
    // dQ of the tile's queries from these keys: the item's rows are queries rb + NR_B·r.
    float4 dq_tile[TMB * OC_B];
#pragma unroll
    for (int e = 0; e < TMB * OC_B; ++e) dq_tile[e] = (float4)(0.f);
    block_accumulate(dq_tile, TMB, OC_B, NG_B, BB, dst_tile, PS4_B, rb, k_tile, cg);
#pragma unroll
    for (int r = 0; r < TMB; ++r) {
      const int i = i0 + rb + NR_B * r;
      if (i < T)
        add_columns(dq + batch_q + (size_t)i * q_stride + q_offset + h * HEAD_SIZE,
                    dq_tile + r * OC_B, OC_B, NG_B, cg, rsqrt((float)HEAD_SIZE));
    }
#endif
  }
#pragma unroll
  for (int r = 0; r < TMB; ++r) {
    const int j = k0 + rb + NR_B * r;
    if (j >= T) continue;
#if GROUP_SIZE == 1
    __global float* row = dkv + batch_kv + (size_t)j * kv_stride + g * HEAD_SIZE;
    __global float* dk_row = row + k_offset;
    __global float* dv_row = row + v_offset;
#else
    __global float* dk_row = dkv + (((size_t)b * T + j) * n_head + h) * (2 * HEAD_SIZE);
    __global float* dv_row = dk_row + HEAD_SIZE;
#endif
    store_columns(dk_row, dk + r * OC_B, OC_B, NG_B, cg, rsqrt((float)HEAD_SIZE));
    store_columns(dv_row, dv + r * OC_B, OC_B, NG_B, cg, 1.f);
  }
}

// dK|dV of each K/V head: the sum of its GROUP_SIZE query heads' shares, in head order.
// One work-item per (b, j, g, one of the 2·d columns of dK|dV).
__kernel void VARIANT_KERNEL(backward_dkdv_sum)(__global float* dkv,
                                                __global const float* shares, const int B,
                                                const int T, const int n_head,
                                                const int kv_stride, const int k_offset,
                                                const int v_offset) {
  const int n_kv_head = n_head / GROUP_SIZE, id = get_global_id(0);
  if (id >= B * T * n_kv_head * 2 * HEAD_SIZE) return;
  const int c = id % (2 * HEAD_SIZE), g = id / (2 * HEAD_SIZE) % n_kv_head;
  const int bj = id / (2 * HEAD_SIZE * n_kv_head);  // b·T + j
  __global const float* share = shares + ((size_t)bj * n_head + g * GROUP_SIZE) * (2 * HEAD_SIZE) + c;
  float sum = 0.f;
  for (int e = 0; e < GROUP_SIZE; ++e) sum += share[e * 2 * HEAD_SIZE];
  const int column = c < HEAD_SIZE ? k_offset + c : v_offset + c - HEAD_SIZE;
  dkv[(size_t)bj * kv_stride + column + g * HEAD_SIZE] = sum;
}

__kernel WORK_GROUP_SIZE(ITEMS_B) void VARIANT_KERNEL(backward_dq)(
    __global float* dq, __global const float* q, const int q_stride, const int q_offset,
    __global const float* k, __global const float* v, const int kv_stride, const int k_offset,
    const int v_offset, __global const float* dout, __global const float* lse,
    __global const float* delta, const int T, const int n_head, const int window) {
  __local float4 q_tile[BB * RS];  // own rows: queries
  __local float4 do_tile[BB * RS];
  __local float4 k_tile[BB * RS];  // tile rows: keys
  __local float4 v_tile[BB * RS];
  __local float4 ds_tile[BB * PS4_B];  // dS of the tile: a slot row per key
  const int lid = get_local_id(0), rb = lid / NG_B, cg = lid % NG_B, slot0 = rb * TMB;
  const int q0 = (get_num_groups(0) - 1 - get_group_id(0)) * BB;  // longest rows first
  const int b = get_group_id(1) / n_head, h = get_group_id(1) % n_head, g = h / GROUP_SIZE;
  const size_t batch_q = (size_t)b * T * q_stride, batch_kv = (size_t)b * T * kv_stride;
  const size_t batch_o = (size_t)b * T * (n_head * HEAD_SIZE);
  __global const float* k_head = k + batch_kv + k_offset + g * HEAD_SIZE;
  __global const float* v_head = v + batch_kv + v_offset + g * HEAD_SIZE;
  float4 q_own[STAGED_B], do_own[STAGED_B];
  load_rows(q_own, BB, q + batch_q + q_offset + h * HEAD_SIZE, q_stride, q0, T, lid, ITEMS_B);
  load_rows(do_own, BB, dout + batch_o + h * HEAD_SIZE, n_head * HEAD_SIZE, q0, T, lid, ITEMS_B);
  store_rows(q_tile, BB, q_own, lid, ITEMS_B);
  store_rows(do_tile, BB, do_own, lid, ITEMS_B);
  float lse2[TMB], delta_i[TMB];
#pragma unroll
  for (int r = 0; r < TMB; ++r) {
    const int i = q0 + rb + NR_B * r;
    const size_t stat = ((size_t)b * n_head + h) * T + i;
    lse2[r] = i < T ? lse[stat] * M_LOG2E_F : 0.f;
    delta_i[r] = i < T ? delta[stat] : 0.f;
  }

  float4 acc[TMB * OC_B];
#pragma unroll
  for (int e = 0; e < TMB * OC_B; ++e) acc[e] = (float4)(0.f);
  const int k_end = min(T, q0 + BB);
  for (int k0 = first_key(q0, window); k0 < k_end; k0 += BB) {
    float4 k_staged[STAGED_B], v_staged[STAGED_B];
    load_rows(k_staged, BB, k_head, kv_stride, k0, T, lid, ITEMS_B);
    load_rows(v_staged, BB, v_head, kv_stride, k0, T, lid, ITEMS_B);
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile is consumed
    store_rows(k_tile, BB, k_staged, lid, ITEMS_B);
    store_rows(v_tile, BB, v_staged, lid, ITEMS_B);
    barrier(CLK_LOCAL_MEM_FENCE);

    float s[TMB * TNB], dp[TMB * TNB];  // S and dP: own queries × the tile's keys
    block_dots(s, TMB, TNB, NR_B, NG_B, q_tile, rb, k_tile, cg);
    block_dots(dp, TMB, TNB, NR_B, NG_B, do_tile, rb, v_tile, cg);
#pragma unroll
    for (int e = 0; e < TMB * TNB; ++e)  // S → P; row e / TNB
      s[e] = EXP2(fma(s[e], SCORE_SCALE_LOG2, -lse2[e / TNB]));
    if (!tile_unmasked(q0, q0 + BB - 1, k0, k0 + BB - 1, T, window))  // as in the forward
      mask_block(s, TMB, TNB, NR_B, NG_B, q0 + rb, k0 + cg, 0, T, window, 0.f);
#pragma unroll
    for (int c = 0; c < TNB; ++c) {
      const int jj = cg + NG_B * c;
      float ds[TMB];
#pragma unroll
      for (int r = 0; r < TMB; ++r) {
        const int e = r * TNB + c;
        ds[r] = s[e] * (dp[e] - delta_i[r]);
      }
      store_slots(ds_tile + jj * PS4_B, slot0, ds, TMB);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    block_accumulate(acc, TMB, OC_B, NG_B, BB, ds_tile, PS4_B, rb, k_tile, cg);
  }
#pragma unroll
  for (int r = 0; r < TMB; ++r) {
    const int i = q0 + rb + NR_B * r;
    if (i >= T) continue;
    __global float* dq_row = dq + batch_q + (size_t)i * q_stride + q_offset + h * HEAD_SIZE;
    store_columns(dq_row, acc + r * OC_B, OC_B, NG_B, cg, rsqrt((float)HEAD_SIZE));
  }
}
