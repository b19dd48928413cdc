// matmul_tf32.cl — the SGEMM of matmul.cl on NVIDIA tensor cores, with TF32 operands.
//
// gemm_tf32 takes exactly the arguments of matmul.cl's gemm and computes the same thing:
// for each slice z = get_group_id(2) of a batch,
//     C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] (+ bias[n]) + beta · C        (row-major)
// op(A) = A stored [M,K], or Aᵀ with A stored [K,M] (TRANS_A); op(B) = B stored [K,N], or
// Bᵀ with B stored [N,K] (TRANS_B); C is not read when beta == 0 (it may hold garbage); any
// M, N, K (odd sizes, K not a multiple of 8, K = 0) — except that every operand element is
// rounded to TF32 (8-bit exponent, 10-bit mantissa) before it is multiplied. Products and
// sums are fp32 (the tensor core accumulates in fp32).
//
// SPLIT_TF32=1 (3xTF32, `--precision 3xtf32`): fp32 operands, fp32-accurate products. The
// stages hold the unrounded values; each fragment element is split as it is loaded into a
// TF32 high part and a TF32 remainder (split_tf32_operand, mma_tf32.cl), and every k-step
// of a tile takes three mma: lo·hi, hi·lo, hi·hi, into a fresh partial sum that an fp32
// add puts into the accumulator (mma_step says why). Each product then misses only lo·lo
// and lo's rounding, both below 2^-22 of it, for three times the tensor-core work.
//
// Rounding: on sm_80/sm_90 the tensor core reads the top 19 bits of each 32-bit operand, so
// a plain fp32 value would be truncated, a bias towards zero that accumulates over long
// sums. Each element is rounded to nearest (ties away from zero) instead, once as it is
// staged, by adding half a unit of TF32's last bit to its bit pattern (finite values only)
// and letting the tensor core drop the low 13 bits — what cvt.rna.tf32.f32 computes, in 3
// instructions instead of the 4 NVIDIA's compiler made of cvt on sm_90 (a quarter of the
// main loop's instructions then). Its host emulation is attnscope::round_to_tf32 (model/tf32.cpp),
// and probe_tf32 checks on each device, bit for bit, that the path computes exactly that
// before it is used: a tensor core that read the low bits would fail it.
//
// Mapping. A work-group is WARPS_M × WARPS_N warps of 32 work-items, with a 1-D local
// size (WG_SIZE) so that warp w is local ids [32w, 32w + 32); it owns a TILE_M × TILE_N
// tile of C (in bands of GROUP_M tile rows: see gemm_tf32). Warp (wm, wn) = (w / WARPS_N,
// w % WARPS_N) owns a WARP_TILE_M × WARP_TILE_N sub-tile: MMA_TILES_M × MMA_TILES_N tiles of
// 16 × 8, each one mma.sync.m16n8k8 per 8 of K. Defaults: 128 × 128 tiles, K-slabs of 16,
// 8 warps as 2 × 4, a warp 64 × 32 = 4 × 4 mma tiles, 64 fp32 accumulators per lane (the
// kernel stays within 128 registers, so two work-groups, 16 warps, share an SM).
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32), with g = lane >> 2,
// t = lane & 3, (row, column) of the 16×8 A, 8×8 B (k, n) and 16×8 C tiles:
//     A: a0 (g, t)   a1 (g+8, t)   a2 (g, t+4)   a3 (g+8, t+4)
//     B: b0 (t, g)   b1 (t+4, g)
//     C: c0 (g, 2t)  c1 (g, 2t+1)  c2 (g+8, 2t)  c3 (g+8, 2t+1)
// Two freedoms make the fragments cheap to load. Which k of a step of 8 feeds which of the
// mma's k slots is free as long as A and B agree: slot t holds k = 2t and slot t + 4 holds
// k = 2t + 1, so a lane needs adjacent k values. And a lane's a0 and a1 (rows g and g + 8)
// come from the same k. The stages below (all four cases) put what one lane needs in
// adjacent words, in the order of its fragment registers: one float4 is a whole A fragment
// (A-K) or two float2 are (A-M); one float2 is a whole B fragment — a quarter (A-K) or half
// of the loads of one 32-bit load per register, and no register moves. (The tensor core
// then sums the 8 slots over k in the order 0, 2, 4, 6, 1, 3, 5, 7: a fixed order.)
//
// Staging. Per slab of TILE_K, each operand's slab is copied into __local memory, rounded
// to TF32 on the way (once per element). Global loads are float4 chunks of a stored row,
// consecutive work-items taking consecutive chunks (coalesced in every transpose case).
// With VECTOR_IO every chunk lies wholly inside or outside the matrix, and each of a
// work-item's chunks has its address computed once, its M (N) coordinate clamped into the
// matrix: rows of A beyond M only feed rows of C beyond M, which are never stored (columns
// of B likewise), so any finite data will do there. A full slab is then one unconditional
// 128-bit load per chunk at that address plus the slab's offset; only the last, partial
// slab checks K, through the general path. The general path (without VECTOR_IO: per chunk,
// 128-bit when the slice is 16-byte aligned and the row length a multiple of 4, and
// otherwise, and for chunks that cross the matrix edge, 4 bounds-checked scalars) puts
// zeros beyond M, N or K, so every size works. A staging unit is 8 floats (two float4
// loads whose elements land interleaved in one aligned 8-word segment) or, for B-K, one
// float4. The stages are
// unpadded and swizzled (each layout is a bijection onto TILE_K × rows words); words of
// 4 bytes, 32 banks; a 64-bit access is served per half-warp, a 128-bit one per
// quarter-warp, and every fragment load below is conflict-free (as a simulation of these
// formulas finds for every configuration of the tuning space); the staging stores may
// meet 2-way conflicts (see store_pair):
//   A-K (A stored [M,K]): rows m and m + 8 (bit 3 of m clear) interleaved on line
//     l = 8·(m >> 4) + (m & 7) of 2·TILE_K words, (m, k) at 2k + ((m >> 3) & 1), the
//     line's two 16-word halves swapped when l is odd (AK_SWZ; TILE_K ≥ 16). A fragment:
//     the float4 at 2(kk + 2t) of line g (+ 8 per mma tile) = a0 a1 a2 a3. A quarter-warp
//     reads 16 words of lines g = 2q, 2q + 1, which the swap puts on opposite halves of the
//     banks. A unit: 4 k of rows m and m + 8.
//   A-M (A stored [K,M]): row k of TILE_M words, columns m and m + 8 (bit 3 of m clear)
//     interleaved, m = 16q + 8h + r at 16q + 2r + h, 8-word segments ^ ((k >> 1) & 3).
//     A fragment: float2 at row kk + 2t (a0 a1), float2 at row kk + 2t + 1 (a2 a3); a
//     half-warp's rows (t = 0..3) land on 4 distinct segments. A unit: columns m..m+3 and
//     m+8..m+11 of one row k.
//   B-K (B stored [N,K]): row n of TILE_K words, 8-word segments ^ BK_SWZ(n) (0 for
//     TILE_K 8, (n >> 1) & 1 for 16, n & 3 for 32 and 64). A fragment: float2 at
//     k = kk + 2t of row g (+ 8 per tile) = b0 b1; a half-warp's rows g = 0..3 land on 4
//     distinct segments. A unit: one float4 of a row; 8 of them per quarter-warp store 32
//     consecutive words.
//   B-P (B stored [K,N]): rows k and k + 1 (k even) interleaved on line k/2 of 2·TILE_N
//     words, (k, n) at 2n + (k & 1), 8-word segments ^ ((k >> 1) & 3). A fragment: float2
//     at column g of line kk/2 + t = b0 b1; a half-warp's lines (t = 0..3) land on 4
//     distinct segments. A unit: columns n..n+3 of rows k and k + 1.
//   An 8-float unit is written by two float4 stores (store_pair).
//
// Pipeline. Each stage is double-buffered (2 × (TILE_M + TILE_N) × TILE_K floats: 32 KiB
// at the defaults, ≤ 48 KiB for every configuration of the tuning space): while slab s is
// multiplied from buffer s % 2, slab s + 1 is loaded from global memory into registers
// (A_UNITS_PER_ITEM + B_UNITS_PER_ITEM units per work-item); after the mma loop they are
// rounded and stored into buffer (s + 1) % 2 — last read during slab s − 1, before the
// barrier that ended it — and one barrier per slab makes them visible. The loop body
// takes two slabs, so that every stage address is a lane offset plus a constant.
//
// Each output is one lane's accumulator, fed by the mma instructions in a fixed order:
// results are deterministic (run to run; not bitwise equal to matmul.cl's gemm).
// Index arithmetic is 32-bit within a slice (the host checks that each matrix has fewer
// than 2^31 elements); slice offsets are 64-bit.
//
// The tensor-core instructions sit behind mma_m16n8k8_tf32(), and the lane id behind
// lane_id() (both in mma_tf32.cl, shared with attention/flash_tf32.cl). EMULATE_MMA=1 replaces them with portable OpenCL C (the
// mma through a per-warp __local scratch, with the PTX fragment layout above; in gemm_tf32
// a whole k-step of the warp's mma tiles at once, mma_step_emulated), so that a CPU device
// (PoCL) runs the whole kernel: the tests check the tiling, staging, swizzles, edges,
// epilogue and fragment mapping that way. Test-only: never used in production.
//
// tf32_probe: one warp multiplies a 16×8 A by an 8×8 B (both row-major, B as [k][n]) into a
// 16×8 C with one mma, then exchanges results between the lanes of each quad with the
// shuffle flash_tf32.cl uses; probe_tf32 (model/tf32.cpp) runs it to prove the path on a
// device.
//
// NVIDIA only (inline PTX, sm_80+): the host must not build this file for other devices.

