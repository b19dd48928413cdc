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
// Why cvt.rna: PTX leaves the tf32 register format implementation-defined (≥ 10 mantissa
// bits); on sm_80/sm_90 the tensor core reads the top 19 bits of each 32-bit operand, so a
// plain fp32 value would be truncated, a bias towards zero that accumulates over long
// sums. cvt.rna.tf32.f32 rounds to nearest (ties away from zero) instead, once per element
// as it is staged. Its host emulation is attnscope::round_to_tf32 (model/tf32.cpp), and
// probe_tf32 checks on each device, bit for bit, that the path computes exactly that
// before it is used.
//
// Mapping. A work-group is WARPS_M × WARPS_N warps of 32 work-items, with a 1-D local
// size (WG_SIZE) so that warp w is local ids [32w, 32w + 32); it owns a TILE_M × TILE_N
// tile of C (group ids (0, 1) = tile column, tile row). Warp (wm, wn) = (w / WARPS_N,
// w % WARPS_N) owns a WARP_TILE_M × WARP_TILE_N sub-tile: MMA_TILES_M × MMA_TILES_N tiles of
// 16 × 8, each one mma.sync.m16n8k8 per 8 of K. Defaults: 128 × 128 tiles, 8 warps as 2 × 4,
// a warp 64 × 32 = 4 × 4 mma tiles, 64 fp32 accumulators per lane.
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32), with g = lane >> 2,
// t = lane & 3, (row, column) of the 16×8 A, 8×8 B (k, n) and 16×8 C tiles:
//     A: a0 (g, t)   a1 (g+8, t)   a2 (g, t+4)   a3 (g+8, t+4)
//     B: b0 (t, g)   b1 (t+4, g)
//     C: c0 (g, 2t)  c1 (g, 2t+1)  c2 (g+8, 2t)  c3 (g+8, 2t+1)
//
// Staging. Per step of TILE_K, each operand's slab is copied into __local memory in the
// orientation it is stored in (no transposition on the way): a row of the stored matrix is
// contiguous in global memory and in the stage, so the copy moves float4 chunks on both
// sides whenever the slice is 16-byte aligned and the row length is a multiple of 4 (else
// — and for chunks that cross the matrix edge — 4 bounds-checked scalars; zeros beyond M, N
// or K, so every size works). Consecutive work-items take consecutive chunks of a row:
// coalesced in every transpose case. The values are rounded to TF32 as they are stored.
//     k-contiguous stage (A, or Bᵀ stored [N,K]): [rows][TILE_K + 4]
//     m/n-contiguous stage (Aᵀ stored [K,M], or B stored [K,N]): [TILE_K][cols + 8]
// The pads make the fragment loads conflict-free (32 banks of 4 bytes): a fragment load
// reads (row g, k t) for the 32 lanes, g = 0..7, t = 0..3. In a k-contiguous stage with row
// pitch P = TILE_K + 4 ≡ 4 (mod 8) words, lane (g, t) hits bank (g·P + t) mod 32 and g·P mod
// 32 takes the 8 distinct multiples of 4, so the 32 lanes hit 32 banks (unpadded, a pitch
// of 32 puts all 8 rows on one bank: 8-way conflicts). In an m/n-contiguous stage with pitch
// P = cols + 8 ≡ 8 (mod 16), lane (g, t) hits bank (t·P + g) mod 32, t·P mod 32 taking the
// 4 distinct multiples of 8: again 32 banks (unpadded, 4-way). The float4 stores write 8
// consecutive chunks of one row per 8 lanes, also conflict-free; both pads keep rows 16-byte
// aligned. (Staging Aᵀ or B k-contiguous instead would transpose on the way: float4 loads
// along m scattered to rows 4 apart hit 2 banks per warp, 16-way conflicts; or scalar loads.)
//
// Pipeline (register prefetch double buffering): the next slab is loaded from global memory
// into registers while the current one is multiplied from local memory; per slab, two
// barriers: one after storing the slab, one before it is overwritten.
//
// Each output is one lane's accumulator, fed by the mma instructions in a fixed order:
// results are deterministic (run to run; not bitwise equal to matmul.cl's gemm).
// Index arithmetic is 32-bit within a slice (the host checks that each matrix has fewer
// than 2^31 elements); slice offsets are 64-bit.
//
// The tensor-core instructions sit behind two functions, mma_m16n8k8_tf32() and to_tf32(),
// and the lane id behind lane_id(). EMULATE_MMA=1 replaces them with portable OpenCL C (the
// mma through a per-warp __local scratch, with the PTX fragment layout above), so that a CPU
// device (PoCL) runs the whole kernel: the tests check the tiling, staging, edges, epilogue
// and fragment mapping that way. Test-only: never used in production.
//
// tf32_probe: one warp multiplies a 16×8 A by an 8×8 B (both row-major, B as [k][n]) into a
// 16×8 C with one mma; probe_tf32 (model/tf32.cpp) runs it to prove the path on a device.
//
// NVIDIA only (inline PTX, sm_80+): the host must not build this file for other devices.

