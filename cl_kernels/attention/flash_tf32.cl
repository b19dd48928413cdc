// flash_tf32.cl — the exact tiled attention of flash.cl with its products on NVIDIA tensor
// cores (mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32), for --precision tf32.
// It includes flash.cl, so one program holds both: <v>_forward_tf32, <v>_backward_dq_tf32
// and <v>_backward_dkdv_tf32 (below), and flash.cl's fp32 kernels, of which the tf32 path
// uses backward_delta and backward_dkdv_sum unchanged, and the fp32 dQ and dK/dV kernels
// for head sizes the tf32 ones do not take. The kernels exchange only Q, K, V, O, L, delta
// and dO, in flash.cl's layouts (L in natural log units), so tf32 and fp32 kernels mix.
// gqa_tf32.cl, sliding_window_tf32.cl and mla_tf32.cl specialise it as gqa.cl,
// sliding_window.cl and mla.cl specialise flash.cl.
//
// SPLIT_TF32=1 (--precision 3xtf32): every operand that the text below calls rounded is
// kept as the fp32 value instead, and every mma is MMA_OPERANDS's three (mma_tf32.cl): each
// product fp32-accurate, each partial sum added to its accumulator in fp32. Same tiles,
// stages and fragments; about three times the tensor-core work.
//
// Coverage: forward on tensor cores for d a multiple of 8 up to 128; dQ and dK/dV for d a
// multiple of 16 up to 64 (the host picks flash.cl's fp32 kernels otherwise). Tested on
// PoCL with EMULATE_MMA (and under oclgrind), and on the H200 by `attnscope check
// --precision tf32` / `3xtf32`. NVIDIA's compile for the H200 at d = 64 (ptxas on the PTX
// it returns, 2026-12-02, before the fused backward): forward 198 registers, dQ 209, dK/dV
// 236, no spills — two work-groups (8 warps) an SM.
//
// ---- forward ----
//
// Semantics: flash.cl's forward (see its top) — per (b, h), S_ij = q_i·k_j/√d for allowed
// pairs, O_i = Σ_j softmax_j(S_ij) v_j, L_i = log Σ_j exp(S_ij) — except that Q·(log2 e/√d),
// K, V and P are rounded to TF32 (round_tf32_operand: to nearest, ties away) as they enter
// an mma; products are summed in fp32 by the tensor core, softmax statistics are fp32.
// Requires HEAD_SIZE a multiple of 8, at most 128 (the host falls back to flash_forward
// otherwise). Results are deterministic (fixed mma order, fixed quad reductions).
//
// Mapping (FlashAttention-2 on mma.sync). A work-group is 4 warps (128 work-items, 1-D
// local size: warp w = local ids [32w, 32w + 32)) and owns BQT = 64 queries of one (b, h),
// 16 per warp; it loops over tiles of BKT keys (64 for d ≤ 64, 32 above, for local memory),
// only those intersecting the causal band, staged in __local memory. With g = lane >> 2,
// t = lane & 3 (fragment layouts: matmul_tf32.cl's top), warp w:
//   Q: its 16 rows as A fragments in registers for the whole loop, d/8 k-steps, loaded
//      once from global memory, pre-scaled by log2 e/√d (scores come out in base 2) and
//      rounded. k-slot permutation: slot t ↔ column 2t, slot t + 4 ↔ 2t + 1 of a k-step,
//      so a lane's a0 a2 (a1 a3) are one float2 of row g (g + 8).
//   S = Q·Kᵀ (16 × BKT): BKT/8 n-tiles × d/8 k-steps of mma, K as B ("B stored [N,K]"):
//      b0 b1 = K[key 8j + g][8kk + 2t, + 1], one float2 from the K stage.
//   Online softmax on the C fragments: a lane holds rows g, g + 8 and keys 2t, 2t + 1 of
//      each n-tile; the row max is reduced over the 4 lanes of a quad (SHFL_XOR 1, 2), the
//      row sum l is kept per lane and reduced once at the end.
//   O += P·V (16 × d): P's C fragment of n-tile j is directly the A fragment of k-step j
//      by the same slot permutation (slot t ↔ key 2t, slot t + 4 ↔ key 2t + 1):
//      a0 = c0, a1 = c2, a2 = c1, a3 = c3 (rounded). V as B ("B stored [K,N]"):
//      b0 b1 = V[key 8j + 2t, + 1][8n + g], one float2 from the V stage.
//   O accumulators (16 × d: d/2 floats a lane) stay in registers; at the end O/l and
//   L = (m + log2 l)·ln 2 are written as flash_forward writes them.
// Stages (words of 4 bytes, 32 banks; a 64-bit load is served per half-warp, lanes g < 4
// or g ≥ 4, t = 0..3):
//   K: row n (a key) at n·KS, KS = d + 8 when d is a multiple of 16, else d: KS/8 odd, so
//      the half-warp's 4 rows g land on 4 distinct 8-word bank groups (+ 2t: conflict-free).
//   V: keys 2p and 2p + 1 interleaved on line p of VS = 2d + 8 words ((2p + e, c) at
//      p·VS + 2c + e): VS/8 odd; a fragment is the float2 at line 4j + t, word 2(8n + g):
//      4 lines t on distinct bank groups, 8 words each: conflict-free.
//   Both are filled through registers (all of a tile's float4 global loads, coalesced,
//   then its local stores), rounded to TF32 once per element on the way. The V stores meet
//   2-way conflicts (two float4 stores per pair of rows, 8-word stride), as matmul_tf32's.
// Masks: only tiles that cross the causal diagonal, the band edge or the end of the
// sequence are masked element-wise (warp-uniform branch); masked scores are −∞, and a row
// whose keys so far are all masked keeps m = −FLT_MAX and contributes nothing.
// Local memory: BKT·KS + BKT/2·VS floats (35 KiB at d = 64; 34 KiB at d = 128 with
// BKT = 32), plus EMULATE_MMA's per-warp scratch.
// EMULATE_MMA=1 (tests on PoCL): the mma, lane id and shuffles are emulated (mma_tf32.cl),
// with the same tiles, work-group shape, stages and fragment mapping; its loops over mmas
// are not unrolled (each emulated mma holds barriers; unrolled, PoCL compiles for minutes).

