// residual.cl — the residual stream's element-wise sums, one work-item per element.
// residual_forward: out = a + b. accumulate: dst += src (gradients that meet at a
// residual branch). Nothing is kept for backward: the gradient of a sum passes through.

__kernel void residual_forward(__global float* out, const __global float* a,
                               const __global float* b, const ulong n) {
  const size_t i = get_global_id(0);
  if (i < n) out[i] = a[i] + b[i];
}

__kernel void accumulate(__global float* dst, const __global float* src, const ulong n) {
  const size_t i = get_global_id(0);
  if (i < n) dst[i] += src[i];
}