#ifndef TILE_M
#define TILE_M 128  // rows of C per work-group (multiple of 32·WARPS_M)
#endif
#ifndef TILE_N
#define TILE_N 128  // columns of C per work-group (multiple of 16·WARPS_N)
#endif
#ifndef TILE_K
#define TILE_K 16  // depth of one K slab staged in local memory (8, 16, 32 or 64)
#endif
#ifndef WARPS_M
#define WARPS_M 2  // warps of a work-group along M
#endif
#ifndef WARPS_N
#define WARPS_N 4  // warps of a work-group along N
#endif
#ifndef GROUP_M
#define GROUP_M 8  // tile rows walked together, column by column, for L2 reuse (1: row-major)
#endif
#ifndef TRANS_A
#define TRANS_A 0  // 1: A is stored [K,M] and used transposed
#endif
#ifndef TRANS_B
#define TRANS_B 0  // 1: B is stored [N,K] and used transposed
#endif
#ifndef VECTOR_IO
#define VECTOR_IO 0  // 1: every row of A, B, C starts 16-byte aligned (the host checked)
#endif
#ifndef EMULATE_MMA
#define EMULATE_MMA 0  // 1: portable emulation of mma and laneid, for tests on CPUs only
#endif

#define WARP_SIZE 32
#define WG_SIZE (WARPS_M * WARPS_N * WARP_SIZE)  // work-items per work-group
#define WARP_TILE_M (TILE_M / WARPS_M)           // rows of C per warp
#define WARP_TILE_N (TILE_N / WARPS_N)           // columns of C per warp
#define MMA_TILES_M (WARP_TILE_M / 16)           // 16 × 8 mma tiles per warp along M
#define MMA_TILES_N (WARP_TILE_N / 8)            // and along N