#ifndef TILE_M
#define TILE_M 128  // rows of C per work-group (multiple of 16·WARPS_M)
#endif
#ifndef TILE_N
#define TILE_N 128  // columns of C per work-group (multiple of 8·WARPS_N, of 16 for speed)
#endif
#ifndef TILE_K
#define TILE_K 32  // depth of the K slab staged in local memory per step (multiple of 8)
#endif
#ifndef WARPS_M
#define WARPS_M 2  // warps of a work-group along M
#endif
#ifndef WARPS_N
#define WARPS_N 4  // warps of a work-group along N
#endif
#ifndef TRANS_A
#define TRANS_A 0  // 1: A is stored [K,M] and used transposed
#endif
#ifndef TRANS_B
#define TRANS_B 0  // 1: B is stored [N,K] and used transposed
#endif
#ifndef EMULATE_MMA
#define EMULATE_MMA 0  // 1: portable emulation of mma/cvt/laneid, for tests on CPUs only
#endif

#define WARP_SIZE 32
#define WG_SIZE (WARPS_M * WARPS_N * WARP_SIZE)
#define WARP_TILE_M (TILE_M / WARPS_M)
#define WARP_TILE_N (TILE_N / WARPS_N)
#define MMA_TILES_M (WARP_TILE_M / 16)
#define MMA_TILES_N (WARP_TILE_N / 8)

// Stages: A_S(m, k) and B_S(n, k) address the slab in its stored orientation.
#define K_PITCH (TILE_K + 4)  // k-contiguous rows: ≡ 4 (mod 8) words
#if TRANS_A
#define A_LINE TILE_M  // floats per contiguous line of the stored slab
#define A_LINES TILE_K
#define A_PITCH (TILE_M + 8)  // ≡ 8 (mod 16) words
#define A_S(m, k) a_s[(k) * A_PITCH + (m)]
#else
#define A_LINE TILE_K
#define A_LINES TILE_M
#define A_PITCH K_PITCH
#define A_S(m, k) a_s[(m) * A_PITCH + (k)]
#endif
#if TRANS_B
#define B_LINE TILE_K
#define B_LINES TILE_N
#define B_PITCH K_PITCH
#define B_S(n, k) b_s[(n) * B_PITCH + (k)]
#else
#define B_LINE TILE_N
#define B_LINES TILE_K
#define B_PITCH (TILE_N + 8)
#define B_S(n, k) b_s[(k) * B_PITCH + (n)]
#endif
#define A_CHUNKS (A_LINES * A_LINE / 4 / WG_SIZE)  // float4 chunks per work-item per slab
#define B_CHUNKS (B_LINES * B_LINE / 4 / WG_SIZE)

#if TILE_K % 8 != 0 || WARP_TILE_M % 16 != 0 || WARP_TILE_N % 8 != 0 || \
    TILE_M % (16 * WARPS_M) != 0 || TILE_N % (8 * WARPS_N) != 0
