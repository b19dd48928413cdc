// atomic_add.cl — float addition into global memory from many work-groups at once: the
// fused backward of the exact tiled attention (flash.cl with FUSED_DQ) adds each key
// block's share of dQ to the rows it touches.
//
// add_to_global(p, x): *p += x, atomically. Float addition is not associative, so the order
// in which concurrent adds land changes the last bits of the result from run to run: a
// kernel that uses this is not bitwise reproducible.
//   ATOMIC_ADD_PTX=1: NVIDIA's `red.global.add.f32` (inline PTX: a reduction the L2 cache
//     performs, nothing returned, so the work-item does not wait for it). The host builds
//     this only for an NVIDIA device on which atomic_add_probe has given the exact sums
//     (model/attention/atomic_add_probe.cpp); other compilers never see the asm.
//   otherwise: a compare-and-swap loop on the word (atomic_cmpxchg, OpenCL C 1.1 core): any
//     OpenCL device, and what the tests run on PoCL.
//
// atomic_add_probe: every work-item adds probe_value(id) to sums[id % PROBE_SUMS]; the
// values are small multiples of 1/4, so every order of the adds gives the same exact sum,
// which the host computes.

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

inline float probe_value(const int id) { return 0.25f * (float)(id % 13 + 1); }

__kernel void atomic_add_probe(__global float* sums) {
  const int id = get_global_id(0);
  add_to_global(sums + id % PROBE_SUMS, probe_value(id));
}
