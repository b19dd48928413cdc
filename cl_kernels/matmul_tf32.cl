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
// of a staged slab. Its host emulation is attnscope::round_to_tf32
// (model/tf32.cpp), and probe_tf32 checks on each device, bit for bit, that the path
// computes exactly that before it is used.
//
// Mapping. A work-group is WARPS_M × WARPS_N warps of 32 work-items, with a 1-D local
// size (WG_SIZE) so that warp w is local ids [32w, 32w + 32); it owns a TILE_M × TILE_N
// tile of C (in bands of GROUP_M tile rows: see gemm_tf32). Warp (wm, wn) = (w / WARPS_N,
// w % WARPS_N) owns a WARP_TILE_M × WARP_TILE_N sub-tile (32 or 64 each): MT × NT mma tiles
// of 16 × 8, each one mma.sync.m16n8k8 per 8 of K.
// Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32), with g = lane >> 2,
// t = lane & 3, (row, column) of the 16×8 A, 8×8 B (k, n) and 16×8 C tiles:
//     A: a0 (g, t)   a1 (g+8, t)   a2 (g, t+4)   a3 (g+8, t+4)
//     B: b0 (t, g)   b1 (t+4, g)
//     C: c0 (g, 2t)  c1 (g, 2t+1)  c2 (g+8, 2t)  c3 (g+8, 2t+1)
// Three freedoms make every fragment a few wide local loads, with no register moves:
//  - Which k of a K-step feeds which of the mma's 8 k slots is free as long as A and B
//    agree. Slabs are walked 16 k at a time (two mma K-steps): lane t takes k = 4t..4t+3,
//    slot t of the first step k = 4t, slot t + 4 k = 4t + 1, of the second 4t + 2, 4t + 3.
//    Where k is contiguous in memory (A stored [M,K], B stored [N,K]), one float4 of a row
//    holds a lane's values of both steps. (The tensor core then sums a step's 8 slots in a
//    fixed order: results are deterministic.)
//  - Which row of C an mma row stands for is free too, as long as A and the epilogue agree.
//    Where m is contiguous (A stored [K,M]), row g + 8h of mma tile i is row
//    g·2·MT + 2i + h of the warp tile: a lane's rows of all MT tiles are 2·MT consecutive
//    floats of a stage row (one or two float4).
//  - Likewise columns: where n is contiguous (B stored [K,N]), column c of mma tile j is
//    column c·NT + j of the warp tile: a lane's NT columns are consecutive floats, and in
//    the epilogue its outputs of one row are NT consecutive floats of C.
//
// Stages. Each slab of TILE_K (16, 32 or 64) is copied into __local memory unchanged, in
// 16-byte chunks of the stored rows: a stage row is a row of the stored matrix's tile (a
// row m of A [M,K], k of A [K,M], n of B [N,K], k of B [K,N]); chunks beyond M, N or K are
// zeros, so every size works. Within a stage row the chunk index is XORed with a function of
// the row so that every fragment load (a float4 per quarter-warp) and every chunk store is
// free of bank conflicts (32 banks of 4 bytes):
//   K-contiguous rows (TILE_K floats): chunk ^ 4·(row & 1) when TILE_K ≥ 32 (the rows of a
//     quarter-warp, g = 2q and 2q + 1, then start on the same bank), else unchanged (two
//     rows of 16 cover the 32 banks).
//   M- or N-contiguous rows (TILE_M or TILE_N floats): a lane reads SPAN = 2·MT or NT
//     floats at SPAN·g of rows k = 4t + s; a quarter-warp (g = 2q, 2q + 1; t = 0..3) hits 2
//     chunks in each of 4 rows, which XOR with f(t), t = (row >> 2) & 3, spreads over all 8
//     bank groups: f = 2t for one-chunk spans, (t & 1) | 4·(t >> 1) for two-chunk spans.
// Rounding to TF32 happens in the stage, once per element: each work-item rounds, in
// place, the chunks it copied there (after its wait, before the barrier that publishes the
// slab) or stores them rounded (register pipeline). Rounding as fragments are loaded instead
// would round each element once per warp that reads it (three times as many conversions
// at the default tiles).
//
// Pipeline, two ways (ASYNC_COPY, chosen by the host):
//  - ASYNC_COPY=1 (the fast path; the host passes it only after probe_async_copy proved
//    cp.async on the device, and only when every row is 16-byte aligned: VECTOR_IO):
//    STAGES (2–4) stage buffers; cp.async.cg copies chunks from global to local memory
//    without registers, STAGES − 1 slabs in flight while one is multiplied. Per slab: wait
//    for the oldest group of copies, round them in place, one barrier (slab s is visible to
//    all, and every warp has finished the slab before, whose buffer is refilled next), issue
//    the copies of slab s + STAGES − 1, multiply slab s.
//  - ASYNC_COPY=0 (portable within NVIDIA: any alignment): two buffers; slab s + 1 is loaded
//    into registers (float4 where aligned, else bounds-checked scalars) while slab s is
//    multiplied, then stored, rounded, into the other buffer; one barrier per slab.
//
// Each output is one lane's accumulator, fed by the mma instructions in a fixed order:
// results are deterministic (run to run; not bitwise equal to matmul.cl's gemm).
// Index arithmetic is 32-bit within a slice (the host checks that each matrix has fewer
// than 2^31 elements); slice offsets are 64-bit.
//
// The tensor-core and copy instructions sit behind mma_m16n8k8_tf32(), to_tf32(),
// copy_chunk_async() and the cp.async group functions, the lane id behind lane_id().
// EMULATE_MMA=1 replaces them with portable OpenCL C (the mma through a per-warp __local
// scratch, with the PTX fragment layout above; in gemm_tf32 a whole k-step of the warp's mma
// tiles at once, mma_step_emulated; the copies as plain loads and stores), so that a CPU
// device (PoCL) runs the whole kernel, both pipelines: the tests check the tiling, staging,
// swizzles, edges, epilogue and fragment mapping that way. Test-only: never in production.
//
// tf32_probe: one warp multiplies a 16×8 A by an 8×8 B (both row-major, B as [k][n]) into a
// 16×8 C with one mma; probe_tf32 (model/tf32.cpp) runs it to prove the path on a device.
// async_copy_probe: one warp copies 32 chunks (one zero-filled) through cp.async; probe
// proves the asynchronous pipeline the same way.
//
// NVIDIA only (inline PTX, sm_80+): the host must not build this file for other devices.