#error "matmul_tf32.cl: TILE_K must be a multiple of 8, TILE_M of 16·WARPS_M, TILE_N of 8·WARPS_N"
#endif
#if (TILE_M * TILE_K) % (4 * WG_SIZE) != 0 || (TILE_N * TILE_K) % (4 * WG_SIZE) != 0
#error "matmul_tf32.cl: each work-item must copy whole float4 chunks of both slabs"
#endif

// ---------------------------------------------------------------- tensor-core primitives

#if EMULATE_MMA

inline int lane_id(void) { return (int)(get_local_id(0) % WARP_SIZE); }

// cvt.rna.tf32.f32: round to nearest, ties away from zero (in magnitude, so adding half a
// unit of the kept last bit to the bit pattern), keeping 10 mantissa bits; inf and NaN
// unchanged. Same as attnscope::round_to_tf32.
inline float to_tf32(float x) {
  uint u = as_uint(x);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  return as_float(u);
}

// The tensor core reads only the TF32 bits of its operands.
inline float tf32_operand(uint x) { return as_float(x & 0xffffe000u); }

// d = a·b + c for one warp, the registers holding the PTX fragments (see the top). Every
// lane writes its fragments of a and b into the warp's scratch (16·8 + 8·8 floats), then
// computes its 4 elements of d from there. Contains two barriers: the whole work-group
// must call it together, as the whole warp must for mma.sync.
inline void mma_m16n8k8_tf32(float* c, const uint* a, const uint* b, __local float* scratch) {
  const int lane = lane_id(), g = lane >> 2, t = lane & 3;
  __local float* sa = scratch;        // A [16][8]
  __local float* sb = scratch + 128;  // B [8][8], [k][n]
  sa[g * 8 + t] = tf32_operand(a[0]);
  sa[(g + 8) * 8 + t] = tf32_operand(a[1]);
  sa[g * 8 + t + 4] = tf32_operand(a[2]);
  sa[(g + 8) * 8 + t + 4] = tf32_operand(a[3]);
  sb[t * 8 + g] = tf32_operand(b[0]);
  sb[(t + 4) * 8 + g] = tf32_operand(b[1]);
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int i = 0; i < 4; ++i) {
    const int row = g + (i >> 1) * 8, col = 2 * t + (i & 1);
    float sum = 0.f;
    for (int k = 0; k < 8; ++k) sum += sa[row * 8 + k] * sb[k * 8 + col];
    c[i] += sum;
  }
  barrier(CLK_LOCAL_MEM_FENCE);  // the next call overwrites the scratch
}

#define MMA_SCRATCH_FLOATS (16 * 8 + 8 * 8)
#define MMA(c, a, b) mma_m16n8k8_tf32(c, a, b, mma_scratch + warp * MMA_SCRATCH_FLOATS)

#else  // NVIDIA: inline PTX

inline int lane_id(void) {
  uint lane;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
  return (int)lane;
}

inline float to_tf32(float x) {
  uint r;
  asm volatile("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return as_float(r);
}

// c = a·b + c: mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, the registers holding
// the PTX fragments (see the top). The whole warp must execute it together.
inline void mma_m16n8k8_tf32(float* c, const uint* a, const uint* b) {
  float d0, d1, d2, d3;
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
      "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};"
      : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),
        "f"(c[1]), "f"(c[2]), "f"(c[3]));
  c[0] = d0, c[1] = d1, c[2] = d2, c[3] = d3;
}

#define MMA(c, a, b) mma_m16n8k8_tf32(c, a, b)

#endif

// ---------------------------------------------------------------- staging

// Elements [col, col + 4) of row `row` of a row-major rows × cols matrix, zero outside it.
// vec: the matrix starts 16-byte aligned and cols % 4 == 0 (then col % 4 == 0 makes the
// chunk aligned, and a chunk is either wholly inside or wholly beyond the row's end).
inline float4 load_chunk(const __global float* X, int rows, int cols, int row, int col, int vec) {
  if (row >= rows) return (float4)(0.f);
  const __global float* p = X + row * cols + col;
  if (vec && col < cols) return *(const __global float4*)p;
  float4 v = (float4)(0.f);
  if (col < cols) v.x = p[0];
  if (col + 1 < cols) v.y = p[1];
  if (col + 2 < cols) v.z = p[2];
  if (col + 3 < cols) v.w = p[3];
  return v;
}

