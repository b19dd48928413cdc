// gelu.cl — GELU, tanh approximation (GPT-2):
//   gelu(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
// One work-item per element. Backward needs the forward's input (kept by the model),
// and overwrites dinp.

#define GELU_SCALING 0.7978845608028654f  // √(2/π)

__kernel void gelu_forward(__global float* out, const __global float* inp, const ulong n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const float x = inp[i];
  const float cube = 0.044715f * x * x * x;
  out[i] = 0.5f * x * (1.f + tanh(GELU_SCALING * (x + cube)));
}

__kernel void gelu_backward(__global float* dinp, const __global float* inp,
                            const __global float* dout, const ulong n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const float x = inp[i];
  const float th = tanh(GELU_SCALING * (x + 0.044715f * x * x * x));
  const float dth = GELU_SCALING * (1.f + 3.f * 0.044715f * x * x);
  const float local_grad = 0.5f * (1.f + th) + 0.5f * x * (1.f - th * th) * dth;
  dinp[i] = local_grad * dout[i];
}