#if TILE_K != 8 && TILE_K != 16 && TILE_K != 32 && TILE_K != 64
#error "matmul_tf32.cl: TILE_K must be 8, 16, 32 or 64"
#endif
#if TILE_M % WARPS_M != 0 || TILE_N % WARPS_N != 0 || WARP_TILE_M % 32 != 0 || \
    WARP_TILE_N % 16 != 0
#error "matmul_tf32.cl: TILE_M must be a multiple of 32·WARPS_M and TILE_N of 16·WARPS_N"
#endif

// ---------------------------------------------------------------- stage layouts

// Each stage holds a slab's TILE_K × TILE_M (A) or TILE_K × TILE_N (B) floats, unpadded,
// in one of the four layouts below (see the top); each is double-buffered.
#define A_STAGE_FLOATS (TILE_M * TILE_K)
#define B_STAGE_FLOATS (TILE_N * TILE_K)

// A-K (A stored [M,K]): line l = 8·(m >> 4) + (m & 7) holds rows m and m + 8 (bit 3 of m
// clear) interleaved, (m, k) at word 2k + ((m >> 3) & 1) of the line's 2·TILE_K, halves of 16
// words swapped in odd lines (AK_SWZ).
#define AK_SWZ(l) (TILE_K >= 16 ? ((l)&1) << 4 : 0)
// A-M (A stored [K,M]): row k of TILE_M floats, columns m and m + 8 (bit 3 of m clear)
// interleaved: m = 16q + 8h + r at word 16q + 2r + h, 8-word segments ^ ((k >> 1) & 3).
// B-K (B stored [N,K]): row n of TILE_K floats, (n, k) at n·TILE_K + (k ^ 8·BK_SWZ(n)).
#if TILE_K == 8
#define BK_SWZ(n) 0
#elif TILE_K == 16
#define BK_SWZ(n) (((n) >> 1) & 1)
#else
#define BK_SWZ(n) ((n)&3)
#endif
// B-P (B stored [K,N]): line k/2 of 2·TILE_N floats holds rows k and k + 1 (k even)
// interleaved, (k, n) at word 2n + (k & 1), 8-word segments ^ ((k >> 1) & 3).

// Staging units, numbered u = 0, 1, … across the work-group. A B-K unit is one float4
// (4 consecutive k of a row n); the others are 8 floats from two float4 loads that land
// interleaved in 8 consecutive words (one 8-word segment): A-K rows m and m + 8 at 4
// consecutive k; A-M columns m.. and m + 8.. of one row k; B-P rows k and k + 1 at 4
// consecutive n.
#define A_UNITS (TILE_M * TILE_K / 8)
#define A_F4 2  // float4 loads per unit
#if TRANS_B
#define B_UNITS (TILE_N * TILE_K / 4)
#define B_F4 1
#else
#define B_UNITS (TILE_N * TILE_K / 8)
#define B_F4 2
#endif
#define A_UNITS_PER_ITEM ((A_UNITS + WG_SIZE - 1) / WG_SIZE)  // the last round may be partial
#define B_UNITS_PER_ITEM ((B_UNITS + WG_SIZE - 1) / WG_SIZE)
#define A_UNIT_OK(u) (A_UNITS % WG_SIZE == 0 || (u) < A_UNITS)
#define B_UNIT_OK(u) (B_UNITS % WG_SIZE == 0 || (u) < B_UNITS)

// Every helper is inlined: they take private arrays (accumulators, fragments, the
// prefetched slab) by pointer, which must stay registers. (A plain C99 `inline` leaves the
// choice to the compiler, and clang declines for mma_slab's two large call sites.)
#define INLINE inline __attribute__((always_inline))

// ---------------------------------------------------------------- tensor-core primitives

// lane_id, mma_m16n8k8_tf32 / MMA, WARP_SCRATCH_PARAM / ARG, round_tf32_operand: mma_tf32.cl (shared with the tiled
// attention kernels, cl_kernels/attention/flash_tf32.cl).
#include "mma_tf32.cl"
#include "work_group_size.cl"  // WORK_GROUP_SIZE

#if EMULATE_MMA

// One k-step of a warp's MMA_TILES_M × MMA_TILES_N mma tiles at once: the same as
// MMA(acc[i][j], a[i], b[j]) for every i, j (each element of d summed over k = 0..7 in
// order, then added to c), with the fragments of all tiles exchanged through the scratch
// together — two barriers per k-step instead of two per tile, which keeps PoCL's compile
// time of the emulated kernel reasonable.
#define STEP_SCRATCH_FLOATS (MMA_TILES_M * 16 * 8 + MMA_TILES_N * 8 * 8)
INLINE void mma_step_emulated(float acc[MMA_TILES_M][MMA_TILES_N][4], uint a[MMA_TILES_M][4],
                              uint b[MMA_TILES_N][2], __local float* scratch) {
  const int lane = lane_id(), g = lane >> 2, t = lane & 3;
  for (int i = 0; i < MMA_TILES_M; ++i) {
    __local float* sa = scratch + i * 128;  // A of tile i, [16][8]
    sa[g * 8 + t] = tf32_operand(a[i][0]);
    sa[(g + 8) * 8 + t] = tf32_operand(a[i][1]);
    sa[g * 8 + t + 4] = tf32_operand(a[i][2]);
    sa[(g + 8) * 8 + t + 4] = tf32_operand(a[i][3]);
  }
  for (int j = 0; j < MMA_TILES_N; ++j) {
    __local float* sb = scratch + MMA_TILES_M * 128 + j * 64;  // B of tile j, [k][n]
    sb[t * 8 + g] = tf32_operand(b[j][0]);
    sb[(t + 4) * 8 + g] = tf32_operand(b[j][1]);
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int i = 0; i < MMA_TILES_M; ++i)
    for (int j = 0; j < MMA_TILES_N; ++j)
      for (int r = 0; r < 4; ++r) {
        const int row = g + (r >> 1) * 8, col = 2 * t + (r & 1);
        const __local float* sa = scratch + i * 128;
        const __local float* sb = scratch + MMA_TILES_M * 128 + j * 64;
        float sum = 0.f;
        for (int k = 0; k < 8; ++k) sum += sa[row * 8 + k] * sb[k * 8 + col];
        acc[i][j][r] += sum;
      }
  barrier(CLK_LOCAL_MEM_FENCE);  // the next step overwrites the scratch
}
#endif