#ifndef TILE_M
#define TILE_M 128  // rows of C per work-group (a multiple of WARPS_M warp tiles of 32 or 64)
#endif
#ifndef TILE_N
#define TILE_N 128  // columns of C per work-group (WARPS_N warp tiles of 32 or 64)
#endif
#ifndef TILE_K
#define TILE_K 16  // depth of one K slab staged in local memory (16, 32 or 64)
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
#ifndef ASYNC_COPY
#define ASYNC_COPY 0  // 1: cp.async pipeline of STAGES buffers (needs VECTOR_IO)
#endif
#ifndef STAGES
#define STAGES 3  // stage buffers of the cp.async pipeline (2, 3 or 4; registers: always 2)
#endif
#ifndef EMULATE_MMA
#define EMULATE_MMA 0  // 1: portable emulation of mma/cvt/cp.async/laneid, for CPU tests only
#endif

#define WARP_SIZE 32
#define WG_SIZE (WARPS_M * WARPS_N * WARP_SIZE)  // work-items per work-group
#define WARP_TILE_M (TILE_M / WARPS_M)           // rows of C per warp
#define WARP_TILE_N (TILE_N / WARPS_N)           // columns of C per warp
#define MT (WARP_TILE_M / 16)                    // 16 × 8 mma tiles per warp along M
#define NT (WARP_TILE_N / 8)                     // and along N

#if TILE_K != 16 && TILE_K != 32 && TILE_K != 64
#error "matmul_tf32.cl: TILE_K must be 16, 32 or 64"
#endif
#if TILE_M % WARPS_M != 0 || TILE_N % WARPS_N != 0 || \
    (WARP_TILE_M != 32 && WARP_TILE_M != 64) || (WARP_TILE_N != 32 && WARP_TILE_N != 64)
#error "matmul_tf32.cl: warp tiles must be 32 or 64 rows by 32 or 64 columns"
#endif
#if ASYNC_COPY && (!VECTOR_IO || STAGES < 2 || STAGES > 4)
#error "matmul_tf32.cl: ASYNC_COPY needs VECTOR_IO and 2 to 4 STAGES"
#endif
#if ASYNC_COPY
#define BUFFERS STAGES
#else
#define BUFFERS 2
#endif

// Every helper is inlined: they take private arrays (accumulators, fragments, the
// prefetched slab) by pointer, which must stay registers. (A plain C99 `inline` leaves the
// choice to the compiler, and clang declines for large call sites.)
#define INLINE inline __attribute__((always_inline))

// ---------------------------------------------------------------- tensor-core primitives

#if EMULATE_MMA

INLINE int lane_id(void) { return (int)(get_local_id(0) % WARP_SIZE); }

// cvt.rna.tf32.f32: round to nearest, ties away from zero (in magnitude, so adding half a
// unit of the kept last bit to the bit pattern), keeping 10 mantissa bits; inf and NaN
// unchanged. Same as attnscope::round_to_tf32.
INLINE float to_tf32(float x) {
  uint u = as_uint(x);
  if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
  return as_float(u);
}