#include "attention/flash.cl"
#include "mma_tf32.cl"

#ifndef BKT
#define BKT 64  // forward_tf32: keys per tile (a multiple of 8)
#endif
// BQT, ITEMS_T and BKB (below) are mirrored by flash_core.hpp's kTf32RowBlock, kTf32Items
// and kTf32BackwardTile (launch shapes and FLOP counts).
#define BQT 64                       // queries per work-group: 4 warps × 16 rows
#define WARPS_T 4                    // warps per work-group
#define ITEMS_T (WARPS_T * WARP_SIZE)  // work-items per work-group
#define KSTEPS (HEAD_SIZE / 8)       // k-steps of S = Q·Kᵀ, n-tiles of O
#define NTILES (BKT / 8)             // n-tiles of S, k-steps of P·V
#define KS (HEAD_SIZE % 16 == 0 ? HEAD_SIZE + 8 : HEAD_SIZE)  // floats per K stage row
#define VS (2 * HEAD_SIZE + 8)       // floats per V stage line (two keys)
#define KV_F4 (BKT * HEAD_SIZE / 4)  // float4s of a K (or V) tile
#define K_PER_ITEM ((KV_F4 + ITEMS_T - 1) / ITEMS_T)       // K float4s an item stages
#define V_PER_ITEM ((KV_F4 / 2 + ITEMS_T - 1) / ITEMS_T)   // V units (2 float4s) an item stages

#if HEAD_SIZE % 8 != 0 || HEAD_SIZE > 128
#error "flash_tf32.cl: HEAD_SIZE must be a multiple of 8, at most 128"
#endif
#if BKT % 8 != 0
#error "flash_tf32.cl: BKT must be a multiple of 8"
#endif

// Loops that contain mma or shuffles: unrolled on the GPU (fragments must be registers),
// not in the emulation.
#if EMULATE_MMA
#define MMA_LOOP _Pragma("nounroll")
#else
#define MMA_LOOP _Pragma("unroll")
#endif

// Row maximum over the quad (the 4 lanes holding one row's columns).
INLINE float quad_max(float x WARP_SCRATCH_PARAM) {
  x = fmax(x, SHFL_XOR(x, 1));
  return fmax(x, SHFL_XOR(x, 2));
}
INLINE float quad_sum(float x WARP_SCRATCH_PARAM) {
  x += SHFL_XOR(x, 1);
  return x + SHFL_XOR(x, 2);
}

// A fragments of this lane's rows row0, row0 + 8 of one head, times scale, rounded (zero
// past T): k-step kk, a0 a2 = X[row0][8kk + 2t, + 1], a1 a3 the same of row0 + 8.
INLINE void load_own_rows(uint f[KSTEPS][4], __global const float* head, const int stride,
                          const int row0, const int T, const int t, const float scale) {
#pragma unroll
  for (int kk = 0; kk < KSTEPS; ++kk)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int row = row0 + 8 * e;
      float2 x = (float2)(0.f);
      if (row < T) x = *(__global const float2*)(head + row * stride + 8 * kk + 2 * t);
      f[kk][e] = as_uint(TF32_OPERAND(x.x * scale));
      f[kk][e + 2] = as_uint(TF32_OPERAND(x.y * scale));
    }
}

// What each kernel below starts with. TF32_WARP_PROLOGUE: the work-item's warp and lane,
// g = lane >> 2 and t = lane & 3 (its fragment coordinates), and under EMULATE_MMA the
// warp's mma scratch. TF32_SLICE: the group's batch b, query head h and K/V head hk, and
// where batch b's rows of Q and of K/V begin.
#if EMULATE_MMA
#define TF32_WARP_SCRATCH                                  \
  __local float mma_scratch[WARPS_T * MMA_SCRATCH_FLOATS]; \
  __local float* const warp_scratch = mma_scratch + warp * MMA_SCRATCH_FLOATS;