// ---------------------------------------------------------------- staging


// Elements [col, col + 4) of row `row` of a row-major matrix with `cols` columns, zero
// beyond `rows` rows or `cols` columns. vec: the matrix starts 16-byte aligned and
// cols % 4 == 0 (then col % 4 == 0 makes the chunk aligned, and a chunk is either wholly
// inside or wholly beyond the row's end); VECTOR_IO: vec is known to hold, so there is no
// scalar path at all.
INLINE float4 load_chunk(const __global float* X, int rows, int cols, int row, int col, int vec) {
#if VECTOR_IO
  return row < rows && col < cols ? *(const __global float4*)(X + row * cols + col) : (float4)(0.f);
#else
  if (row >= rows) return (float4)(0.f);
  const __global float* p = X + row * cols + col;
  if (vec && col < cols) return *(const __global float4*)p;
  float4 v = (float4)(0.f);
  if (col < cols) v.x = p[0];
  if (col + 1 < cols) v.y = p[1];
  if (col + 2 < cols) v.z = p[2];
  if (col + 3 < cols) v.w = p[3];
  return v;
#endif
}


// An 8-float unit: x and y rounded and interleaved, x.x y.x x.y y.y | x.z y.z x.w y.w, into
// words seg.. of stage s (seg a multiple of 8: one segment), as two float4 stores. (In every
// layout each aligned group of 4 units fills one aligned group of 4 segments, so a store
// instruction's quarter-warp meets a 2-way bank conflict. Flipping the store order for
// alternate groups of 4 units avoided it but cost 8 selects a unit, more issue slots than
// the stores' extra cycles: the main loop is bound by issuing, not by local memory.)
INLINE void store_pair(__local float* s, int seg, const float4* v) {
  const float4 x = TF32_OPERAND4(v[0]), y = TF32_OPERAND4(v[1]);
  *(__local float4*)(s + seg) = (float4)(x.x, y.x, x.y, y.y);
  *(__local float4*)(s + seg + 4) = (float4)(x.z, y.z, x.w, y.w);
}

// Consecutive units read consecutive 16-byte chunks of a stored row (or, A-M, the
// interleaved halves of consecutive 32-byte sectors): coalesced in every case.
#if TRANS_A
// A-M unit u: row k = u / (TILE_M/8), segment s = u % (TILE_M/8): columns 16·(s >> 1) +
// 4·(s & 1) + 0..3 and the same + 8.
INLINE void load_a_unit(float4* v, const __global float* A, int rows, int cols, int m0, int k0,
                        int u, int vec) {
  const int k = k0 + u / (TILE_M / 8), s = u % (TILE_M / 8);
  const int m = m0 + 16 * (s >> 1) + 4 * (s & 1);
  v[0] = load_chunk(A, rows, cols, k, m, vec);
  v[1] = load_chunk(A, rows, cols, k, m + 8, vec);
}
// VECTOR_IO: chunk f (0, 1) of unit u at k0 = 0, m clamped (cols = M, a multiple of 4).
INLINE const __global float* a_chunk_source(const __global float* A, int rows, int cols, int m0,
                                            int u, int f) {
  const int k = u / (TILE_M / 8), s = u % (TILE_M / 8);
  const int m = m0 + 16 * (s >> 1) + 4 * (s & 1) + 8 * f;
  return A + k * cols + min(m, cols - 4);
}
#define A_K_STRIDE(cols) (cols)  // elements from k to k + 1 in the stored matrix
INLINE void store_a_unit(__local float* a_s, const float4* v, int u) {
  const int k = u / (TILE_M / 8), s = u % (TILE_M / 8);
  store_pair(a_s, k * TILE_M + ((s ^ ((k >> 1) & 3)) << 3), v);
}
#else
// A-K unit u: line l = u / (TILE_K/4), k 4c.. with c = u % (TILE_K/4): rows
// m = 16·(l >> 3) + (l & 7) and m + 8.
INLINE void load_a_unit(float4* v, const __global float* A, int rows, int cols, int m0, int k0,
                        int u, int vec) {
  const int l = u / (TILE_K / 4), k = k0 + u % (TILE_K / 4) * 4;
  const int m = m0 + 16 * (l >> 3) + (l & 7);
  v[0] = load_chunk(A, rows, cols, m, k, vec);
  v[1] = load_chunk(A, rows, cols, m + 8, k, vec);
}
// VECTOR_IO: chunk f (0, 1) of unit u at k0 = 0, m clamped (rows = M).
INLINE const __global float* a_chunk_source(const __global float* A, int rows, int cols, int m0,
                                            int u, int f) {
  const int l = u / (TILE_K / 4), k = u % (TILE_K / 4) * 4;
  const int m = m0 + 16 * (l >> 3) + (l & 7) + 8 * f;
  return A + min(m, rows - 1) * cols + k;
}
#define A_K_STRIDE(cols) 1
INLINE void store_a_unit(__local float* a_s, const float4* v, int u) {
  const int l = u / (TILE_K / 4), c = u % (TILE_K / 4);
  store_pair(a_s, l * 2 * TILE_K + ((8 * c) ^ AK_SWZ(l)), v);
}
#endif