// The tensor core reads only the TF32 bits of its operands.
INLINE float tf32_operand(uint x) { return as_float(x & 0xffffe000u); }

// d = a·b + c for one warp, the registers holding the PTX fragments (see the top). Every
// lane writes its fragments of a and b into the warp's scratch (16·8 + 8·8 floats), then
// computes its 4 elements of d from there, summing k = 0..7 in order. Contains two
// barriers: the whole work-group must call it together, as the whole warp must for mma.sync.
INLINE void mma_m16n8k8_tf32(float* c, const uint* a, const uint* b, __local float* scratch) {
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
#define MMA(c, a, b) mma_m16n8k8_tf32(c, a, b, warp_scratch)

// One k-step of a warp's MT × NT mma tiles at once: the same as MMA(acc[i][j], a[i], b[j])
// for every i, j (each element of d summed over k = 0..7 in order, then added to c), with
// the fragments of all tiles exchanged through the scratch together — two barriers per
// k-step instead of two per tile, which keeps PoCL's compile time of the emulated kernel
// reasonable.
#define STEP_SCRATCH_FLOATS (MT * 16 * 8 + NT * 8 * 8)
INLINE void mma_step_emulated(float acc[MT][NT][4], uint a[MT][4], uint b[NT][2],
                              __local float* scratch) {
  const int lane = lane_id(), g = lane >> 2, t = lane & 3;
  for (int i = 0; i < MT; ++i) {
    __local float* sa = scratch + i * 128;  // A of tile i, [16][8]
    sa[g * 8 + t] = tf32_operand(a[i][0]);
    sa[(g + 8) * 8 + t] = tf32_operand(a[i][1]);
    sa[g * 8 + t + 4] = tf32_operand(a[i][2]);
    sa[(g + 8) * 8 + t + 4] = tf32_operand(a[i][3]);
  }
  for (int j = 0; j < NT; ++j) {
    __local float* sb = scratch + MT * 128 + j * 64;  // B of tile j, [k][n]
    sb[t * 8 + g] = tf32_operand(b[j][0]);
    sb[(t + 4) * 8 + g] = tf32_operand(b[j][1]);
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int i = 0; i < MT; ++i)
    for (int j = 0; j < NT; ++j)
      for (int r = 0; r < 4; ++r) {
        const int row = g + (r >> 1) * 8, col = 2 * t + (r & 1);
        const __local float* sa = scratch + i * 128;
        const __local float* sb = scratch + MT * 128 + j * 64;
        float sum = 0.f;
        for (int k = 0; k < 8; ++k) sum += sa[row * 8 + k] * sb[k * 8 + col];
        acc[i][j][r] += sum;
      }
  barrier(CLK_LOCAL_MEM_FENCE);  // the next step overwrites the scratch
}
#define WARP_SCRATCH_PARAM , __local float* warp_scratch  // the warp's scratch, passed down
#define WARP_SCRATCH_ARG , warp_scratch

// cp.async emulated: the copy happens at once (the barrier after the wait orders it).
INLINE void copy_chunk_async(__local float* dst, const __global float* src, int valid) {
  *(__local float4*)dst = valid ? *(const __global float4*)src : (float4)(0.f);
}
INLINE void async_commit(void) {}
INLINE void async_wait_oldest(void) {}
INLINE void async_wait_all(void) {}

#else  // NVIDIA: inline PTX

INLINE int lane_id(void) {
  uint lane;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
  return (int)lane;
}

INLINE float to_tf32(float x) {
  uint r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return as_float(r);
}

// c = a·b + c: mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, the registers holding
// the PTX fragments (see the top). The whole warp must execute it together.
INLINE void mma_m16n8k8_tf32(float* c, const uint* a, const uint* b) {
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
#define WARP_SCRATCH_PARAM
#define WARP_SCRATCH_ARG

// 16 bytes from global to local memory without registers (cp.async.cg, sm_80+), or 16 zero
// bytes when !valid (src-size 0: nothing is read). A __local pointer converted to an integer
// is its address in the .shared window (what cp.async takes); async_copy_probe proves it.
INLINE void copy_chunk_async(__local float* dst, const __global float* src, int valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"((uint)(size_t)dst),
               "l"(src), "r"(valid ? 16 : 0)
               : "memory");
}
INLINE void async_commit(void) { asm volatile("cp.async.commit_group;" ::: "memory"); }
// Waits until at most STAGES − 2 groups of this work-item's copies are pending: the oldest
// slab in flight has landed.
#if STAGES == 2
#define ASYNC_PENDING "0"
#elif STAGES == 3
#define ASYNC_PENDING "1"
#else
#define ASYNC_PENDING "2"
#endif
INLINE void async_wait_oldest(void) {
  asm volatile("cp.async.wait_group " ASYNC_PENDING ";" ::: "memory");
}
INLINE void async_wait_all(void) { asm volatile("cp.async.wait_all;" ::: "memory"); }

#endif

// ---------------------------------------------------------------- stage layouts

// Chunk index XORs (in chunks of 4 floats; see "Stages" at the top). K-contiguous rows: the
// two rows of a quarter-warp's float4 loads (g = 2q, 2q + 1) on opposite halves of the banks.
INLINE int k_swizzle(int row) { return TILE_K >= 32 ? (row & 1) << 2 : 0; }
// M- or N-contiguous rows, read by lane (g, t) at rows 4t + s, spans of `chunks` chunks at
// chunks·g: the quarter-warp's 2 × 4 chunks (or 4 × 2 of two-chunk spans) on 8 bank groups.
INLINE int span_swizzle(int row, int chunks) {
  const int t = (row >> 2) & 3;
  return chunks == 1 ? t << 1 : (t & 1) | ((t >> 1) << 2);
}

// Stage of A: rows m of A [M,K] (TILE_K floats) or k of A [K,M] (TILE_M floats).
#if TRANS_A
#define A_ROW_FLOATS TILE_M
INLINE int a_swizzle(int row) { return span_swizzle(row, MT / 2); }
#else
#define A_ROW_FLOATS TILE_K
INLINE int a_swizzle(int row) { return k_swizzle(row); }
#endif
// Stage of B: rows n of B [N,K] (TILE_K floats) or k of B [K,N] (TILE_N floats).
#if TRANS_B
#define B_ROW_FLOATS TILE_K
INLINE int b_swizzle(int row) { return k_swizzle(row); }
#else
#define B_ROW_FLOATS TILE_N
INLINE int b_swizzle(int row) { return span_swizzle(row, NT / 4); }
#endif

#define A_STAGE_FLOATS (TILE_M * TILE_K)
#define B_STAGE_FLOATS (TILE_N * TILE_K)
#define A_ROW_CHUNKS (A_ROW_FLOATS / 4)
#define B_ROW_CHUNKS (B_ROW_FLOATS / 4)
#define A_CHUNKS (A_STAGE_FLOATS / 4)
#define B_CHUNKS (B_STAGE_FLOATS / 4)
#define A_PER_ITEM ((A_CHUNKS + WG_SIZE - 1) / WG_SIZE)  // the last round may be partial
#define B_PER_ITEM ((B_CHUNKS + WG_SIZE - 1) / WG_SIZE)
#define A_CHUNK_OK(u) (A_CHUNKS % WG_SIZE == 0 || (u) < A_CHUNKS)
#define B_CHUNK_OK(u) (B_CHUNKS % WG_SIZE == 0 || (u) < B_CHUNKS)

INLINE int a_word(int row, int chunk) { return row * A_ROW_FLOATS + 4 * (chunk ^ a_swizzle(row)); }
INLINE int b_word(int row, int chunk) { return row * B_ROW_FLOATS + 4 * (chunk ^ b_swizzle(row)); }

// ---------------------------------------------------------------- staging

// A slab's chunks: chunk u of a stage is stage row u / row_chunks, chunk u % row_chunks, the
// 16 bytes at (row0 + row, col0 + 4·chunk) of the stored rows × cols matrix; work-item tid
// copies chunks tid, tid + WG_SIZE, ... Consecutive work-items take consecutive chunks of a
// row: coalesced.
struct Operand {
  const __global float* data;
  int rows, cols;  // of the stored (row-major) matrix
  int vec;         // rows 16-byte aligned and cols % 4 == 0: whole float4 chunks
};

// Elements [col, col + 4) of row `row` of x, zero beyond its rows or columns. With x.vec a
// chunk is either wholly inside or wholly beyond the row's end; VECTOR_IO: x.vec is known to
// hold, so there is no scalar path at all.
INLINE float4 load_chunk(struct Operand x, int row, int col) {
#if VECTOR_IO
  return row < x.rows && col < x.cols ? *(const __global float4*)(x.data + row * x.cols + col)
                                      : (float4)(0.f);
#else
  if (row >= x.rows) return (float4)(0.f);
  const __global float* p = x.data + row * x.cols + col;
  if (x.vec && col < x.cols) return *(const __global float4*)p;
  float4 v = (float4)(0.f);
  if (col < x.cols) v.x = p[0];
  if (col + 1 < x.cols) v.y = p[1];
  if (col + 2 < x.cols) v.z = p[2];
  if (col + 3 < x.cols) v.w = p[3];
  return v;
#endif
}

INLINE float4 to_tf32_4(float4 v) {
  return (float4)(to_tf32(v.x), to_tf32(v.y), to_tf32(v.z), to_tf32(v.w));
}

#if ASYNC_COPY
// Issues this work-item's copies of one operand's slab at k0 into stage s (no wait).
INLINE void copy_a_async(__local float* s, struct Operand x, int m0, int k0, int tid) {
#pragma unroll
  for (int i = 0; i < A_PER_ITEM; ++i) {
    const int u = tid + i * WG_SIZE;
    if (!A_CHUNK_OK(u)) continue;
    const int row = u / A_ROW_CHUNKS, chunk = u % A_ROW_CHUNKS;
    const int r = row + (TRANS_A ? k0 : m0), c = 4 * chunk + (TRANS_A ? m0 : k0);
    const int valid = r < x.rows && c < x.cols;
    copy_chunk_async(s + a_word(row, chunk), x.data + (valid ? r * x.cols + c : 0), valid);
  }
}
INLINE void copy_b_async(__local float* s, struct Operand x, int n0, int k0, int tid) {
#pragma unroll
  for (int i = 0; i < B_PER_ITEM; ++i) {
    const int u = tid + i * WG_SIZE;
    if (!B_CHUNK_OK(u)) continue;
    const int row = u / B_ROW_CHUNKS, chunk = u % B_ROW_CHUNKS;
    const int r = row + (TRANS_B ? n0 : k0), c = 4 * chunk + (TRANS_B ? k0 : n0);
    const int valid = r < x.rows && c < x.cols;
    copy_chunk_async(s + b_word(row, chunk), x.data + (valid ? r * x.cols + c : 0), valid);
  }
}

// Rounds, in place, the chunks of stages a_s, b_s that this work-item copied (its wait made
// them visible to it; the barrier after makes the rounded values visible to all).
INLINE void round_copied_chunks(__local float* a_s, __local float* b_s, int tid) {
#pragma unroll
  for (int i = 0; i < A_PER_ITEM; ++i) {
    const int u = tid + i * WG_SIZE;
    if (!A_CHUNK_OK(u)) continue;
    __local float4* p = (__local float4*)(a_s + a_word(u / A_ROW_CHUNKS, u % A_ROW_CHUNKS));
    *p = to_tf32_4(*p);
  }
#pragma unroll
  for (int i = 0; i < B_PER_ITEM; ++i) {
    const int u = tid + i * WG_SIZE;
    if (!B_CHUNK_OK(u)) continue;
    __local float4* p = (__local float4*)(b_s + b_word(u / B_ROW_CHUNKS, u % B_ROW_CHUNKS));
    *p = to_tf32_4(*p);
  }
}
#else
// Loads this work-item's chunks of the slab into registers, and stores them, rounded, into a
// stage.
INLINE void load_slab(float4* a_next, float4* b_next, struct Operand a, struct Operand b,
                      int m0, int n0, int k0, int tid) {
#pragma unroll
  for (int i = 0; i < A_PER_ITEM; ++i) {
    const int u = tid + i * WG_SIZE;
    if (A_CHUNK_OK(u))
      a_next[i] = load_chunk(a, u / A_ROW_CHUNKS + (TRANS_A ? k0 : m0),
                             4 * (u % A_ROW_CHUNKS) + (TRANS_A ? m0 : k0));
  }
#pragma unroll
  for (int i = 0; i < B_PER_ITEM; ++i) {
    const int u = tid + i * WG_SIZE;
    if (B_CHUNK_OK(u))
      b_next[i] = load_chunk(b, u / B_ROW_CHUNKS + (TRANS_B ? n0 : k0),
                             4 * (u % B_ROW_CHUNKS) + (TRANS_B ? k0 : n0));
  }
}
INLINE void store_slab(__local float* a_s, __local float* b_s, const float4* a_next,
                       const float4* b_next, int tid) {
#pragma unroll
  for (int i = 0; i < A_PER_ITEM; ++i) {
    const int u = tid + i * WG_SIZE;
    if (A_CHUNK_OK(u))
      *(__local float4*)(a_s + a_word(u / A_ROW_CHUNKS, u % A_ROW_CHUNKS)) = to_tf32_4(a_next[i]);
  }
#pragma unroll
  for (int i = 0; i < B_PER_ITEM; ++i) {
    const int u = tid + i * WG_SIZE;
    if (B_CHUNK_OK(u))
      *(__local float4*)(b_s + b_word(u / B_ROW_CHUNKS, u % B_ROW_CHUNKS)) = to_tf32_4(b_next[i]);
  }
}
#endif

// ---------------------------------------------------------------- the mma loop

// Fragments of the two K-steps of the 16 k at kb (see the top): a[step][i], b[step][j].
// A [M,K]: rows g and g + 8 of tile i, k = kb + 4t..+3: two float4 = both steps.
// A [K,M]: rows k = kb + 4t + s (s = 0..3: step s >> 1, slot t or t + 4 by s & 1), the
//          lane's 2·MT consecutive floats = rows g, g + 8 of every tile.
INLINE void load_a_fragments(uint a[2][MT][4], const __local float* as, int warp_m0, int kb,
                             int g, int t) {
#if TRANS_A
#pragma unroll
  for (int s = 0; s < 4; ++s) {
    const int row = kb + 4 * t + s;
#pragma unroll
    for (int q = 0; q < MT / 2; ++q) {  // float4 q: tiles 2q, 2q + 1, rows g and g + 8 each
      const float4 v = *(const __local float4*)(as + a_word(row, (warp_m0 + 2 * MT * g) / 4 + q));
      a[s >> 1][2 * q][2 * (s & 1)] = as_uint(v.x);
      a[s >> 1][2 * q][2 * (s & 1) + 1] = as_uint(v.y);
      a[s >> 1][2 * q + 1][2 * (s & 1)] = as_uint(v.z);
      a[s >> 1][2 * q + 1][2 * (s & 1) + 1] = as_uint(v.w);
    }
  }
#else
#pragma unroll
  for (int i = 0; i < MT; ++i) {
    const int row = warp_m0 + 16 * i + g;
    const float4 lo = *(const __local float4*)(as + a_word(row, kb / 4 + t));
    const float4 hi = *(const __local float4*)(as + a_word(row + 8, kb / 4 + t));
    a[0][i][0] = as_uint(lo.x), a[0][i][1] = as_uint(hi.x);
    a[0][i][2] = as_uint(lo.y), a[0][i][3] = as_uint(hi.y);
    a[1][i][0] = as_uint(lo.z), a[1][i][1] = as_uint(hi.z);
    a[1][i][2] = as_uint(lo.w), a[1][i][3] = as_uint(hi.w);
  }
#endif
}

// B [N,K]: row (column of C) g of tile j, k = kb + 4t..+3: one float4 = both steps.
// B [K,N]: rows k = kb + 4t + s, the lane's NT consecutive floats = column g of every tile.
INLINE void load_b_fragments(uint b[2][NT][2], const __local float* bs, int warp_n0, int kb,
                             int g, int t) {
#if TRANS_B
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    const float4 v = *(const __local float4*)(bs + b_word(warp_n0 + 8 * j + g, kb / 4 + t));
    b[0][j][0] = as_uint(v.x), b[0][j][1] = as_uint(v.y);
    b[1][j][0] = as_uint(v.z), b[1][j][1] = as_uint(v.w);
  }
#else
#pragma unroll
  for (int s = 0; s < 4; ++s) {
    const int row = kb + 4 * t + s;
#pragma unroll
    for (int q = 0; q < NT / 4; ++q) {  // float4 q: tiles 4q .. 4q + 3
      const float4 v = *(const __local float4*)(bs + b_word(row, (warp_n0 + NT * g) / 4 + q));
      b[s >> 1][4 * q][s & 1] = as_uint(v.x);
      b[s >> 1][4 * q + 1][s & 1] = as_uint(v.y);
      b[s >> 1][4 * q + 2][s & 1] = as_uint(v.z);
      b[s >> 1][4 * q + 3][s & 1] = as_uint(v.w);
    }
  }
#endif
}

