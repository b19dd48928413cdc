// gelu.cl — GELU, tanh approximation (GPT-2):
//   gelu(x) = 0.5·x·(1 + tanh(u)), u = √(2/π)·(x + 0.044715·x³),
// evaluated as x·σ(2u) (1 + tanh(u) = 2σ(2u)): the same function, but where u is negative
// 1 + tanh(u) cancels in float (relative error ~1e-3 by x = -4), and x / (1 + e^(-2u)) does
// not. One work-item per element. Backward needs the forward's input (kept by the model),
// and overwrites dinp.

#define GELU_SCALING 0.7978845608028654f  // √(2/π)

// σ(2u) of the element x: 1 + tanh(u) over 2. e^(-2u) overflows to inf for x below about
// -8, where σ is then exactly 0.
float gelu_sigmoid(const float x) {
  const float u = GELU_SCALING * (x + 0.044715f * x * x * x);
  return 1.f / (1.f + exp(-2.f * u));
}

__kernel void gelu_forward(__global float* out, const __global float* inp, const ulong n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const float x = inp[i];
  out[i] = x * gelu_sigmoid(x);
}

// d/dx [x·σ(2u)] = σ + x·2σ(1 − σ)·du/dx (the tanh form's 0.5(1 + th) + 0.5x(1 − th²)du/dx).
__kernel void gelu_backward(__global float* dinp, const __global float* inp,
                            const __global float* dout, const ulong n) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const float x = inp[i];
  const float s = gelu_sigmoid(x);
  const float du = GELU_SCALING * (1.f + 3.f * 0.044715f * x * x);
  const float local_grad = s + 2.f * x * s * (1.f - s) * du;
  dinp[i] = local_grad * dout[i];
}
