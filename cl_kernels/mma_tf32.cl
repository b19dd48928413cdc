// mma_tf32.cl — the tensor-core primitives of the TF32 kernels (matmul_tf32.cl's gemm_tf32
// and tf32_probe, attention/flash_tf32.cl's tiled attention), included by them:
//   lane_id()                 the lane of a work-item in its warp of 32 (1-D work-groups);
//   MMA(c, a, b)              c += a·b, mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32,
//                             a, b, c the registers of the PTX fragments (see matmul_tf32.cl's
//                             top for the layouts);
//   SHFL_XOR(x, mask)         x of lane lane ^ mask (shfl.sync.bfly.b32; whole warp);
//   round_tf32_operand(4)     x rounded to TF32 (to nearest, ties away) in its top 19 bits.
//   split_tf32_operand        x as a TF32 part and a TF32 remainder (3xTF32).
//   TF32_OPERAND(4)           what a kernel stages of an operand: rounded, or with
//                             SPLIT_TF32 (--precision 3xtf32) the fp32 value itself;
//   MMA_OPERANDS(c, a, b)     c += a·b from such operands: one mma, or split and three.
// EMULATE_MMA=1 replaces the inline PTX by portable OpenCL C: lane_id from the local id,
// the mma and the shuffle through a per-warp __local scratch (`warp_scratch`, which the
// caller declares: MMA_SCRATCH_FLOATS per warp). Each emulated mma or shuffle holds two
// barriers, so the whole work-group must reach it together (the real instructions need the
// whole warp). Test-only (PoCL in CI): never used in production.
// NVIDIA only without EMULATE_MMA (inline PTX, sm_80+).

#ifndef EMULATE_MMA
#define EMULATE_MMA 0  // 1: portable emulation of mma and laneid, for tests on CPUs only
#endif
#ifndef SPLIT_TF32
#define SPLIT_TF32 0  // 1: 3xTF32, fp32-accurate products from three mma (split_tf32_operand)
#endif
#ifndef WARP_SIZE
#define WARP_SIZE 32
#endif
#ifndef INLINE
// Every helper is inlined: they take private arrays (accumulators, fragments) by pointer,
// which must stay registers (a plain C99 `inline` leaves the choice to the compiler).
#define INLINE inline __attribute__((always_inline))
#endif

#if EMULATE_MMA

INLINE int lane_id(void) { return (int)(get_local_id(0) % WARP_SIZE); }

// The tensor core reads only the TF32 bits of its operands.
INLINE float tf32_operand(uint x) { return as_float(x & 0xffffe000u); }

// d = a·b + c for one warp, the registers holding the PTX fragments (matmul_tf32.cl's top). Every
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
// x of lane (this lane ^ mask) of the warp, through the scratch's first WARP_SIZE floats.
// Two barriers, as for the mma.
INLINE float shfl_xor_emulated(float x, int mask, __local float* scratch) {
  const int lane = lane_id();
  scratch[lane] = x;
  barrier(CLK_LOCAL_MEM_FENCE);
  const float y = scratch[lane ^ mask];
  barrier(CLK_LOCAL_MEM_FENCE);  // the next call overwrites the scratch
  return y;
}
#define SHFL_XOR(x, mask) shfl_xor_emulated(x, mask, warp_scratch)
// A helper that issues mma or shuffles takes the warp's scratch: `f(... WARP_SCRATCH_PARAM)`,
// called as `f(... WARP_SCRATCH_ARG)` (both empty on the GPU).
#define WARP_SCRATCH_PARAM , __local float* warp_scratch
#define WARP_SCRATCH_ARG , warp_scratch

#else  // NVIDIA: inline PTX

INLINE int lane_id(void) {
  uint lane;
  asm volatile("mov.u32 %0, %%laneid;" : "=r"(lane));
  return (int)lane;
}

// c = a·b + c: mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32, the registers holding
// the PTX fragments (matmul_tf32.cl's top). The whole warp must execute it together.
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

// x of lane (this lane ^ mask) of the warp: shfl.sync.bfly over all 32 lanes.
INLINE float shfl_xor(float x, int mask) {
  float y;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=f"(y) : "f"(x), "r"(mask));
  return y;
}
#define SHFL_XOR(x, mask) shfl_xor(x, mask)
#define WARP_SCRATCH_PARAM
#define WARP_SCRATCH_ARG

#endif