#if TRANS_B
// B-K unit u: row n = u / (TILE_K/4), k 4·(u % (TILE_K/4)).., one float4.
INLINE void load_b_unit(float4* v, const __global float* B, int rows, int cols, int n0, int k0,
                        int u, int vec) {
  v[0] = load_chunk(B, rows, cols, n0 + u / (TILE_K / 4), k0 + u % (TILE_K / 4) * 4, vec);
}
// VECTOR_IO: the chunk of unit u (f = 0) at k0 = 0, n clamped (rows = N).
INLINE const __global float* b_chunk_source(const __global float* B, int rows, int cols, int n0,
                                            int u, int f) {
  return B + min(n0 + u / (TILE_K / 4), rows - 1) * cols + u % (TILE_K / 4) * 4;
}
#define B_K_STRIDE(cols) 1
INLINE void store_b_unit(__local float* b_s, const float4* v, int u) {
  const int n = u / (TILE_K / 4), k = u % (TILE_K / 4) * 4;
  *(__local float4*)(b_s + n * TILE_K + (k ^ (BK_SWZ(n) << 3))) = TF32_OPERAND4(v[0]);
}
#else
// B-P unit u: line p = u / (TILE_N/4), columns 4c.. with c = u % (TILE_N/4): rows k0 + 2p
// and k0 + 2p + 1.
INLINE void load_b_unit(float4* v, const __global float* B, int rows, int cols, int n0, int k0,
                        int u, int vec) {
  const int k = k0 + 2 * (u / (TILE_N / 4)), n = n0 + u % (TILE_N / 4) * 4;
  v[0] = load_chunk(B, rows, cols, k, n, vec);
  v[1] = load_chunk(B, rows, cols, k + 1, n, vec);
}
// VECTOR_IO: chunk f (0, 1) of unit u at k0 = 0, n clamped (cols = N, a multiple of 4).
INLINE const __global float* b_chunk_source(const __global float* B, int rows, int cols, int n0,
                                            int u, int f) {
  const int k = 2 * (u / (TILE_N / 4)) + f, n = n0 + u % (TILE_N / 4) * 4;
  return B + k * cols + min(n, cols - 4);
}
#define B_K_STRIDE(cols) (cols)
INLINE void store_b_unit(__local float* b_s, const float4* v, int u) {
  const int p = u / (TILE_N / 4), c = u % (TILE_N / 4);
  store_pair(b_s, p * 2 * TILE_N + ((c ^ (p & 3)) << 3), v);
}
#endif

// This work-item's units of the slab at k0 (units tid + i·WG_SIZE) into a_next, b_next.
INLINE void load_slab(float4* a_next, float4* b_next, const __global float* A, int a_rows,
                      int a_cols, int a_vec, const __global float* B, int b_rows, int b_cols,
                      int b_vec, int m0, int n0, int k0, int tid) {
#pragma unroll
  for (int i = 0; i < A_UNITS_PER_ITEM; ++i)
    if (A_UNIT_OK(tid + i * WG_SIZE))
      load_a_unit(a_next + i * A_F4, A, a_rows, a_cols, m0, k0, tid + i * WG_SIZE, a_vec);
#pragma unroll
  for (int i = 0; i < B_UNITS_PER_ITEM; ++i)
    if (B_UNIT_OK(tid + i * WG_SIZE))
      load_b_unit(b_next + i * B_F4, B, b_rows, b_cols, n0, k0, tid + i * WG_SIZE, b_vec);
}

#if VECTOR_IO
// This work-item's chunks (those of load_slab, in a_next and b_next order) at k0 = 0.
#define A_CHUNKS (A_UNITS_PER_ITEM * A_F4)
#define B_CHUNKS (B_UNITS_PER_ITEM * B_F4)
INLINE void chunk_sources(const __global float** a_src, const __global float** b_src,
                          const __global float* A, int a_rows, int a_cols,
                          const __global float* B, int b_rows, int b_cols, int m0, int n0, int tid) {
#pragma unroll
  for (int c = 0; c < A_CHUNKS; ++c)
    a_src[c] = a_chunk_source(A, a_rows, a_cols, m0, tid + c / A_F4 * WG_SIZE, c % A_F4);
#pragma unroll
  for (int c = 0; c < B_CHUNKS; ++c)
    b_src[c] = b_chunk_source(B, b_rows, b_cols, n0, tid + c / B_F4 * WG_SIZE, c % B_F4);
}

// load_slab for a slab wholly inside K: one unconditional 128-bit load per chunk, at its
// source plus the slab's offset (a_step, b_step elements).
INLINE void load_full_slab(float4* a_next, float4* b_next, const __global float** a_src,
                           const __global float** b_src, int a_step, int b_step, int tid) {
#pragma unroll
  for (int c = 0; c < A_CHUNKS; ++c)
    if (A_UNIT_OK(tid + c / A_F4 * WG_SIZE))
      a_next[c] = *(const __global float4*)(a_src[c] + a_step);
#pragma unroll
  for (int c = 0; c < B_CHUNKS; ++c)
    if (B_UNIT_OK(tid + c / B_F4 * WG_SIZE))
      b_next[c] = *(const __global float4*)(b_src[c] + b_step);
}
#endif