// This work-item's chunks of the slab at k0 of op(A) rows [m0, m0 + TILE_M) (A stored
// rows × cols): chunk i is line (tid + i·WG_SIZE) / (LINE/4) of the stored slab, columns
// from 4 × the remainder, so consecutive work-items read consecutive 16-byte chunks.
inline void load_slab_a(float4* next, const __global float* A, int rows, int cols, int m0, int k0,
                        int tid, int vec) {
#pragma unroll
  for (int i = 0; i < A_CHUNKS; ++i) {
    const int c = tid + i * WG_SIZE, line = c / (A_LINE / 4), col = c % (A_LINE / 4) * 4;
#if TRANS_A
    next[i] = load_chunk(A, rows, cols, k0 + line, m0 + col, vec);
#else
    next[i] = load_chunk(A, rows, cols, m0 + line, k0 + col, vec);
#endif
  }
}

// The same for op(B) columns [n0, n0 + TILE_N).
inline void load_slab_b(float4* next, const __global float* B, int rows, int cols, int n0, int k0,
                        int tid, int vec) {
#pragma unroll
  for (int i = 0; i < B_CHUNKS; ++i) {
    const int c = tid + i * WG_SIZE, line = c / (B_LINE / 4), col = c % (B_LINE / 4) * 4;
#if TRANS_B
    next[i] = load_chunk(B, rows, cols, n0 + line, k0 + col, vec);
#else
    next[i] = load_chunk(B, rows, cols, k0 + line, n0 + col, vec);
#endif
  }
}

inline float4 to_tf32_4(float4 v) {
  return (float4)(to_tf32(v.x), to_tf32(v.y), to_tf32(v.z), to_tf32(v.w));
}

// ---------------------------------------------------------------- the product

