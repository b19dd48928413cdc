// matmul.cl — one register-blocked, tiled SGEMM for every matrix product of the model
// (in the spirit of CLBlast's xgemm), and the bias-gradient column sum.
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
// Tiling. A work-group owns a TILE_M × TILE_N tile of C and walks K in steps of TILE_K.
// Each step it stages a TILE_K × TILE_M slab of op(A) and a TILE_K × TILE_N slab of op(B)
// in __local memory, k-major (zeros beyond M, N or K, so every size works: odd sizes,
// K = 1, one row), then each work-item accumulates a WPT_M × WPT_N micro-tile in private
// registers: per k, WPT_M values of A and WPT_N of B feed WPT_M·WPT_N multiply-adds.
//
// Mapping. Work-group = (RTS_N, RTS_M) = (TILE_N/WPT_N, TILE_M/WPT_M) work-items;
// work-item (tx, ty) owns rows ty + i·RTS_M and columns tx + j·RTS_N of the tile. The
// stride makes neighbouring work-items read neighbouring (or the same, broadcast) local
// addresses and write neighbouring addresses of C. Staging loads are ordered so that
// neighbouring work-items read neighbouring global addresses of the stored matrix (fast
// dimension k for A and for Bᵀ, m for Aᵀ, n for B); local rows are padded by one float so
// the k-fast stores fall in different banks.
//
// Tunables (build options; the host picks them per device, model/gemm.cpp):
//   TILE_M, TILE_N   tile of C per work-group            (multiples of WPT_M, WPT_N)
//   TILE_K           depth of the slab staged per step   (local floats: TILE_K·(TILE_M+TILE_N+2))
//   WPT_M, WPT_N     micro-tile of C per work-item       (registers: WPT_M·WPT_N accumulators)
//   TRANS_A, TRANS_B 0/1, see above
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
#define TILE_K 16  // depth of the K slab staged in local memory per step
#endif
#ifndef WPT_M
#define WPT_M 4  // rows of C per work-item (divides TILE_M)
#endif
#ifndef WPT_N
#define WPT_N 4  // columns of C per work-item (divides TILE_N)
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
#define A_LD (TILE_M + 1)
#define B_LD (TILE_N + 1)

// op(A)[m, k], zero outside the matrix.
inline float load_op_a(const __global float* A, int M, int K, int m, int k) {
  if (m >= M || k >= K) return 0.f;
#if TRANS_A
  return A[k * M + m];
#else
  return A[m * K + k];
#endif
}

// op(B)[k, n], zero outside the matrix.
inline float load_op_b(const __global float* B, int N, int K, int k, int n) {
  if (n >= N || k >= K) return 0.f;
#if TRANS_B
  return B[n * K + k];
#else
  return B[k * N + n];
#endif
}

// a_tile[k][m] = op(A)[m0 + m, k0 + k]; consecutive work-items take consecutive addresses
// of the stored matrix.
inline void stage_a(__local float* a_tile, const __global float* A, int M, int K, int m0,
                    int k0, int tid) {
  for (int e = tid; e < TILE_K * TILE_M; e += WG_SIZE) {
#if TRANS_A
    const int m = e % TILE_M, k = e / TILE_M;
#else
    const int k = e % TILE_K, m = e / TILE_K;
#endif
    a_tile[k * A_LD + m] = load_op_a(A, M, K, m0 + m, k0 + k);
  }
}

// b_tile[k][n] = op(B)[k0 + k, n0 + n].
inline void stage_b(__local float* b_tile, const __global float* B, int N, int K, int n0,
                    int k0, int tid) {
  for (int e = tid; e < TILE_K * TILE_N; e += WG_SIZE) {
#if TRANS_B
    const int k = e % TILE_K, n = e / TILE_K;
#else
    const int n = e % TILE_N, k = e / TILE_N;
#endif
    b_tile[k * B_LD + n] = load_op_b(B, N, K, k0 + k, n0 + n);
  }
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

  __local float a_tile[TILE_K * A_LD];
  __local float b_tile[TILE_K * B_LD];
  float acc[WPT_M][WPT_N];
#pragma unroll
  for (int i = 0; i < WPT_M; ++i)
#pragma unroll
    for (int j = 0; j < WPT_N; ++j) acc[i][j] = 0.f;

  for (int k0 = 0; k0 < K; k0 += TILE_K) {
    stage_a(a_tile, A, M, K, m0, k0, tid);
    stage_b(b_tile, B, N, K, n0, k0, tid);
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (int k = 0; k < TILE_K; ++k) {
      float a[WPT_M], b[WPT_N];
#pragma unroll
      for (int i = 0; i < WPT_M; ++i) a[i] = a_tile[k * A_LD + ty + i * RTS_M];
#pragma unroll
      for (int j = 0; j < WPT_N; ++j) b[j] = b_tile[k * B_LD + tx + j * RTS_N];
#pragma unroll
      for (int i = 0; i < WPT_M; ++i)
#pragma unroll
        for (int j = 0; j < WPT_N; ++j) acc[i][j] += a[i] * b[j];  // contracted to an FMA
    }
    barrier(CLK_LOCAL_MEM_FENCE);  // the next step overwrites the tiles
  }

#pragma unroll
  for (int i = 0; i < WPT_M; ++i) {
    const int m = m0 + ty + i * RTS_M;
    if (m >= M) break;  // rows grow with i
#pragma unroll
    for (int j = 0; j < WPT_N; ++j) {
      const int n = n0 + tx + j * RTS_N;
      if (n >= N) break;
      float value = alpha * acc[i][j];
      if (use_bias) value += bias[n];
      if (beta != 0.f) value += beta * C[m * N + n];
      C[m * N + n] = value;
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
