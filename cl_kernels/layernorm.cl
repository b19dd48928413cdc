// layernorm.cl — layer normalisation over rows of C (eps 1e-5):
//   out = (inp − mean) · rstd · weight + bias,  rstd = 1/√(var + eps).
//
// layernorm_forward: one work-group per row; work-items stride over the row, the row's
//   sums are work-group tree reductions (mean first, then Σ(x − mean)², two passes for
//   accuracy). Keeps mean and rstd (N floats each) for backward.
// layernorm_backward: one work-group per row; dinp += rstd·(dnorm − mean(dnorm)
//   − norm·mean(dnorm·norm)) with dnorm = weight·dout, norm recomputed from inp, mean, rstd.
// dweight and dbias sum over all rows; deterministically, without atomics, in two steps:
//   layernorm_param_partials: one work-item per (c, block of LN_ROWS rows) sums dout·norm
//     and dout over its rows → partials[block][c];
//   layernorm_param_reduce: one work-item per c adds the blocks' partials in order and
//     accumulates into dweight[c], dbias[c].
// The local size of the row kernels is a power of two chosen by the host.

#include "reduce.cl"

#ifndef LN_ROWS
#define LN_ROWS 32  // rows per partial sum of dweight/dbias
#endif

#define LN_EPS 1e-5f

__kernel void layernorm_forward(__global float* out, __global float* mean, __global float* rstd,
                                const __global float* inp, const __global float* weight,
                                const __global float* bias, const int C,
                                __local float* scratch) {
  const int row = get_group_id(0), lid = get_local_id(0), stride = get_local_size(0);
  const __global float* x = inp + (size_t)row * C;
  float sum = 0.f;
  for (int c = lid; c < C; c += stride) sum += x[c];
  const float m = work_group_sum(sum, scratch) / C;
  float squares = 0.f;
  for (int c = lid; c < C; c += stride) squares += (x[c] - m) * (x[c] - m);
  const float s = rsqrt(work_group_sum(squares, scratch) / C + LN_EPS);
  __global float* y = out + (size_t)row * C;
  for (int c = lid; c < C; c += stride) y[c] = (x[c] - m) * s * weight[c] + bias[c];
  if (lid == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

__kernel void layernorm_backward(__global float* dinp, const __global float* dout,
                                 const __global float* inp, const __global float* weight,
                                 const __global float* mean, const __global float* rstd,
                                 const int C, __local float* scratch) {
  const int row = get_group_id(0), lid = get_local_id(0), stride = get_local_size(0);
  const size_t offset = (size_t)row * C;
  const float m = mean[row], s = rstd[row];
  float dnorm_sum = 0.f, dnorm_norm_sum = 0.f;
  for (int c = lid; c < C; c += stride) {
    const float dnorm = weight[c] * dout[offset + c];
    dnorm_sum += dnorm;
    dnorm_norm_sum += dnorm * (inp[offset + c] - m) * s;
  }
  const float dnorm_mean = work_group_sum(dnorm_sum, scratch) / C;
  const float dnorm_norm_mean = work_group_sum(dnorm_norm_sum, scratch) / C;
  for (int c = lid; c < C; c += stride) {
    const float norm = (inp[offset + c] - m) * s;
    const float dnorm = weight[c] * dout[offset + c];
    dinp[offset + c] += (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
  }
}

__kernel void layernorm_param_partials(__global float* partials, const __global float* dout,
                                       const __global float* inp, const __global float* mean,
                                       const __global float* rstd, const int N, const int C) {
  const int c = get_global_id(0), block = get_global_id(1);
  const int blocks = get_global_size(1);
  if (c >= C) return;
  float dweight = 0.f, dbias = 0.f;
  const int end = min(N, (block + 1) * LN_ROWS);
  for (int n = block * LN_ROWS; n < end; ++n) {
    const size_t i = (size_t)n * C + c;
    dweight += dout[i] * (inp[i] - mean[n]) * rstd[n];
    dbias += dout[i];
  }
  partials[(size_t)block * C + c] = dweight;
  partials[((size_t)blocks + block) * C + c] = dbias;
}

__kernel void layernorm_param_reduce(__global float* dweight, __global float* dbias,
                                     const __global float* partials, const int blocks,
                                     const int C) {
  const int c = get_global_id(0);
  if (c >= C) return;
  float weight_sum = 0.f, bias_sum = 0.f;
  for (int block = 0; block < blocks; ++block) {
    weight_sum += partials[(size_t)block * C + c];
    bias_sum += partials[((size_t)blocks + block) * C + c];
  }
  dweight[c] += weight_sum;
  dbias[c] += bias_sum;
}