// acc += this warp's share of one staged slab (as, bs: one buffer of each stage).
INLINE void mma_slab(float acc[MT][NT][4], const __local float* as, const __local float* bs,
                     int warp_m0, int warp_n0, int g, int t WARP_SCRATCH_PARAM) {
#pragma unroll
  for (int kb = 0; kb < TILE_K; kb += 16) {
    uint a[2][MT][4], b[2][NT][2];
    load_a_fragments(a, as, warp_m0, kb, g, t);
    load_b_fragments(b, bs, warp_n0, kb, g, t);
#pragma unroll
    for (int step = 0; step < 2; ++step) {
#if EMULATE_MMA
      mma_step_emulated(acc, a[step], b[step], warp_scratch);
#else
#pragma unroll
      for (int i = 0; i < MT; ++i)
#pragma unroll
        for (int j = 0; j < NT; ++j) MMA(acc[i][j], a[step][i], b[step][j]);
#endif
    }
  }
}

// ---------------------------------------------------------------- the epilogue

// Rows and columns of the warp tile that lane (g, t)'s accumulator acc[i][j][2h + e] holds
// (see the top): row g + 8h, column 2t + e of mma tile (i, j), permuted where A or B is
// stored with m or n contiguous.
INLINE int out_row(int i, int h, int g) { return TRANS_A ? 2 * MT * g + 2 * i + h : 16 * i + g + 8 * h; }
INLINE int out_col(int j, int e, int t) { return TRANS_B ? 8 * j + 2 * t + e : (2 * t + e) * NT + j; }