// Stores them, rounded, into the stage buffers at a_s, b_s.
INLINE void store_slab(__local float* a_s, __local float* b_s, const float4* a_next,
                       const float4* b_next, int tid) {
#pragma unroll
  for (int i = 0; i < A_UNITS_PER_ITEM; ++i)
    if (A_UNIT_OK(tid + i * WG_SIZE)) store_a_unit(a_s, a_next + i * A_F4, tid + i * WG_SIZE);
#pragma unroll
  for (int i = 0; i < B_UNITS_PER_ITEM; ++i)
    if (B_UNIT_OK(tid + i * WG_SIZE)) store_b_unit(b_s, b_next + i * B_F4, tid + i * WG_SIZE);
}

// ---------------------------------------------------------------- the mma loop

// acc[i][j] += a[i]·b[j] for every mma tile of the warp, one k-step: one mma per tile, or
// with SPLIT_TF32 three into a fresh partial sum (mma_split_into, mma_tf32.cl, says why),
// the staged fp32 fragments split once here for all the tiles that use them
// (split_tf32_operand). The emulation takes the three as whole k-steps into one partial
// array, for PoCL's compile time, with the same order and the same final add.
INLINE void mma_step(float acc[MMA_TILES_M][MMA_TILES_N][4], uint a[MMA_TILES_M][4],
                     uint b[MMA_TILES_N][2] WARP_SCRATCH_PARAM) {
#if SPLIT_TF32
  uint a_lo[MMA_TILES_M][4], b_lo[MMA_TILES_N][2];
#pragma unroll
  for (int i = 0; i < MMA_TILES_M; ++i)
#pragma unroll
    for (int r = 0; r < 4; ++r) split_tf32_operand(a[i][r], &a[i][r], &a_lo[i][r]);
#pragma unroll
  for (int j = 0; j < MMA_TILES_N; ++j)
#pragma unroll
    for (int r = 0; r < 2; ++r) split_tf32_operand(b[j][r], &b[j][r], &b_lo[j][r]);
#if EMULATE_MMA
  float part[MMA_TILES_M][MMA_TILES_N][4] = {{{0.f}}};
  mma_step_emulated(part, a_lo, b, warp_scratch);
  mma_step_emulated(part, a, b_lo, warp_scratch);
  mma_step_emulated(part, a, b, warp_scratch);
  for (int i = 0; i < MMA_TILES_M; ++i)
    for (int j = 0; j < MMA_TILES_N; ++j)
      for (int r = 0; r < 4; ++r) acc[i][j][r] += part[i][j][r];
#else
#pragma unroll
  for (int i = 0; i < MMA_TILES_M; ++i)
#pragma unroll
    for (int j = 0; j < MMA_TILES_N; ++j)
      mma_split_into(acc[i][j], a[i], a_lo[i], b[j], b_lo[j] WARP_SCRATCH_ARG);
#endif
#elif EMULATE_MMA
  mma_step_emulated(acc, a, b, warp_scratch);
#else
#pragma unroll
  for (int i = 0; i < MMA_TILES_M; ++i)
#pragma unroll
    for (int j = 0; j < MMA_TILES_N; ++j) MMA(acc[i][j], a[i], b[j]);
#endif
}

// acc += this warp's share of one staged slab (as, bs: one buffer of each stage), k-steps
// of 8 in order, mma tiles i-major. a_frag, b_frag: the lane's offsets for its first mma
// tiles at k-step 0. Slot t of a k-step holds k = kk + 2t, slot t + 4 holds k = kk + 2t + 1
// (see the top), so each fragment comes with few, wide loads:
//   A-K: a0 a1 a2 a3 = one float4 (rows g, g + 8 at k = kk + 2t, then at kk + 2t + 1);
//        k-step kk: halves flipped by 2kk (a_frag ^ 2kk); tile i: + 16i lines' worth.
//   A-M: a0 a1 = float2 at row kk + 2t, a2 a3 = float2 at row kk + 2t + 1 (+ TILE_M);
//        odd tiles: a_frag ^ 16 (the other half of a 32-word block).
//   B-K: b0 b1 = float2 at k = kk + 2t (b_frag ^ kk); tile j: + 8j rows.
//   B-P: b0 b1 = float2 on line kk/2 + t; odd tiles: b_frag ^ 16.
// The XORs only touch bits that the rest of the offset leaves clear.
INLINE void mma_slab(float acc[MMA_TILES_M][MMA_TILES_N][4], const __local float* as,
                     const __local float* bs, int a_frag, int b_frag WARP_SCRATCH_PARAM) {
#pragma unroll
  for (int kk = 0; kk < TILE_K; kk += 8) {
    uint a[MMA_TILES_M][4], b[MMA_TILES_N][2];
#pragma unroll
    for (int i = 0; i < MMA_TILES_M; ++i) {
#if TRANS_A
      const __local float* p = as + ((i & 1) ? a_frag ^ 16 : a_frag) + kk * TILE_M + 32 * (i >> 1);
      const float2 v01 = *(const __local float2*)p, v23 = *(const __local float2*)(p + TILE_M);
      a[i][0] = as_uint(v01.x), a[i][1] = as_uint(v01.y);
      a[i][2] = as_uint(v23.x), a[i][3] = as_uint(v23.y);
#else
      const float4 v = *(const __local float4*)(as + (a_frag ^ (2 * kk)) + 16 * i * TILE_K);
      a[i][0] = as_uint(v.x), a[i][1] = as_uint(v.y), a[i][2] = as_uint(v.z), a[i][3] = as_uint(v.w);
#endif
    }
#pragma unroll
    for (int j = 0; j < MMA_TILES_N; ++j) {
#if TRANS_B
      const float2 v = *(const __local float2*)(bs + (b_frag ^ kk) + 8 * j * TILE_K);
#else
      const float2 v =
          *(const __local float2*)(bs + ((j & 1) ? b_frag ^ 16 : b_frag) + kk * TILE_N + 32 * (j >> 1));
#endif
      b[j][0] = as_uint(v.x), b[j][1] = as_uint(v.y);
    }
    mma_step(acc, a, b WARP_SCRATCH_ARG);
  }
}

