// atomic_add.cl — float addition into global memory from many work-groups at once: the
// fused backward of the exact tiled attention (flash.cl with FUSED_DQ) adds each key
// block's share of dQ to the rows it touches.
//
// add_to_global(p, x): *p += x, atomically; add4_to_global(p, x): the same for p[0..4) (p
// 16-byte aligned). Float addition is not associative, so the order in which concurrent adds
// land changes the last bits of the result from run to run: a kernel that uses this is not
// bitwise reproducible. ATOMIC_ADD_PTX picks the implementation:
//   2: as 1, and add4_to_global is one `red.global.add.v4.f32` (sm_90: one L2 reduction of 16
//      bytes instead of four of 4, whose sectors the four scalar reductions each used a
//      quarter of; on the H200 the fused dK/dV kernel at T = 16384 ran 6% faster with it).
//   1: NVIDIA's `red.global.add.f32` (inline PTX: a reduction the L2 cache performs, nothing
//      returned, so the work-item does not wait for it); add4_to_global is four of them.
//   0: a compare-and-swap loop on the word (atomic_cmpxchg, OpenCL C 1.1 core): any OpenCL
//      device, and what the tests run on PoCL.
// The host builds 1 or 2 only for an NVIDIA device on which atomic_add_probe has given the
// exact sums with that level (model/atomic_add.cpp); other compilers never see the asm.
//
// atomic_add_probe: every work-item adds probe_value(id) to sums[id % PROBE_SUMS] with
// add_to_global, and four consecutive probe values to one of the PROBE_SUMS / 4 aligned
// groups of sums[PROBE_SUMS ..] with add4_to_global; the values are small multiples of 1/4,
// so every order of the adds gives the same exact sums, which the host computes.

#ifndef ATOMIC_ADD_PTX
#define ATOMIC_ADD_PTX 0
#endif

#define PROBE_SUMS 8

#if ATOMIC_ADD_PTX
inline void add_to_global(__global float* p, const float x) {
  asm volatile("red.global.add.f32 [%0], %1;" : : "l"(p), "f"(x) : "memory");
}
#else
// The first guess is 0 (what dQ starts from), not a plain read of *p: every access to the
// word is then atomic, which is what a race checker (oclgrind) asks for.
inline void add_to_global(__global float* p, const float x) {
  volatile __global uint* word = (volatile __global uint*)p;
  uint seen = 0u, expected;
  do {
    expected = seen;
    seen = atomic_cmpxchg(word, expected, as_uint(as_float(expected) + x));
  } while (seen != expected);
}
#endif

#if ATOMIC_ADD_PTX >= 2
inline void add4_to_global(__global float* p, const float4 x) {
  asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};"
               : : "l"(p), "f"(x.x), "f"(x.y), "f"(x.z), "f"(x.w) : "memory");
}
#else
inline void add4_to_global(__global float* p, const float4 x) {
  add_to_global(p, x.x);
  add_to_global(p + 1, x.y);
  add_to_global(p + 2, x.z);
  add_to_global(p + 3, x.w);
}
#endif

inline float probe_value(const int id) { return 0.25f * (float)(id % 13 + 1); }

__kernel void atomic_add_probe(__global float* sums) {
  const int id = get_global_id(0);
  add_to_global(sums + id % PROBE_SUMS, probe_value(id));
  add4_to_global(sums + PROBE_SUMS + 4 * (id % (PROBE_SUMS / 4)),
                 (float4)(probe_value(id), probe_value(id + 1), probe_value(id + 2),
                          probe_value(id + 3)));
}