// out = alpha·v (+ bias) (+ beta·out), in matmul.cl's order.
INLINE float output_value(float v, float alpha, float beta, const __global float* bias,
                          int use_bias, int n, const __global float* out) {
  v *= alpha;
  if (use_bias) v += bias[n];
  if (beta != 0.f) v += beta * *out;
  return v;
}

INLINE void store_outputs(__global float* C, float acc[MT][NT][4], int M, int N, int row0,
                          int col0, float alpha, float beta, const __global float* bias,
                          int use_bias, int c_vec, int g, int t) {
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int m = row0 + out_row(i, h, g);
      if (m >= M) continue;
      __global float* row = C + m * N;
#if !TRANS_B
      // Columns (2t + e)·NT + j, j = 0..NT-1: NT consecutive floats per e, as float4s when
      // C's rows are 16-byte aligned.
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int n0 = col0 + out_col(0, e, t);
        if (c_vec && n0 + NT <= N) {
#pragma unroll
          for (int q = 0; q < NT / 4; ++q) {
            __global float4* out = (__global float4*)(row + n0 + 4 * q);
            float4 v = alpha * (float4)(acc[i][4 * q][2 * h + e], acc[i][4 * q + 1][2 * h + e],
                                        acc[i][4 * q + 2][2 * h + e], acc[i][4 * q + 3][2 * h + e]);
            if (use_bias) v += vload4(0, bias + n0 + 4 * q);
            if (beta != 0.f) v += beta * *out;
            *out = v;
          }
          continue;
        }
#pragma unroll
        for (int j = 0; j < NT; ++j)
          if (n0 + j < N)
            row[n0 + j] = output_value(acc[i][j][2 * h + e], alpha, beta, bias, use_bias, n0 + j,
                                       row + n0 + j);
      }
