// matmul.cl — the portable fp32 SGEMM behind every matrix product of the model (in the
// spirit of CLBlast's xgemm and the classic 128×128 CUDA SGEMMs), and the bias-gradient
// column sum.
//
// gemm: for each slice z = get_group_id(2) of a batch,
//     C[M,N] = alpha · op(A)[M,K] · op(B)[K,N] (+ bias[n]) + beta · C        (row-major)
// op(A) = A stored [M,K], or Aᵀ with A stored [K,M] (TRANS_A); op(B) = B stored [K,N], or
// Bᵀ with B stored [N,K] (TRANS_B). C is not read when beta == 0 (it may hold garbage).
// The model's products (Ops, model/gemm.cpp):
//     matmul forward   out   = inp · Wᵀ + bias   TRANS_B   M=rows N=OC K=C
//     matmul dinp      dinp  = dout · W                    M=rows N=C  K=OC
//     matmul dweight   dW   += doutᵀ · inp       TRANS_A   M=OC   N=C  K=rows, beta=1
//
// Tiling. A work-group owns a TILE_M × TILE_N tile of C and walks K in slabs of TILE_K.
// Each slab of op(A) and op(B) is staged k-major in __local memory (a_tile[k][m],
// b_tile[k][n]; zeros beyond M, N or K, so every size works: odd sizes, K = 1, one row).
// Each work-item accumulates a WPT_M × WPT_N micro-tile in registers, made of 4 × 4
// blocks of contiguous rows and columns, so that per k it reads its operands from local
// memory as WPT_M/4 + WPT_N/4 float4 loads for WPT_M·WPT_N multiply-adds (8×8: 4 vector
// loads feed 64 FMAs; a scalar layout needs 16 loads, which made the kernel local-memory
// bound).
//
// Mapping. Work-group = (RTS_N, RTS_M) = (TILE_N/WPT_N, TILE_M/WPT_M) work-items;
// work-item (tx, ty) owns rows c·4·RTS_M + 4·ty + r (block c, r < 4) and columns
// d·4·RTS_N + 4·tx + s of the tile: the blocks of one work-group interleave, so a warp's
// float4 reads of b_tile cover consecutive addresses and its reads of a_tile broadcast.
//
// Pipeline (register prefetch, local double buffer, one barrier per slab): while a slab
// is multiplied out of one local buffer, the next slab's global loads are already in
// flight into registers; they are stored into the other buffer after the arithmetic, and
// one barrier separates the two. Global loads are float4 along the stored matrix's fast
// dimension (k for A and Bᵀ, m for Aᵀ, n for B): consecutive work-items read consecutive
// addresses. Tiles entirely inside M × N × K take a path without bounds checks; edge
// tiles check every element. With VECTOR_IO the host has proved every row of A, B and C
// starts on a 16-byte boundary, and the unchecked path uses float4 pointers (one 128-bit
// access); without it, vload4 (any alignment).
//
// Tunables (build options; the planner picks them per device and shape class from the
// tuning database, model/gemm.cpp; `attnscope gemm --tune` fills it):
//   TILE_M, TILE_N   tile of C per work-group        (multiples of 4·RTS_M, 4·RTS_N)
//   TILE_K           depth of a staged slab          (multiple of 4)
//   WPT_M, WPT_N     micro-tile per work-item        (multiples of 4; registers: WPT_M·WPT_N)
//   VECTOR_IO        0/1, see above
//   TRANS_A, TRANS_B 0/1, see above
// Local memory: 2 buffers · TILE_K · (TILE_M + TILE_N + 2·PAD) floats.
// Each output is one work-item's sum in a fixed order: results are deterministic.
// Split-K: when M·N gives too few tiles to fill the device and K is long (dweight of a
// C×C projection: 768×768 tiles, K = B·T), the host runs the K-slices as a batch of
// products into scratch (beta = 0) and gemm_split_reduce adds them in order.
// Index arithmetic is 32-bit within a slice (the host checks that each matrix has fewer
// than 2^31 elements); slice offsets are 64-bit.
//
// matmul_dbias: dbias[oc] += Σ_n dout[n, oc]. Work-group (DBIAS_COLS, DBIAS_ROWS): each
// column's rows are split over DBIAS_ROWS work-items (strided, coalesced across columns),
// whose partial sums are added in local memory in a fixed order.
// Nothing is kept for backward: the products' backward are products too.