__kernel __attribute__((reqd_work_group_size(WG_SIZE, 1, 1)))
void gemm_tf32(const int M, const int N, const int K, const float alpha, const float beta,
               const __global float* restrict A, const ulong offset_a, const ulong stride_a,
               const __global float* restrict B, const ulong offset_b, const ulong stride_b,
               __global float* C, const ulong offset_c, const ulong stride_c,
               const __global float* bias, const int use_bias) {
  const ulong z = get_group_id(2);
  const ulong slice_a = offset_a + z * stride_a, slice_b = offset_b + z * stride_b;
  const ulong slice_c = offset_c + z * stride_c;
  A += slice_a;
  B += slice_b;
  C += slice_c;
  const int tid = get_local_id(0);
  const int warp = tid / WARP_SIZE, lane = lane_id();
  const int g = lane >> 2, t = lane & 3;
  const int wm = warp / WARPS_N, wn = warp % WARPS_N;
  const int m0 = get_group_id(1) * TILE_M, n0 = get_group_id(0) * TILE_N;

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
  const int a_vec = (slice_a % 4 == 0) && (a_cols % 4 == 0);
  const int b_vec = (slice_b % 4 == 0) && (b_cols % 4 == 0);

  // float4 arrays keep the stages 16-byte aligned for the chunk stores.
  __local float4 a_stage[A_LINES * A_PITCH / 4];
  __local float4 b_stage[B_LINES * B_PITCH / 4];
  __local float* a_s = (__local float*)a_stage;
  __local float* b_s = (__local float*)b_stage;
#if EMULATE_MMA
  __local float mma_scratch[WARPS_M * WARPS_N * MMA_SCRATCH_FLOATS];
#endif

  float acc[MMA_TILES_M][MMA_TILES_N][4];
#pragma unroll
  for (int i = 0; i < MMA_TILES_M; ++i)
#pragma unroll
    for (int j = 0; j < MMA_TILES_N; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

  float4 a_next[A_CHUNKS], b_next[B_CHUNKS];  // the next slab, in flight
  load_slab_a(a_next, A, a_rows, a_cols, m0, 0, tid, a_vec);
  load_slab_b(b_next, B, b_rows, b_cols, n0, 0, tid, b_vec);
  for (int k0 = 0; k0 < K; k0 += TILE_K) {
#pragma unroll
    for (int i = 0; i < A_CHUNKS; ++i) {
      const int c = tid + i * WG_SIZE, line = c / (A_LINE / 4), col = c % (A_LINE / 4) * 4;
      *(__local float4*)(a_s + line * A_PITCH + col) = to_tf32_4(a_next[i]);
    }
#pragma unroll
    for (int i = 0; i < B_CHUNKS; ++i) {
      const int c = tid + i * WG_SIZE, line = c / (B_LINE / 4), col = c % (B_LINE / 4) * 4;
      *(__local float4*)(b_s + line * B_PITCH + col) = to_tf32_4(b_next[i]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (k0 + TILE_K < K) {  // loads in flight while this slab is multiplied
      load_slab_a(a_next, A, a_rows, a_cols, m0, k0 + TILE_K, tid, a_vec);
      load_slab_b(b_next, B, b_rows, b_cols, n0, k0 + TILE_K, tid, b_vec);
    }

#pragma unroll
    for (int kk = 0; kk < TILE_K; kk += 8) {
      uint a[MMA_TILES_M][4], b[MMA_TILES_N][2];
#pragma unroll
      for (int i = 0; i < MMA_TILES_M; ++i) {
        const int m = wm * WARP_TILE_M + i * 16 + g;
        a[i][0] = as_uint(A_S(m, kk + t));
        a[i][1] = as_uint(A_S(m + 8, kk + t));
        a[i][2] = as_uint(A_S(m, kk + t + 4));
        a[i][3] = as_uint(A_S(m + 8, kk + t + 4));
      }
#pragma unroll
      for (int j = 0; j < MMA_TILES_N; ++j) {
        const int n = wn * WARP_TILE_N + j * 8 + g;
        b[j][0] = as_uint(B_S(n, kk + t));
        b[j][1] = as_uint(B_S(n, kk + t + 4));
      }
#pragma unroll
      for (int i = 0; i < MMA_TILES_M; ++i)
#pragma unroll
        for (int j = 0; j < MMA_TILES_N; ++j) MMA(acc[i][j], a[i], b[j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);  // the next step overwrites the stages
  }

  // Epilogue, in matmul.cl's order: alpha·acc, + bias, + beta·C. Lane (g, t) holds columns
  // 2t, 2t+1 of rows g and g+8 of each mma tile: a float2 when C's rows keep them 8-byte
  // aligned (N even, slice offset even).
  const int c_vec = (slice_c % 2 == 0) && (N % 2 == 0);
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
// to_tf32 on the way: one warp.
__kernel __attribute__((reqd_work_group_size(WARP_SIZE, 1, 1)))
void tf32_probe(const __global float* A, const __global float* B, __global float* C) {
  const int lane = lane_id(), g = lane >> 2, t = lane & 3;
#if EMULATE_MMA
  const int warp = 0;
  __local float mma_scratch[MMA_SCRATCH_FLOATS];
#endif
  uint a[4], b[2];
  a[0] = as_uint(to_tf32(A[g * 8 + t]));
  a[1] = as_uint(to_tf32(A[(g + 8) * 8 + t]));
  a[2] = as_uint(to_tf32(A[g * 8 + t + 4]));
  a[3] = as_uint(to_tf32(A[(g + 8) * 8 + t + 4]));
  b[0] = as_uint(to_tf32(B[t * 8 + g]));
  b[1] = as_uint(to_tf32(B[(t + 4) * 8 + g]));
  float c[4] = {0.f, 0.f, 0.f, 0.f};
  MMA(c, a, b);
  C[g * 8 + 2 * t] = c[0];
  C[g * 8 + 2 * t + 1] = c[1];
  C[(g + 8) * 8 + 2 * t] = c[2];
  C[(g + 8) * 8 + 2 * t + 1] = c[3];
}