// ---------------------------------------------------------------- the product

// The slab at k0 into a_next, b_next, in gemm_tf32 (it names that kernel's locals): with
// VECTOR_IO a slab wholly inside K comes from the precomputed chunk addresses, the last,
// partial one through the general path.
#if VECTOR_IO
#define FETCH_SLAB(k0)                                                                       \
  ((k0) + TILE_K <= K ? load_full_slab(a_next, b_next, a_src, b_src, (k0)*A_K_STRIDE(a_cols), \
                                       (k0)*B_K_STRIDE(b_cols), tid)                          \
                      : load_slab(a_next, b_next, A, a_rows, a_cols, a_vec, B, b_rows, b_cols, \
                                  b_vec, m0, n0, (k0), tid))
#else
#define FETCH_SLAB(k0) \
  load_slab(a_next, b_next, A, a_rows, a_cols, a_vec, B, b_rows, b_cols, b_vec, m0, n0, (k0), tid)
#endif

// WORK_GROUP_SIZE: declared for the compiler unless the host caps the registers.
__kernel WORK_GROUP_SIZE(WG_SIZE)
void gemm_tf32(const int M, const int N, const int K, const float alpha, const float beta,
               const __global float* restrict A, const ulong offset_a, const ulong stride_a,
               const __global float* restrict B, const ulong offset_b, const ulong stride_b,
               __global float* C, const ulong offset_c, const ulong stride_c,
               const __global float* bias, const int use_bias) {
  const ulong z = get_group_id(2);
  const ulong slice_a = offset_a + z * stride_a, slice_b = offset_b + z * stride_b;
  A += slice_a;
  B += slice_b;
  const int tid = get_local_id(0);
  const int warp = tid / WARP_SIZE, lane = lane_id();
  const int g = lane >> 2, t = lane & 3;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  // Tile order: work-groups start in the order of their linear id (group id 0 fastest);
  // it is mapped to tiles in bands of GROUP_M tile rows, each band walked column by column,
  // so that the work-groups in flight at once share a few panels of A and B in L2 instead
  // of sweeping all of B for every tile row.
  const int tiles_n = get_num_groups(0), tiles_m = get_num_groups(1);
  const int id = get_group_id(1) * tiles_n + get_group_id(0);
  const int band = id / (GROUP_M * tiles_n), in_band = id % (GROUP_M * tiles_n);
  const int band_rows = tiles_m - band * GROUP_M < GROUP_M ? tiles_m - band * GROUP_M : GROUP_M;
  const int m0 = (band * GROUP_M + in_band % band_rows) * TILE_M;
  const int n0 = in_band / band_rows * TILE_N;

  // The stored matrices: rows × cols, row-major.
#if TRANS_A
  const int a_rows = K, a_cols = M;
#else
  const int a_rows = M, a_cols = K;
#endif
#if TRANS_B
  const int b_rows = N, b_cols = K;
#else
  const int b_rows = K, b_cols = N;
#endif
#if VECTOR_IO
  const int a_vec = 1, b_vec = 1;
#else
  const int a_vec = (slice_a % 4 == 0) && (a_cols % 4 == 0);
  const int b_vec = (slice_b % 4 == 0) && (b_cols % 4 == 0);
#endif

  // Two buffers per operand (float4 arrays: 16-byte aligned for the float4 stores).
  __local float4 a_stage[2 * A_STAGE_FLOATS / 4];
  __local float4 b_stage[2 * B_STAGE_FLOATS / 4];
  __local float* a_s = (__local float*)a_stage;
  __local float* b_s = (__local float*)b_stage;
#if EMULATE_MMA
  __local float mma_scratch[WARPS_M * WARPS_N * STEP_SCRATCH_FLOATS];
#endif

  // This lane's fragment offsets in a stage buffer (see the top and mma_slab).
#if TRANS_A  // A-M: row 2t, words 2g ^ 8t of the warp's first 32-word block
  const int a_frag = 2 * t * TILE_M + 32 * (wm * WARP_TILE_M / 32) + ((2 * g) ^ (t << 3));
#else  // A-K: line 8·(the warp's first tile) + g, words 4t, halves ^ AK_SWZ(g)
  const int a_frag = (8 * (wm * WARP_TILE_M / 16) + g) * 2 * TILE_K + 4 * t + AK_SWZ(g);
#endif
#if TRANS_B  // B-K: row n = the warp's first column + g, k = 2t, segments ^ BK_SWZ(g)
  const int b_frag = (wn * WARP_TILE_N + g) * TILE_K + 2 * t + (BK_SWZ(g) << 3);
#else  // B-P: line t, words 2·(the warp's first column + g) ^ 8t
  const int b_frag = t * 2 * TILE_N + 2 * wn * WARP_TILE_N + ((2 * g) ^ (t << 3));
#endif
#if EMULATE_MMA
  __local float* warp_scratch = mma_scratch + warp * STEP_SCRATCH_FLOATS;
#endif

  float acc[MMA_TILES_M][MMA_TILES_N][4];
#pragma unroll
  for (int i = 0; i < MMA_TILES_M; ++i)
#pragma unroll
    for (int j = 0; j < MMA_TILES_N; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

  float4 a_next[A_UNITS_PER_ITEM * A_F4], b_next[B_UNITS_PER_ITEM * B_F4];  // the next slab
#if VECTOR_IO
  const __global float* a_src[A_CHUNKS];
  const __global float* b_src[B_CHUNKS];
  chunk_sources(a_src, b_src, A, a_rows, a_cols, B, b_rows, b_cols, m0, n0, tid);
#endif

  // Pipeline: slab s is multiplied from buffer s % 2 while slab s + 1 is in flight from
  // global memory into registers; after the mma loop those go into buffer (s + 1) % 2,
  // last read during slab s − 1, before the barrier that ended it; then one barrier. The
  // loop body takes two slabs, so that each buffer's offset is a constant.
  FETCH_SLAB(0);
  store_slab(a_s, b_s, a_next, b_next, tid);
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int k0 = 0; k0 < K; k0 += 2 * TILE_K) {
    int more = k0 + TILE_K < K;  // the same in every work-item
    if (more) FETCH_SLAB(k0 + TILE_K);
    mma_slab(acc, a_s, b_s, a_frag, b_frag WARP_SCRATCH_ARG);
    if (more) store_slab(a_s + A_STAGE_FLOATS, b_s + B_STAGE_FLOATS, a_next, b_next, tid);
    barrier(CLK_LOCAL_MEM_FENCE);
    if (!more) break;

    more = k0 + 2 * TILE_K < K;
    if (more) FETCH_SLAB(k0 + 2 * TILE_K);
    mma_slab(acc, a_s + A_STAGE_FLOATS, b_s + B_STAGE_FLOATS, a_frag, b_frag WARP_SCRATCH_ARG);
    if (more) store_slab(a_s, b_s, a_next, b_next, tid);
    barrier(CLK_LOCAL_MEM_FENCE);
  }

  const ulong slice_c = offset_c + z * stride_c;
  C += slice_c;

  // Epilogue, in matmul.cl's order: alpha·acc, + bias, + beta·C. Lane (g, t) holds columns
  // 2t, 2t+1 of rows g and g+8 of each mma tile: a float2 when C's rows keep them 8-byte
  // aligned (N even, slice offset even).
  const int c_vec = VECTOR_IO || ((slice_c % 2 == 0) && (N % 2 == 0));
#pragma unroll
  for (int i = 0; i < MMA_TILES_M; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int m = m0 + wm * WARP_TILE_M + i * 16 + g + h * 8;
      if (m >= M) continue;
#pragma unroll
      for (int j = 0; j < MMA_TILES_N; ++j) {
        const int n = n0 + wn * WARP_TILE_N + j * 8 + 2 * t;
        if (n >= N) continue;
        __global float* out = C + m * N + n;
        float2 v = (float2)(alpha * acc[i][j][2 * h], alpha * acc[i][j][2 * h + 1]);
        if (c_vec) {  // n + 1 < N too
          if (use_bias) v += (float2)(bias[n], bias[n + 1]);
          if (beta != 0.f) v += beta * *(__global float2*)out;
          *(__global float2*)out = v;
        } else {
          if (use_bias) v.x += bias[n];
          if (beta != 0.f) v.x += beta * out[0];
          out[0] = v.x;
          if (n + 1 < N) {
            if (use_bias) v.y += bias[n + 1];
            if (beta != 0.f) v.y += beta * out[1];
            out[1] = v.y;
          }
        }
      }
    }
}