#ifndef TILE_M
#define TILE_M 32  // rows of C per work-group
#endif
#ifndef TILE_N
#define TILE_N 32  // columns of C per work-group
#endif
#ifndef TILE_K
#define TILE_K 8  // depth of the K slab staged in local memory per step (multiple of 4)
#endif
#ifndef WPT_M
#define WPT_M 4  // rows of C per work-item (multiple of 4, divides TILE_M)
#endif
#ifndef WPT_N
#define WPT_N 4  // columns of C per work-item (multiple of 4, divides TILE_N)
#endif
#ifndef VECTOR_IO
#define VECTOR_IO 0  // 1: rows of A, B, C are 16-byte aligned (the host checked)
#endif
#ifndef TRANS_A
#define TRANS_A 0  // 1: A is stored [K,M] and used transposed
#endif
#ifndef TRANS_B
#define TRANS_B 0  // 1: B is stored [N,K] and used transposed
#endif
#ifndef DBIAS_COLS
#define DBIAS_COLS 32  // matmul_dbias: columns per work-group
#endif
#ifndef DBIAS_ROWS
#define DBIAS_ROWS 8  // matmul_dbias: work-items sharing one column's rows
#endif

#define RTS_M (TILE_M / WPT_M)
#define RTS_N (TILE_N / WPT_N)
#define WG_SIZE (RTS_M * RTS_N)
// Rows of a local slab are padded by 4 floats (keeps float4 alignment): the k-fast
// scatter of A's and Bᵀ's slabs then falls into different banks for TILE_K = 8.
#define PAD 4
#define A_LD (TILE_M + PAD)
#define B_LD (TILE_N + PAD)
#define A_SLAB (TILE_K * A_LD)
#define B_SLAB (TILE_K * B_LD)
// float4 global loads per slab, in all and per work-item (the last round may be partial).
#define A_VECS (TILE_M * TILE_K / 4)
#define B_VECS (TILE_N * TILE_K / 4)
#define A_ROUNDS ((A_VECS + WG_SIZE - 1) / WG_SIZE)
#define B_ROUNDS ((B_VECS + WG_SIZE - 1) / WG_SIZE)

// Four consecutive floats of a row at p: one 128-bit access where the host proved
// alignment, else vload4.
inline float4 load4(const __global float* p) {
#if VECTOR_IO
  return *(const __global float4*)p;
#else
  return vload4(0, p);
#endif
}

// The same four floats, each zero where its index (first + i) reaches `limit` or the row
// is outside the matrix.
inline float4 load4_checked(const __global float* p, bool row_inside, int first, int limit) {
  float4 v = (float4)(0.f);
  if (row_inside) {
    if (first + 0 < limit) v.s0 = p[0];
    if (first + 1 < limit) v.s1 = p[1];
    if (first + 2 < limit) v.s2 = p[2];
    if (first + 3 < limit) v.s3 = p[3];
  }
  return v;
}

// Vector e of the A slab at k0 (e < A_VECS): op(A)[m0 + m, k0 + k .. k + 3] (k-fast, A
// stored [M,K]) or op(A)[m0 + m .. m + 3, k0 + k] (m-fast, A stored [K,M]).
inline float4 load_a(const __global float* A, int M, int K, int m0, int k0, int e, bool checked) {
#if TRANS_A
  const int m = (e % (TILE_M / 4)) * 4, k = e / (TILE_M / 4);
  const __global float* p = A + (k0 + k) * M + m0 + m;
  return checked ? load4_checked(p, k0 + k < K, m0 + m, M) : load4(p);
#else
  const int k = (e % (TILE_K / 4)) * 4, m = e / (TILE_K / 4);
  const __global float* p = A + (m0 + m) * K + k0 + k;
  return checked ? load4_checked(p, m0 + m < M, k0 + k, K) : load4(p);
#endif
}

inline void store_a(__local float* a_tile, int e, float4 v) {
#if TRANS_A
  const int m = (e % (TILE_M / 4)) * 4, k = e / (TILE_M / 4);
  *(__local float4*)(a_tile + k * A_LD + m) = v;
#else
  const int k = (e % (TILE_K / 4)) * 4, m = e / (TILE_K / 4);
  a_tile[(k + 0) * A_LD + m] = v.s0;
  a_tile[(k + 1) * A_LD + m] = v.s1;
  a_tile[(k + 2) * A_LD + m] = v.s2;
  a_tile[(k + 3) * A_LD + m] = v.s3;
#endif
}

// Vector e of the B slab at k0: op(B)[k0 + k, n0 + n .. n + 3] (n-fast, B stored [K,N]) or
// op(B)[k0 + k .. k + 3, n0 + n] (k-fast, B stored [N,K]).
inline float4 load_b(const __global float* B, int N, int K, int n0, int k0, int e, bool checked) {
#if TRANS_B
  const int k = (e % (TILE_K / 4)) * 4, n = e / (TILE_K / 4);
  const __global float* p = B + (n0 + n) * K + k0 + k;
  return checked ? load4_checked(p, n0 + n < N, k0 + k, K) : load4(p);
#else
  const int n = (e % (TILE_N / 4)) * 4, k = e / (TILE_N / 4);
  const __global float* p = B + (k0 + k) * N + n0 + n;
  return checked ? load4_checked(p, k0 + k < K, n0 + n, N) : load4(p);
#endif
}