#else
      // Columns 8j + 2t, + 1: a float2 when C's rows keep them 8-byte aligned.
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        const int n = col0 + out_col(j, 0, t);
        if (n >= N) continue;
        if (c_vec && n + 1 < N) {
          __global float2* out = (__global float2*)(row + n);
          float2 v = alpha * (float2)(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
          if (use_bias) v += vload2(0, bias + n);
          if (beta != 0.f) v += beta * *out;
          *out = v;
          continue;
        }
        row[n] = output_value(acc[i][j][2 * h], alpha, beta, bias, use_bias, n, row + n);
        if (n + 1 < N)
          row[n + 1] = output_value(acc[i][j][2 * h + 1], alpha, beta, bias, use_bias, n + 1,
                                    row + n + 1);
      }
#endif
    }
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
  const int tid = get_local_id(0);
  const int warp = tid / WARP_SIZE, g = tid % WARP_SIZE >> 2, t = tid & 3;  // lane = tid % 32
  const int warp_m0 = warp / WARPS_N * WARP_TILE_M, warp_n0 = warp % WARPS_N * WARP_TILE_N;
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

  // The stored matrices, row-major; vec: float4 chunks are aligned (see load_chunk).
  struct Operand a, b;
  a.data = A + slice_a, b.data = B + slice_b;
  a.rows = TRANS_A ? K : M, a.cols = TRANS_A ? M : K;
  b.rows = TRANS_B ? N : K, b.cols = TRANS_B ? K : N;
  a.vec = VECTOR_IO || ((slice_a % 4 == 0) && (a.cols % 4 == 0));
  b.vec = VECTOR_IO || ((slice_b % 4 == 0) && (b.cols % 4 == 0));

  // BUFFERS stage buffers per operand (float4 arrays: 16-byte aligned).
  __local float4 a_stage[BUFFERS * A_STAGE_FLOATS / 4];
  __local float4 b_stage[BUFFERS * B_STAGE_FLOATS / 4];
  __local float* a_s = (__local float*)a_stage;
  __local float* b_s = (__local float*)b_stage;