// ---------------------------------------------------------------- the device probe

// C[16×8] = A[16×8] · B[8×8] (row-major, B as [k][n]) by one mma, operands rounded with
// round_tf32_operand on the way (SPLIT_TF32: split, three mma, by MMA_OPERANDS): one warp.
// Then the quad exchange the tiled attention's softmax uses (SHFL_XOR with masks 1 and 2):
// exchanged[32·i + lane] = c0 of lane lane ^ (i + 1), i = 0, 1.
__kernel __attribute__((reqd_work_group_size(WARP_SIZE, 1, 1)))
void tf32_probe(const __global float* A, const __global float* B, __global float* C,
                __global float* exchanged) {
  const int lane = lane_id(), g = lane >> 2, t = lane & 3;
#if EMULATE_MMA
  __local float mma_scratch[MMA_SCRATCH_FLOATS];
  __local float* warp_scratch = mma_scratch;
#endif
  uint a[4], b[2];
  a[0] = as_uint(TF32_OPERAND(A[g * 8 + t]));
  a[1] = as_uint(TF32_OPERAND(A[(g + 8) * 8 + t]));
  a[2] = as_uint(TF32_OPERAND(A[g * 8 + t + 4]));
  a[3] = as_uint(TF32_OPERAND(A[(g + 8) * 8 + t + 4]));
  b[0] = as_uint(TF32_OPERAND(B[t * 8 + g]));
  b[1] = as_uint(TF32_OPERAND(B[(t + 4) * 8 + g]));
  float c[4] = {0.f, 0.f, 0.f, 0.f};
  MMA_OPERANDS(c, a, b);  // the tiled attention's form of the split (SPLIT_TF32)
  C[g * 8 + 2 * t] = c[0];
  C[g * 8 + 2 * t + 1] = c[1];
  C[(g + 8) * 8 + 2 * t] = c[2];
  C[(g + 8) * 8 + 2 * t + 1] = c[3];
  exchanged[lane] = SHFL_XOR(c[0], 1);
  exchanged[WARP_SIZE + lane] = SHFL_XOR(c[0], 2);
}