// x with half a unit of TF32's last bit added to its bit pattern when it is finite (inf and
// NaN unchanged): its top 19 bits, all the tensor core reads, are then x rounded to TF32,
// to nearest with ties away from zero (in magnitude), as cvt.rna.tf32.f32 and
// attnscope::round_to_tf32 round; an overflow carries into the exponent and gives ±inf.
// Portable C on every device (the emulated mma drops the low bits as the tensor core does).
INLINE float round_tf32_operand(float x) {
  return fabs(x) < INFINITY ? as_float(as_uint(x) + 0x1000u) : x;
}
// The same for a value known to be finite (one instruction).
INLINE float round_tf32_operand_finite(float x) { return as_float(as_uint(x) + 0x1000u); }
INLINE float4 round_tf32_operand4(float4 v) {
  return (float4)(round_tf32_operand(v.x), round_tf32_operand(v.y), round_tf32_operand(v.z),
                  round_tf32_operand(v.w));
}

// 3xTF32 (split precision): x = hi + lo, hi = x rounded to TF32 (to nearest, ties away, low
// bits cleared) and lo = x − hi, exact in fp32 (at most 13 significant bits), passed
// through round_tf32_operand_finite so that the tensor core reads it rounded too. A product
// x·y is then hi_x·hi_y + hi_x·lo_y + lo_x·hi_y: the dropped lo_x·lo_y and lo's rounding are
// each below 2^-22 of |x·y| (fp32's own rounding is 2^-24), for 3 mma instead of 1. Four
// integer and float instructions, no test for inf: an operand that is ±inf, NaN or rounds to inf
// (|x| ≥ 3.4025e38) gives a NaN lo, hence NaN products, where fp32 would give ±inf.
INLINE void split_tf32_operand(uint x, uint* hi, uint* lo) {
  *hi = (x + 0x1000u) & 0xffffe000u;
  *lo = as_uint(round_tf32_operand_finite(as_float(x) - as_float(*hi)));
}

// What a kernel stages (or keeps in registers) of an operand element: TF32-rounded for one
// mma, or with SPLIT_TF32 the fp32 value, which MMA_OPERANDS splits where it is used.
#if SPLIT_TF32
#define TF32_OPERAND(x) (x)
#define TF32_OPERAND4(v) (v)
#else
#define TF32_OPERAND(x) round_tf32_operand(x)
#define TF32_OPERAND4(v) round_tf32_operand4(v)
#endif

// c += a·b from split operands: the three products (lo·hi, hi·lo, hi·hi: the small terms
// first) go into a fresh partial sum, which an fp32 add puts into c. Three mma a k-step
// straight into a growing c pulled it towards zero by about 2^-24 of its size per k-step, a
// bias that grows with K (2026-12-03, H200: 3.5e-4 relative on GPT-2's K = 50304 product,
// against fp32's 4.0e-6) — as if the tensor core truncated the sums it accumulates instead
// of rounding them, which Fasi et al. (2021) found on earlier NVIDIA GPUs. Each partial's
// own truncation is of its own size and sign instead, and those errors average out as
// fp32's roundings do.
INLINE void mma_split_into(float* c, const uint* a_hi, const uint* a_lo, const uint* b_hi,
                           const uint* b_lo WARP_SCRATCH_PARAM) {
  float part[4] = {0.f, 0.f, 0.f, 0.f};
  MMA(part, a_lo, b_hi);
  MMA(part, a_hi, b_lo);
  MMA(part, a_hi, b_hi);
#pragma unroll
  for (int r = 0; r < 4; ++r) c[r] += part[r];
}

// c += a·b for a, b as TF32_OPERAND left them: with SPLIT_TF32 both split here and
// mma_split_into's three mma (matmul_tf32.cl's mma_step splits each fragment once for all
// the tiles that use it instead); without, one mma into c.
#if SPLIT_TF32
INLINE void mma_split_operands(float* c, const uint* a, const uint* b WARP_SCRATCH_PARAM) {
  uint a_hi[4], a_lo[4], b_hi[2], b_lo[2];
  for (int r = 0; r < 4; ++r) split_tf32_operand(a[r], &a_hi[r], &a_lo[r]);
  for (int r = 0; r < 2; ++r) split_tf32_operand(b[r], &b_hi[r], &b_lo[r]);
  mma_split_into(c, a_hi, a_lo, b_hi, b_lo WARP_SCRATCH_ARG);
}
#define MMA_OPERANDS(c, a, b) mma_split_operands(c, a, b WARP_SCRATCH_ARG)
#else
#define MMA_OPERANDS(c, a, b) MMA(c, a, b)
#endif
