// adamw.cl — the optimizer step over the flat parameter buffer, and the gradient norm
// that feeds global-norm clipping.
//
// squared_norm_partials: NORM_GROUPS work-groups stride over the n gradients, each work-item
//   summing squares; each group's tree reduction → partials[group].
// squared_norm_final: one work-group adds the partials → out[0]. A fixed grid and fixed
//   reduction trees make the result deterministic.
// clip_scale: one work-item: grad_scale[0] = clip / ‖g‖ when ‖g‖ > clip > 0, else 1.
// adamw_update: one work-item per parameter (llm.c's AdamW, decoupled weight decay):
//   g = grad · grad_scale[0]; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
//   param −= lr · (m / (1−β1^t) / (√(v / (1−β2^t)) + eps) + weight_decay · param).
//   The bias corrections 1−β^t come from the host, computed in double.
// Nothing is kept between steps but m and v. Local sizes are powers of two.

#include "reduce.cl"

__kernel void squared_norm_partials(__global float* partials, const __global float* grads,
                                    const ulong n, __local float* scratch) {
  float sum = 0.f;
  for (size_t i = get_global_id(0); i < n; i += get_global_size(0)) sum += grads[i] * grads[i];
  const float total = work_group_sum(sum, scratch);
  if (get_local_id(0) == 0) partials[get_group_id(0)] = total;
}

__kernel void squared_norm_final(__global float* out, const __global float* partials,
                                 const int count, __local float* scratch) {
  float sum = 0.f;
  for (int i = get_local_id(0); i < count; i += get_local_size(0)) sum += partials[i];
  const float total = work_group_sum(sum, scratch);
  if (get_local_id(0) == 0) out[0] = total;
}

__kernel void clip_scale(__global float* grad_scale, const __global float* norm_sq,
                         const float clip) {
  const float norm = sqrt(norm_sq[0]);
  grad_scale[0] = clip > 0.f && norm > clip ? clip / norm : 1.f;
}

__kernel void adamw_update(__global float* params, const __global float* grads, __global float* m,
                           __global float* v, const ulong n, const float lr, const float beta1,
                           const float beta2, const float eps, const float weight_decay,
                           const float m_correction, const float v_correction,
                           const __global float* grad_scale) {
  const size_t i = get_global_id(0);
  if (i >= n) return;
  const float g = grads[i] * grad_scale[0];
  const float mi = beta1 * m[i] + (1.f - beta1) * g;
  const float vi = beta2 * v[i] + (1.f - beta2) * g * g;
  const float m_hat = mi / m_correction, v_hat = vi / v_correction;
  const float p = params[i];
  params[i] = p - lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * p);
  m[i] = mi;
  v[i] = vi;
}