#if EMULATE_MMA
  __local float mma_scratch[WARPS_M * WARPS_N * STEP_SCRATCH_FLOATS];
  __local float* warp_scratch = mma_scratch + warp * STEP_SCRATCH_FLOATS;
#endif

  float acc[MT][NT][4];
#pragma unroll
  for (int i = 0; i < MT; ++i)
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

  const int slabs = (K + TILE_K - 1) / TILE_K;
#if ASYNC_COPY
  // STAGES − 1 slabs in flight; one group of copies committed per slab (empty past the
  // end), so that "all but the newest STAGES − 2 groups done" always means slab s landed.
#pragma unroll
  for (int s = 0; s < STAGES - 1; ++s) {
    if (s < slabs) {
      copy_a_async(a_s + s * A_STAGE_FLOATS, a, m0, s * TILE_K, tid);
      copy_b_async(b_s + s * B_STAGE_FLOATS, b, n0, s * TILE_K, tid);
    }
    async_commit();
  }
  int read = 0, write = STAGES - 1;  // buffers of slab s and of slab s + STAGES − 1
  for (int s = 0; s < slabs; ++s) {
    async_wait_oldest();
    round_copied_chunks(a_s + read * A_STAGE_FLOATS, b_s + read * B_STAGE_FLOATS, tid);
    barrier(CLK_LOCAL_MEM_FENCE);  // slab s visible to all; slab s − 1 (buffer `write`) done
    if (s + STAGES - 1 < slabs) {
      copy_a_async(a_s + write * A_STAGE_FLOATS, a, m0, (s + STAGES - 1) * TILE_K, tid);
      copy_b_async(b_s + write * B_STAGE_FLOATS, b, n0, (s + STAGES - 1) * TILE_K, tid);
    }
    async_commit();
    mma_slab(acc, a_s + read * A_STAGE_FLOATS, b_s + read * B_STAGE_FLOATS, warp_m0,
             warp_n0, g, t WARP_SCRATCH_ARG);
    read = read == STAGES - 1 ? 0 : read + 1;
    write = write == STAGES - 1 ? 0 : write + 1;
  }
  async_wait_all();  // no copy may still be writing when the work-group ends