inline void store_b(__local float* b_tile, int e, float4 v) {
#if TRANS_B
  const int k = (e % (TILE_K / 4)) * 4, n = e / (TILE_K / 4);
  b_tile[(k + 0) * B_LD + n] = v.s0;
  b_tile[(k + 1) * B_LD + n] = v.s1;
  b_tile[(k + 2) * B_LD + n] = v.s2;
  b_tile[(k + 3) * B_LD + n] = v.s3;
#else
  const int n = (e % (TILE_N / 4)) * 4, k = e / (TILE_N / 4);
  *(__local float4*)(b_tile + k * B_LD + n) = v;
#endif
}

// One output element of the epilogue: alpha·acc (+ bias) (+ beta·C).
inline float finish_value(float acc, float alpha, float beta, const __global float* bias,
                          int use_bias, int n, const __global float* c) {
  float value = alpha * acc;
  if (use_bias) value += bias[n];
  if (beta != 0.f) value += beta * *c;
  return value;
}

__kernel __attribute__((reqd_work_group_size(RTS_N, RTS_M, 1)))
void gemm(const int M, const int N, const int K, const float alpha, const float beta,
          const __global float* restrict A, const ulong offset_a, const ulong stride_a,
          const __global float* restrict B, const ulong offset_b, const ulong stride_b,
          __global float* C, const ulong offset_c, const ulong stride_c,
          const __global float* bias, const int use_bias) {
  const ulong z = get_group_id(2);
  A += offset_a + z * stride_a;
  B += offset_b + z * stride_b;
  C += offset_c + z * stride_c;
  const int tx = get_local_id(0), ty = get_local_id(1);
  const int tid = ty * RTS_N + tx;
  const int m0 = get_group_id(1) * TILE_M, n0 = get_group_id(0) * TILE_N;
  const bool inside_mn = m0 + TILE_M <= M && n0 + TILE_N <= N;

  // Declared as float4 so that the float4 accesses below are aligned (a float array is
  // only 4-byte aligned, and NVIDIA faults on a misaligned 128-bit shared-memory access).
  __local float4 a_vectors[2 * A_SLAB / 4], b_vectors[2 * B_SLAB / 4];
  __local float* a_tiles = (__local float*)a_vectors;
  __local float* b_tiles = (__local float*)b_vectors;
  float4 a_next[A_ROUNDS], b_next[B_ROUNDS];  // the next slab, in flight
  float acc[WPT_M][WPT_N];
#pragma unroll
  for (int i = 0; i < WPT_M; ++i)
#pragma unroll
    for (int j = 0; j < WPT_N; ++j) acc[i][j] = 0.f;

  // The first slab goes straight to buffer 0.
  if (K > 0) {
    const bool checked = !inside_mn || TILE_K > K;
#pragma unroll
    for (int r = 0; r < A_ROUNDS; ++r) {
      const int e = tid + r * WG_SIZE;
      if (A_VECS % WG_SIZE == 0 || e < A_VECS) store_a(a_tiles, e, load_a(A, M, K, m0, 0, e, checked));
    }
#pragma unroll
    for (int r = 0; r < B_ROUNDS; ++r) {
      const int e = tid + r * WG_SIZE;
      if (B_VECS % WG_SIZE == 0 || e < B_VECS) store_b(b_tiles, e, load_b(B, N, K, n0, 0, e, checked));
    }
  }
  barrier(CLK_LOCAL_MEM_FENCE);

  int buffer = 0;
  for (int k0 = 0; k0 < K; k0 += TILE_K) {
    const int k_next = k0 + TILE_K;
    const bool more = k_next < K;
    if (more) {  // issue the next slab's global loads before this slab's arithmetic
      const bool checked = !inside_mn || k_next + TILE_K > K;
#pragma unroll
      for (int r = 0; r < A_ROUNDS; ++r) {
        const int e = tid + r * WG_SIZE;
        if (A_VECS % WG_SIZE == 0 || e < A_VECS) a_next[r] = load_a(A, M, K, m0, k_next, e, checked);
      }
#pragma unroll
      for (int r = 0; r < B_ROUNDS; ++r) {
        const int e = tid + r * WG_SIZE;
        if (B_VECS % WG_SIZE == 0 || e < B_VECS) b_next[r] = load_b(B, N, K, n0, k_next, e, checked);
      }
    }

    const __local float* a_tile = a_tiles + buffer * A_SLAB;
    const __local float* b_tile = b_tiles + buffer * B_SLAB;
#pragma unroll
    for (int k = 0; k < TILE_K; ++k) {
      float a[WPT_M], b[WPT_N];
#pragma unroll
      for (int c = 0; c < WPT_M / 4; ++c) {
        const float4 v = *(const __local float4*)(a_tile + k * A_LD + c * 4 * RTS_M + 4 * ty);
        a[4 * c] = v.s0, a[4 * c + 1] = v.s1, a[4 * c + 2] = v.s2, a[4 * c + 3] = v.s3;
      }
#pragma unroll
      for (int d = 0; d < WPT_N / 4; ++d) {
        const float4 v = *(const __local float4*)(b_tile + k * B_LD + d * 4 * RTS_N + 4 * tx);
        b[4 * d] = v.s0, b[4 * d + 1] = v.s1, b[4 * d + 2] = v.s2, b[4 * d + 3] = v.s3;
      }
#pragma unroll
      for (int i = 0; i < WPT_M; ++i)
#pragma unroll
        for (int j = 0; j < WPT_N; ++j) acc[i][j] = fma(a[i], b[j], acc[i][j]);
    }

    if (more) {  // the other buffer: nobody reads it until after the barrier below
      __local float* a_store = a_tiles + (1 - buffer) * A_SLAB;
      __local float* b_store = b_tiles + (1 - buffer) * B_SLAB;
#pragma unroll
      for (int r = 0; r < A_ROUNDS; ++r) {
        const int e = tid + r * WG_SIZE;
        if (A_VECS % WG_SIZE == 0 || e < A_VECS) store_a(a_store, e, a_next[r]);
      }
#pragma unroll
      for (int r = 0; r < B_ROUNDS; ++r) {
        const int e = tid + r * WG_SIZE;
        if (B_VECS % WG_SIZE == 0 || e < B_VECS) store_b(b_store, e, b_next[r]);
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    buffer = 1 - buffer;
  }

#pragma unroll
  for (int i = 0; i < WPT_M; ++i) {
    const int m = m0 + (i / 4) * 4 * RTS_M + 4 * ty + i % 4;
#pragma unroll
    for (int d = 0; d < WPT_N / 4; ++d) {
      const int n = n0 + d * 4 * RTS_N + 4 * tx;
      __global float* c = C + m * N + n;
      const float4 sum =
          (float4)(acc[i][4 * d], acc[i][4 * d + 1], acc[i][4 * d + 2], acc[i][4 * d + 3]);
#if VECTOR_IO
      if (inside_mn) {
        float4 value = alpha * sum;
        if (use_bias) value += *(const __global float4*)(bias + n);
        if (beta != 0.f) value += beta * *(const __global float4*)c;
        *(__global float4*)c = value;
        continue;
      }
#endif
      if (m >= M) continue;
      const float sums[4] = {sum.s0, sum.s1, sum.s2, sum.s3};
#pragma unroll
      for (int s = 0; s < 4; ++s)
        if (n + s < N) c[s] = finish_value(sums[s], alpha, beta, bias, use_bias, n + s, c + s);
    }
  }
}

__kernel __attribute__((reqd_work_group_size(DBIAS_COLS, DBIAS_ROWS, 1)))
void matmul_dbias(__global float* dbias, const __global float* dout, const int N, const int OC) {
  const int lc = get_local_id(0), lr = get_local_id(1);
  const int oc = get_group_id(0) * DBIAS_COLS + lc;
  float sum = 0.f;
  if (oc < OC)
    for (int n = lr; n < N; n += DBIAS_ROWS) sum += dout[n * OC + oc];
  __local float partial[DBIAS_ROWS * DBIAS_COLS];
  partial[lr * DBIAS_COLS + lc] = sum;
  barrier(CLK_LOCAL_MEM_FENCE);
  if (lr == 0 && oc < OC) {
    float total = 0.f;
    for (int r = 0; r < DBIAS_ROWS; ++r) total += partial[r * DBIAS_COLS + lc];
    dbias[oc] += total;
  }
}

// gemm_split_reduce: C[i] = alpha · Σ_s partials[s][i] + beta · C[i], slices in order; one
// work-item per element of C. The partials are the products of K-slices (split-K, used
// when M·N alone gives too few tiles to fill the device).
__kernel void gemm_split_reduce(__global float* C, const ulong offset_c,
                                const __global float* partials, const int splits,
                                const ulong count, const float alpha, const float beta) {
  const size_t i = get_global_id(0);
  if (i >= count) return;
  float sum = 0.f;
  for (int s = 0; s < splits; ++s) sum += partials[s * count + i];
  C += offset_c;
  C[i] = alpha * sum + (beta != 0.f ? beta * C[i] : 0.f);
}
