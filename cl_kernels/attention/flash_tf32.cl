// flash_tf32.cl — the exact tiled attention of flash.cl with its forward products on NVIDIA
// tensor cores (mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32), for --precision tf32.
// It includes flash.cl, so one program holds both: <v>_forward_tf32 (below) and flash.cl's
// fp32 kernels, of which the tf32 path uses the backward ones (delta, dK/dV, dkdv_sum, dQ)
// unchanged: they read only Q, K, V, O and L, which the tf32 forward writes exactly as
// flash_forward does (L in natural log units). gqa_tf32.cl, sliding_window_tf32.cl and
// mla_tf32.cl specialise it as gqa.cl, sliding_window.cl and mla.cl specialise flash.cl.
//
// STATUS: forward on tensor cores; backward still fp32 (CUDA cores): flash.cl's kernels.
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

__kernel __attribute__((reqd_work_group_size(ITEMS_T, 1, 1))) void VARIANT_KERNEL(forward_tf32)(
    __global float* out, __global float* lse, __global const float* q, const int q_stride,
    const int q_offset, __global const float* k, __global const float* v, const int kv_stride,
    const int k_offset, const int v_offset, const int T, const int n_head, const int window) {
  __local float4 k_stage[BKT * KS / 4];
  __local float4 v_stage[BKT / 2 * VS / 4];
  __local float* const k_s = (__local float*)k_stage;
  __local float* const v_s = (__local float*)v_stage;
  const int lid = get_local_id(0), warp = lid / WARP_SIZE, lane = lane_id();
  const int g = lane >> 2, t = lane & 3;
#if EMULATE_MMA
  __local float mma_scratch[WARPS_T * MMA_SCRATCH_FLOATS];
  __local float* const warp_scratch = mma_scratch + warp * MMA_SCRATCH_FLOATS;
#endif
  const int q0 = (get_num_groups(0) - 1 - get_group_id(0)) * BQT;  // longest rows first
  const int b = get_group_id(1) / n_head, h = get_group_id(1) % n_head, hk = h / GROUP_SIZE;
  const size_t batch_q = (size_t)b * T * q_stride, batch_kv = (size_t)b * T * kv_stride;
  __global const float* k_head = k + batch_kv + k_offset + hk * HEAD_SIZE;
  __global const float* v_head = v + batch_kv + v_offset + hk * HEAD_SIZE;
  const int row0 = q0 + 16 * warp + g;  // this lane's rows: row0 and row0 + 8

  // Q fragments: k-step kk, a0 a2 = Q[row0][8kk + 2t, + 1], a1 a3 = the same of row0 + 8.
  uint qf[KSTEPS][4];
  {
    __global const float* q_head = q + batch_q + q_offset + h * HEAD_SIZE + 2 * t;
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int row = row0 + 8 * e;
        float2 x = (float2)(0.f);
        if (row < T) x = *(__global const float2*)(q_head + row * q_stride + 8 * kk);
        qf[kk][e] = as_uint(round_tf32_operand(x.x * SCORE_SCALE_LOG2));
        qf[kk][e + 2] = as_uint(round_tf32_operand(x.y * SCORE_SCALE_LOG2));
      }
  }

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
        *(__local float4*)(k_s + r * KS + 4 * c4) = round_tf32_operand4(ks[e]);
    }
#pragma unroll
    for (int e = 0; e < V_PER_ITEM; ++e) {
      const int u = lid + e * ITEMS_T, p = u / (HEAD_SIZE / 4), c4 = u % (HEAD_SIZE / 4);
      if (!(KV_F4 / 2 % ITEMS_T == 0 || u < KV_F4 / 2)) continue;
      const float4 x = round_tf32_operand4(vs[2 * e]), y = round_tf32_operand4(vs[2 * e + 1]);
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
        MMA(s[j], qf[kk], bf);
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
      const uint pf[4] = {as_uint(round_tf32_operand(p0)), as_uint(round_tf32_operand(p2)),
                          as_uint(round_tf32_operand(p1)), as_uint(round_tf32_operand(p3))};
      const __local float* vf = v_s + (4 * j + t) * VS + 2 * g;
      MMA_LOOP
      for (int n = 0; n < KSTEPS; ++n) {
        const float2 x = *(const __local float2*)(vf + 16 * n);
        const uint bf[2] = {as_uint(x.x), as_uint(x.y)};
        MMA(o[n], pf, bf);
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