#else
#define TF32_WARP_SCRATCH
#endif
#define TF32_WARP_PROLOGUE                                                     \
  const int lid = get_local_id(0), warp = lid / WARP_SIZE, lane = lane_id(); \
  const int g = lane >> 2, t = lane & 3;                                      \
  TF32_WARP_SCRATCH
#define TF32_SLICE                                                                            \
  const int b = get_group_id(1) / n_head, h = get_group_id(1) % n_head, hk = h / GROUP_SIZE; \
  const size_t batch_q = (size_t)b * T * q_stride, batch_kv = (size_t)b * T * kv_stride;
// The forward's and dQ's block of BQT queries, the last blocks (most key tiles) first; its
// K/V head's rows; this lane's queries row0 and row0 + 8.
#define TF32_QUERY_BLOCK                                                                     \
  const int q0 = (get_num_groups(0) - 1 - get_group_id(0)) * BQT;                           \
  __global const float* k_head = k + batch_kv + k_offset + hk * HEAD_SIZE;                  \
  __global const float* v_head = v + batch_kv + v_offset + hk * HEAD_SIZE;                  \
  const int row0 = q0 + 16 * warp + g;

__kernel __attribute__((reqd_work_group_size(ITEMS_T, 1, 1))) void VARIANT_KERNEL(forward_tf32)(
    __global float* out, __global float* lse, __global const float* q, const int q_stride,
    const int q_offset, __global const float* k, __global const float* v, const int kv_stride,
    const int k_offset, const int v_offset, const int T, const int n_head, const int window) {
  __local float4 k_stage[BKT * KS / 4];
  __local float4 v_stage[BKT / 2 * VS / 4];
  __local float* const k_s = (__local float*)k_stage;
  __local float* const v_s = (__local float*)v_stage;
  TF32_WARP_PROLOGUE
  TF32_SLICE
  TF32_QUERY_BLOCK

  uint qf[KSTEPS][4];  // Q·(log2 e/√d), rounded
  load_own_rows(qf, q + batch_q + q_offset + h * HEAD_SIZE, q_stride, row0, T, t,
                SCORE_SCALE_LOG2);

  float o[KSTEPS][4];  // O: n-tile n (columns 8n..), C fragment
#pragma unroll
  for (int n = 0; n < KSTEPS; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  // Running max of the base-2 scores (finite: masked tiles change nothing) and this lane's
  // part of the row sums, rows row0 and row0 + 8.
  float m0 = -FLT_MAX, m1 = -FLT_MAX, l0 = 0.f, l1 = 0.f;

  const int k_end = min(T, q0 + BQT);
  for (int k0 = first_key(q0, window); k0 < k_end; k0 += BKT) {
    // Stage K (row-major, KS) and V (key pairs interleaved, VS), rounded.
    // Item lid takes K float4s f = lid + e·ITEMS_T and V units u = lid + e·ITEMS_T (rows
    // 2p, 2p + 1 at float4 c4); the tests on f and u fold when ITEMS_T divides the counts.
    float4 ks[K_PER_ITEM], vs[2 * V_PER_ITEM];
#pragma unroll
    for (int e = 0; e < K_PER_ITEM; ++e) {
      const int f = lid + e * ITEMS_T, r = f / (HEAD_SIZE / 4), c4 = f % (HEAD_SIZE / 4);
      if (KV_F4 % ITEMS_T == 0 || f < KV_F4) ks[e] = head_float4(k_head, kv_stride, k0 + r, c4, T);
    }
#pragma unroll
    for (int e = 0; e < V_PER_ITEM; ++e) {
      const int u = lid + e * ITEMS_T, p = u / (HEAD_SIZE / 4), c4 = u % (HEAD_SIZE / 4);
      if (KV_F4 / 2 % ITEMS_T == 0 || u < KV_F4 / 2) {
        vs[2 * e] = head_float4(v_head, kv_stride, k0 + 2 * p, c4, T);
        vs[2 * e + 1] = head_float4(v_head, kv_stride, k0 + 2 * p + 1, c4, T);
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile is consumed
#pragma unroll
    for (int e = 0; e < K_PER_ITEM; ++e) {
      const int f = lid + e * ITEMS_T, r = f / (HEAD_SIZE / 4), c4 = f % (HEAD_SIZE / 4);
      if (KV_F4 % ITEMS_T == 0 || f < KV_F4)
        *(__local float4*)(k_s + r * KS + 4 * c4) = TF32_OPERAND4(ks[e]);
    }
#pragma unroll
    for (int e = 0; e < V_PER_ITEM; ++e) {
      const int u = lid + e * ITEMS_T, p = u / (HEAD_SIZE / 4), c4 = u % (HEAD_SIZE / 4);
      if (!(KV_F4 / 2 % ITEMS_T == 0 || u < KV_F4 / 2)) continue;
      const float4 x = TF32_OPERAND4(vs[2 * e]), y = TF32_OPERAND4(vs[2 * e + 1]);
      __local float* dst = v_s + p * VS + 8 * c4;
      *(__local float4*)dst = (float4)(x.x, y.x, x.y, y.y);
      *(__local float4*)(dst + 4) = (float4)(x.z, y.z, x.w, y.w);
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    // S (base 2): n-tile j = keys k0 + 8j.., c0 c1 row row0, c2 c3 row row0 + 8.
    float s[NTILES][4];
    MMA_LOOP
    for (int j = 0; j < NTILES; ++j) {
      s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
      const __local float* kf = k_s + (8 * j + g) * KS + 2 * t;
      MMA_LOOP
      for (int kk = 0; kk < KSTEPS; ++kk) {
        const float2 x = *(const __local float2*)(kf + 8 * kk);
        const uint bf[2] = {as_uint(x.x), as_uint(x.y)};
        MMA_OPERANDS(s[j], qf[kk], bf);
      }
    }
    // Diagonal, band-edge and last tiles only (warp-uniform).
    if (!tile_unmasked(q0 + 16 * warp, q0 + 16 * warp + 15, k0, k0 + BKT - 1, T, window)) {
#pragma unroll
      for (int j = 0; j < NTILES; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (!allowed(row0 + 8 * (e >> 1), k0 + 8 * j + 2 * t + (e & 1), T, window))
            s[j][e] = -INFINITY;
    }
    float x0 = -FLT_MAX, x1 = -FLT_MAX;
#pragma unroll
    for (int j = 0; j < NTILES; ++j) {
      x0 = fmax(x0, fmax(s[j][0], s[j][1]));
      x1 = fmax(x1, fmax(s[j][2], s[j][3]));
    }
    const float n0 = fmax(m0, quad_max(x0 WARP_SCRATCH_ARG));
    const float n1 = fmax(m1, quad_max(x1 WARP_SCRATCH_ARG));
    const float alpha0 = EXP2(m0 - n0), alpha1 = EXP2(m1 - n1);
    m0 = n0, m1 = n1;
    l0 *= alpha0, l1 *= alpha1;
#pragma unroll
    for (int n = 0; n < KSTEPS; ++n) {
      o[n][0] *= alpha0, o[n][1] *= alpha0;
      o[n][2] *= alpha1, o[n][3] *= alpha1;
    }
    // P, and O += P·V: k-step j of P·V is n-tile j of S.
    MMA_LOOP
    for (int j = 0; j < NTILES; ++j) {
      const float p0 = EXP2(s[j][0] - n0), p1 = EXP2(s[j][1] - n0);
      const float p2 = EXP2(s[j][2] - n1), p3 = EXP2(s[j][3] - n1);
      l0 += p0 + p1, l1 += p2 + p3;
      const uint pf[4] = {as_uint(TF32_OPERAND(p0)), as_uint(TF32_OPERAND(p2)),
                          as_uint(TF32_OPERAND(p1)), as_uint(TF32_OPERAND(p3))};
      const __local float* vf = v_s + (4 * j + t) * VS + 2 * g;
      MMA_LOOP
      for (int n = 0; n < KSTEPS; ++n) {
        const float2 x = *(const __local float2*)(vf + 16 * n);
        const uint bf[2] = {as_uint(x.x), as_uint(x.y)};
        MMA_OPERANDS(o[n], pf, bf);
      }
    }
  }

  // Each lane summed P over its own columns: the row sum adds the quad's.
  l0 = quad_sum(l0 WARP_SCRATCH_ARG);
  l1 = quad_sum(l1 WARP_SCRATCH_ARG);
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int i = row0 + 8 * e;
    if (i >= T) continue;
    const float l = e ? l1 : l0, m = e ? m1 : m0, inv = 1.f / l;
    __global float* out_row =
        out + ((size_t)b * T + i) * (n_head * HEAD_SIZE) + h * HEAD_SIZE + 2 * t;
#pragma unroll
    for (int n = 0; n < KSTEPS; ++n)
      *(__global float2*)(out_row + 8 * n) = (float2)(o[n][2 * e], o[n][2 * e + 1]) * inv;
    if (t == 0) lse[((size_t)b * n_head + h) * T + i] = (m + log2(l)) * M_LN2_F;
  }
}

// ---- backward on tensor cores (head sizes a multiple of 16, at most 64) ----
//
// dQ and dK/dV as flash.cl's (the delta and dkdv_sum kernels are flash.cl's), with every
// product an mma; split (deterministic, no atomics) or, with FUSED_DQ, fused (below). A
// work-group of 4 warps owns BQT = 64 rows (16 a
// warp) — queries for dQ, keys for dK/dV — and loops over tiles of BKB = 32 of the other
// side. A warp keeps its own rows' two operands as A fragments in registers (dQ: Q·(log2 e/
// √d) and dO; dK/dV: K·(log2 e/√d) and V) and its accumulators (dQ; dK and dV) as C
// fragments. Per tile:
//   dQ:    S = Q·Kᵀ, dP = dO·Vᵀ (B from the K, V stages: "B stored [N,K]"),
//          P = 2^(S − L·log2 e) (masked: 0), dS = P∘(dP − delta), dQ += dS·K.
//   dK/dV: Sᵀ = K·Qᵀ, dPᵀ = V·dOᵀ (keys as the warp's rows), Pᵀ, dSᵀ likewise with L and
//          delta of the tile's queries (staged in __local), dV += Pᵀ·dO, dK += dSᵀ·Q.
//   FUSED_DQ=1 (FlashAttention-2's fused backward, as flash.cl's): no dQ kernel; the dK/dV
//          kernel also stages the block's 64 keys (unscaled, once) and each tile's dS (a row
//          per query), and after a barrier adds dQ_tile = dS·K/√d (32 queries × d, 16 × d/2
//          a warp) to dQ with float atomics (atomic_add.cl's add4_to_global, after a quad
//          exchange gives each lane 4 adjacent columns of one row). Five products a tile
//          pair instead of seven; dQ's summation order then varies from run to run.
//          __local: 45.25 KiB at d = 64 (Q, dO, K and dS stages), within NVIDIA's 48.
// The second products take P (dS) from its C fragments as A fragments (the forward's slot
// permutation), and B = X[row 2t, 2t + 1 of the k-step][column g] of a stage X. Stages are
// row-major, KS floats a row (KS/8 odd), with the 8-float halves of each 16-float group
// swapped in rows r with bit 2 set (BSWZ): the S-like loads (float2 at row g, columns 2t)
// and the accumulating loads (two floats at rows 2t, 2t + 1, column g) are then both
// conflict-free. Stores of the results: dQ and dK scaled by 1/√d, as flash.cl's.

#if HEAD_SIZE % 16 == 0 && HEAD_SIZE <= 64
#define BKB 32                              // backward: tile rows of the other side
#define NTB (BKB / 8)                       // n-tiles of S (k-steps of the second products)
#define BS_F4 (BKB * HEAD_SIZE / 4)         // float4s of a backward tile (a multiple of 128)
#define BSWZ(r) ((((r) >> 2) & 1) << 3)     // column XOR of stage row r

// Rows [r0, r0 + BKB) of one head into registers (item lid's float4s lid + e·ITEMS_T), then
// into a stage, rounded and swizzled.
INLINE void load_tile_b(float4* st, __global const float* head, const int stride, const int r0,
                        const int T, const int lid) {
#pragma unroll
  for (int e = 0; e < BS_F4 / ITEMS_T; ++e) {
    const int f = lid + e * ITEMS_T, r = f / (HEAD_SIZE / 4), c4 = f % (HEAD_SIZE / 4);
    st[e] = head_float4(head, stride, r0 + r, c4, T);
  }
}
INLINE void store_tile_b(__local float* stage, const float4* st, const int lid) {
#pragma unroll
  for (int e = 0; e < BS_F4 / ITEMS_T; ++e) {
    const int f = lid + e * ITEMS_T, r = f / (HEAD_SIZE / 4), c4 = f % (HEAD_SIZE / 4);
    *(__local float4*)(stage + r * KS + ((4 * c4) ^ BSWZ(r))) = TF32_OPERAND4(st[e]);
  }
}

// acc (16 × BKB, C fragments) = own rows (a) · (the stage's BKB rows)ᵀ.
INLINE void mma_rows_by_tile(float acc[NTB][4], uint a[KSTEPS][4], const __local float* stage,
                             const int g, const int t WARP_SCRATCH_PARAM) {
  // Row 8j + g (swizzle BSWZ(g)), columns (8kk + 2t) ^ sw = 2t + (8kk ^ sw).
  const __local float* base = stage + g * KS + 2 * t;
  const int sw = BSWZ(g);
  MMA_LOOP
  for (int j = 0; j < NTB; ++j) {
    acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
    MMA_LOOP
    for (int kk = 0; kk < KSTEPS; ++kk) {
      const float2 x = *(const __local float2*)(base + 8 * j * KS + ((8 * kk) ^ sw));
      const uint bf[2] = {as_uint(x.x), as_uint(x.y)};
      MMA_OPERANDS(acc[j], a[kk], bf);
    }
  }
}

// acc (16 × d, C fragments) += w (16 × BKB, C fragments, rounded here) · (the stage's rows).
INLINE void mma_accumulate_tile(float acc[KSTEPS][4], float w[NTB][4], const __local float* stage,
                                const int g, const int t WARP_SCRATCH_PARAM) {
  // Rows 8j + 2t, + 1 (swizzle BSWZ(2t)), column (8n + g) ^ sw = g + (8n ^ sw).
  const __local float* base = stage + 2 * t * KS + g;
  const int sw = BSWZ(2 * t);
  MMA_LOOP
  for (int j = 0; j < NTB; ++j) {
    const uint wf[4] = {as_uint(TF32_OPERAND(w[j][0])), as_uint(TF32_OPERAND(w[j][2])),
                        as_uint(TF32_OPERAND(w[j][1])), as_uint(TF32_OPERAND(w[j][3]))};
    MMA_LOOP
    for (int n = 0; n < KSTEPS; ++n) {
      const __local float* x = base + 8 * j * KS + ((8 * n) ^ sw);
      const uint bf[2] = {as_uint(x[0]), as_uint(x[KS])};
      MMA_OPERANDS(acc[n], wf, bf);
    }
  }
}

#if FUSED_DQ
#define DSS (BQT + 8)       // floats per dS stage row (one query, the block's keys): DSS/8 odd
#define NQ (KSTEPS / 2)     // n-tiles (8 head columns each) of dQ a warp computes

// The warp's dSᵀ (its 16 keys × the tile's BKB queries, C fragments) into the dS stage,
// transposed: query i's row holds the block's BQT keys.
INLINE void store_ds_transposed(__local float* ds, float dst[NTB][4], const int warp,
                                const int g, const int t) {
#pragma unroll
  for (int j = 0; j < NTB; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      ds[(8 * j + 2 * t + (e & 1)) * DSS + 16 * warp + g + 8 * (e >> 1)] = dst[j][e];
}

// dQ of the tile's BKB queries from the block's BQT keys, dS·K/√d, added to dQ with float
// atomics. Warp w computes queries [16(w & 1), + 16) and head columns [8·NQ·(w >> 1), + 8·NQ):
// A = dS from its stage (the slot permutation: a0 a2 = one float2 of row g), B = K from the
// block's K stage (rows 2t, 2t + 1 of each k-step, column g: mma_accumulate_tile's reads).
// Quad neighbours then swap half of their C fragments, so that each lane holds 4 adjacent
// columns of one row: one 16-byte add (add4_to_global) where there would be two of 8.
INLINE void add_tile_dq(__global float* dq_head, const int q_stride, const __local float* ds,
                        const __local float* k_block, const int i0, const int T, const int warp,
                        const int g, const int t WARP_SCRATCH_PARAM) {
  const int m0 = 16 * (warp & 1), n0 = NQ * (warp >> 1);
  float acc[NQ][4];
#pragma unroll
  for (int n = 0; n < NQ; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;
  const __local float* a_row = ds + (m0 + g) * DSS + 2 * t;
  const __local float* b_base = k_block + 2 * t * KS + g;
  const int sw = BSWZ(2 * t);
  MMA_LOOP
  for (int kk = 0; kk < BQT / 8; ++kk) {
    const float2 x = *(const __local float2*)(a_row + 8 * kk);
    const float2 y = *(const __local float2*)(a_row + 8 * DSS + 8 * kk);
    const uint af[4] = {as_uint(TF32_OPERAND(x.x)), as_uint(TF32_OPERAND(y.x)),
                        as_uint(TF32_OPERAND(x.y)), as_uint(TF32_OPERAND(y.y))};
    MMA_LOOP
    for (int n = 0; n < NQ; ++n) {
      const __local float* b = b_base + 8 * kk * KS + ((8 * (n0 + n)) ^ sw);
      const uint bf[2] = {as_uint(b[0]), as_uint(b[KS])};
      MMA_OPERANDS(acc[n], af, bf);
    }
  }
  // Lane t (even) keeps row g's columns 2t, 2t + 1 and takes its neighbour's next two; lane
  // t + 1 keeps row g + 8's and takes the two before.
  const bool odd = t & 1;
  const int row = i0 + m0 + g + 8 * (t & 1);
  MMA_LOOP
  for (int n = 0; n < NQ; ++n) {
    const float r0 = SHFL_XOR(odd ? acc[n][0] : acc[n][2], 1);
    const float r1 = SHFL_XOR(odd ? acc[n][1] : acc[n][3], 1);
    const float4 v = odd ? (float4)(r0, r1, acc[n][2], acc[n][3])
                         : (float4)(acc[n][0], acc[n][1], r0, r1);
    if (row < T)
      add4_to_global(dq_head + (size_t)row * q_stride + 8 * (n0 + n) + 4 * (t >> 1),
                     v * rsqrt((float)HEAD_SIZE));
  }
}
#endif

__kernel __attribute__((reqd_work_group_size(ITEMS_T, 1, 1))) void VARIANT_KERNEL(backward_dq_tf32)(
    __global float* dq, __global const float* q, const int q_stride, const int q_offset,
    __global const float* k, __global const float* v, const int kv_stride, const int k_offset,
    const int v_offset, __global const float* dout, __global const float* lse,
    __global const float* delta, const int T, const int n_head, const int window) {
  __local float4 k_stage[BKB * KS / 4];
  __local float4 v_stage[BKB * KS / 4];
  __local float* const k_s = (__local float*)k_stage;
  __local float* const v_s = (__local float*)v_stage;
  TF32_WARP_PROLOGUE
  TF32_SLICE
  TF32_QUERY_BLOCK

  uint qf[KSTEPS][4], dof[KSTEPS][4];
  load_own_rows(qf, q + batch_q + q_offset + h * HEAD_SIZE, q_stride, row0, T, t,
                SCORE_SCALE_LOG2);
  load_own_rows(dof, dout + (size_t)b * T * (n_head * HEAD_SIZE) + h * HEAD_SIZE,
                n_head * HEAD_SIZE, row0, T, t, 1.f);
  float lse2[2], dl[2];
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int i = row0 + 8 * e;
    const size_t stat = ((size_t)b * n_head + h) * T + i;
    lse2[e] = i < T ? lse[stat] * M_LOG2E_F : 0.f;
    dl[e] = i < T ? delta[stat] : 0.f;
  }
  float acc[KSTEPS][4];
#pragma unroll
  for (int n = 0; n < KSTEPS; ++n) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.f;

  const int k_end = min(T, q0 + BQT);
  for (int k0 = first_key(q0, window); k0 < k_end; k0 += BKB) {
    float4 ks[BS_F4 / ITEMS_T], vs[BS_F4 / ITEMS_T];
    load_tile_b(ks, k_head, kv_stride, k0, T, lid);
    load_tile_b(vs, v_head, kv_stride, k0, T, lid);
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile is consumed
    store_tile_b(k_s, ks, lid);
    store_tile_b(v_s, vs, lid);
    barrier(CLK_LOCAL_MEM_FENCE);

    float s[NTB][4], dp[NTB][4];
    mma_rows_by_tile(s, qf, k_s, g, t WARP_SCRATCH_ARG);
    mma_rows_by_tile(dp, dof, v_s, g, t WARP_SCRATCH_ARG);
    const bool masked =
        !tile_unmasked(q0 + 16 * warp, q0 + 16 * warp + 15, k0, k0 + BKB - 1, T, window);
#pragma unroll
    for (int j = 0; j < NTB; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {  // S → dS
        float p = EXP2(s[j][e] - lse2[e >> 1]);
        if (masked && !allowed(row0 + 8 * (e >> 1), k0 + 8 * j + 2 * t + (e & 1), T, window))
          p = 0.f;
        s[j][e] = p * (dp[j][e] - dl[e >> 1]);
      }
    mma_accumulate_tile(acc, s, k_s, g, t WARP_SCRATCH_ARG);
  }
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int i = row0 + 8 * e;
    if (i >= T) continue;
    __global float* dq_row = dq + batch_q + (size_t)i * q_stride + q_offset + h * HEAD_SIZE + 2 * t;
#pragma unroll
    for (int n = 0; n < KSTEPS; ++n)
      *(__global float2*)(dq_row + 8 * n) =
          (float2)(acc[n][2 * e], acc[n][2 * e + 1]) * rsqrt((float)HEAD_SIZE);
  }
}

// dkv: as flash.cl's backward_dkdv (GROUP_SIZE 1: dK|dV in the layout of k and v; else
// this query head's share in the (B,T,H,2·d) scratch, summed by backward_dkdv_sum). dq
// (layout of q, zeroed by the delta kernel): with FUSED_DQ each tile's dQ is added to it;
// unused otherwise.
__kernel __attribute__((reqd_work_group_size(ITEMS_T, 1, 1))) void VARIANT_KERNEL(
    backward_dkdv_tf32)(__global float* dkv, __global float* dq, __global const float* q,
                        const int q_stride, const int q_offset, __global const float* k,
                        __global const float* v,
                        const int kv_stride, const int k_offset, const int v_offset,
                        __global const float* dout, __global const float* lse,
                        __global const float* delta, const int T, const int n_head,
                        const int window) {
  __local float4 q_stage[BKB * KS / 4];
  __local float4 do_stage[BKB * KS / 4];
  __local float lse2_s[BKB], delta_s[BKB];  // of the tile's queries
  __local float* const q_s = (__local float*)q_stage;
  __local float* const do_s = (__local float*)do_stage;
  TF32_WARP_PROLOGUE
  const int k0 = get_group_id(0) * BQT;  // the first key blocks have the most queries: first
  TF32_SLICE
  const size_t batch_o = (size_t)b * T * (n_head * HEAD_SIZE);
  const int row0 = k0 + 16 * warp + g;  // this lane's keys: row0 and row0 + 8

  uint kf[KSTEPS][4], vf[KSTEPS][4];
  load_own_rows(kf, k + batch_kv + k_offset + hk * HEAD_SIZE, kv_stride, row0, T, t,
                SCORE_SCALE_LOG2);
  load_own_rows(vf, v + batch_kv + v_offset + hk * HEAD_SIZE, kv_stride, row0, T, t, 1.f);
#if FUSED_DQ
  __local float4 k_block_stage[BQT * KS / 4];  // the block's keys, unscaled: dQ's B operand
  __local float ds_s[BKB * DSS];                // the tile's dS, a row per query
  __local float* const k_block = (__local float*)k_block_stage;
#pragma unroll
  for (int part = 0; part < BQT / BKB; ++part) {  // read by the loop, after its barriers
    float4 ks[BS_F4 / ITEMS_T];
    load_tile_b(ks, k + batch_kv + k_offset + hk * HEAD_SIZE, kv_stride, k0 + part * BKB, T,
                lid);
    store_tile_b(k_block + part * BKB * KS, ks, lid);  // BSWZ(r + BKB) = BSWZ(r)
  }
#endif
  float dk[KSTEPS][4], dv[KSTEPS][4];
#pragma unroll
  for (int n = 0; n < KSTEPS; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) dk[n][e] = dv[n][e] = 0.f;

  __global const float* q_head = q + batch_q + q_offset + h * HEAD_SIZE;
  __global const float* do_head = dout + batch_o + h * HEAD_SIZE;
  __global const float* lse_row = lse + ((size_t)b * n_head + h) * T;
  __global const float* delta_row = delta + ((size_t)b * n_head + h) * T;
  const int i_end = query_end(k0 + BQT - 1, T, window);
  for (int i0 = k0; i0 < i_end; i0 += BKB) {
    float4 qs[BS_F4 / ITEMS_T], dos[BS_F4 / ITEMS_T];
    load_tile_b(qs, q_head, q_stride, i0, T, lid);
    load_tile_b(dos, do_head, n_head * HEAD_SIZE, i0, T, lid);
    const bool stat_item = lid < BKB, in = stat_item && i0 + lid < T;
    const float lse2_v = in ? lse_row[i0 + lid] * M_LOG2E_F : 0.f;
    const float delta_v = in ? delta_row[i0 + lid] : 0.f;
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous tile is consumed
    store_tile_b(q_s, qs, lid);
    store_tile_b(do_s, dos, lid);
    if (stat_item) lse2_s[lid] = lse2_v, delta_s[lid] = delta_v;
    barrier(CLK_LOCAL_MEM_FENCE);

    float s[NTB][4], dp[NTB][4];  // Sᵀ, dPᵀ: own keys × the tile's queries
    mma_rows_by_tile(s, kf, q_s, g, t WARP_SCRATCH_ARG);
    mma_rows_by_tile(dp, vf, do_s, g, t WARP_SCRATCH_ARG);
    const bool masked =
        !tile_unmasked(i0, i0 + BKB - 1, k0 + 16 * warp, k0 + 16 * warp + 15, T, window);
#pragma unroll
    for (int j = 0; j < NTB; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {  // Sᵀ → Pᵀ, dPᵀ → dSᵀ
        const int col = 8 * j + 2 * t + (e & 1);
        float p = EXP2(s[j][e] - lse2_s[col]);
        if (masked && !allowed(i0 + col, row0 + 8 * (e >> 1), T, window)) p = 0.f;
        s[j][e] = p;
        dp[j][e] = p * (dp[j][e] - delta_s[col]);
      }
    mma_accumulate_tile(dv, s, do_s, g, t WARP_SCRATCH_ARG);
    mma_accumulate_tile(dk, dp, q_s, g, t WARP_SCRATCH_ARG);
#if FUSED_DQ
    // ds_s is rewritten only after the next tile's first barrier.
    store_ds_transposed(ds_s, dp, warp, g, t);
    barrier(CLK_LOCAL_MEM_FENCE);
    add_tile_dq(dq + batch_q + q_offset + h * HEAD_SIZE, q_stride, ds_s, k_block, i0, T, warp, g,
                t WARP_SCRATCH_ARG);
#endif
  }
#pragma unroll
  for (int e = 0; e < 2; ++e) {
    const int j = row0 + 8 * e;
    if (j >= T) continue;
#if GROUP_SIZE == 1
    __global float* row = dkv + batch_kv + (size_t)j * kv_stride + hk * HEAD_SIZE + 2 * t;
    __global float* dk_row = row + k_offset;
    __global float* dv_row = row + v_offset;
#else
    __global float* dk_row = dkv + (((size_t)b * T + j) * n_head + h) * (2 * HEAD_SIZE) + 2 * t;
    __global float* dv_row = dk_row + HEAD_SIZE;
#endif
#pragma unroll
    for (int n = 0; n < KSTEPS; ++n) {
      *(__global float2*)(dk_row + 8 * n) =
          (float2)(dk[n][2 * e], dk[n][2 * e + 1]) * rsqrt((float)HEAD_SIZE);
      *(__global float2*)(dv_row + 8 * n) = (float2)(dv[n][2 * e], dv[n][2 * e + 1]);
    }
  }
}
#endif  // HEAD_SIZE % 16 == 0 && HEAD_SIZE <= 64