#else
  // Slab s is multiplied from buffer s % 2 while slab s + 1 is in flight from global memory
  // into registers; after the mma loop those go into buffer (s + 1) % 2, last read during
  // slab s − 1, before the barrier that ended it; then one barrier.
  float4 a_next[A_PER_ITEM], b_next[B_PER_ITEM];
  if (slabs > 0) {
    load_slab(a_next, b_next, a, b, m0, n0, 0, tid);
    store_slab(a_s, b_s, a_next, b_next, tid);
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = 0; s < slabs; ++s) {
    const int cur = s & 1, more = s + 1 < slabs;  // `more` is the same in every work-item
    if (more) load_slab(a_next, b_next, a, b, m0, n0, (s + 1) * TILE_K, tid);
    mma_slab(acc, a_s + cur * A_STAGE_FLOATS, b_s + cur * B_STAGE_FLOATS, warp_m0,
             warp_n0, g, t WARP_SCRATCH_ARG);
    if (more)
      store_slab(a_s + (cur ^ 1) * A_STAGE_FLOATS, b_s + (cur ^ 1) * B_STAGE_FLOATS, a_next,
                 b_next, tid);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
#endif

  // float4 (B [K,N]) or float2 (B [N,K]) stores where C's rows keep them aligned.
  const ulong slice_c = offset_c + z * stride_c;
  const int c_vec = VECTOR_IO || (TRANS_B ? (slice_c % 2 == 0) && (N % 2 == 0)
                                          : (slice_c % 4 == 0) && (N % 4 == 0));
  store_outputs(C + slice_c, acc, M, N, m0 + warp_m0, n0 + warp_n0, alpha, beta, bias, use_bias,
                c_vec, g, t);
}

// ---------------------------------------------------------------- the device probes

// C[16×8] = A[16×8] · B[8×8] (row-major, B as [k][n]) by one mma, operands rounded with
// to_tf32 on the way: one warp.
__kernel __attribute__((reqd_work_group_size(WARP_SIZE, 1, 1)))
void tf32_probe(const __global float* A, const __global float* B, __global float* C) {
  const int lane = lane_id(), g = lane >> 2, t = lane & 3;
#if EMULATE_MMA
  __local float mma_scratch[MMA_SCRATCH_FLOATS];
  __local float* warp_scratch = mma_scratch;
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

// One warp copies src[0..128) into local memory by cp.async, chunk (4 floats) `zero_chunk`
// zero-filled instead, in two commit groups, to chunk positions reversed (chunk c at 31 − c);
// then waits, and writes local memory back to dst in order: dst[4·(31 − c) + i] = src[4c + i],
// 0 for the zero-filled chunk. What the pipeline relies on: local addresses as cp.async
// takes them, zero fill, groups and waits.
__kernel __attribute__((reqd_work_group_size(WARP_SIZE, 1, 1)))
void async_copy_probe(const __global float* src, __global float* dst, const int zero_chunk) {
  __local float4 staged[WARP_SIZE];
  const int c = get_local_id(0);
  __local float* to = (__local float*)(staged + (WARP_SIZE - 1 - c));
  if (c < WARP_SIZE / 2) copy_chunk_async(to, src + 4 * c, c != zero_chunk);
  async_commit();
  if (c >= WARP_SIZE / 2) copy_chunk_async(to, src + 4 * c, c != zero_chunk);
  async_commit();
  async_wait_all();
  barrier(CLK_LOCAL_MEM_FENCE);
  vstore4(staged[c], c, dst);
}
