// classifier.cl — softmax cross-entropy over the first V of Vp logits per row (the
// vocabulary padded to Vp columns), loss_n = logsumexp(logits_n) − logits_n[target_n].
//
// One work-group per row. Work-items stride over the row keeping an online (max, Σexp)
// pair, rescaled when the max grows, so the row is read once for the loss; pairs are then
// combined by a tree reduction in a fixed order (deterministic).
// fused_classifier also writes the gradient in place of the logits, in a second pass:
//   dlogits = (softmax − onehot(target)) · dloss over the first V columns, 0 in the padding;
// dloss = 1/N for the mean loss. Nothing else is kept: the losses are read by the host.
// crossentropy_forward (validation) writes the losses only.
// The local size is a power of two chosen by the host; scratch holds 2 floats per work-item.

// logsumexp of row[0..V) shared by the work-group.
inline float row_log_sum_exp(const __global float* row, const int V, __local float* scratch) {
  const int lid = get_local_id(0), size = get_local_size(0);
  float max_value = -INFINITY, sum = 0.f;
  for (int v = lid; v < V; v += size) {
    const float x = row[v];
    if (x > max_value) {
      sum *= exp(max_value - x);
      max_value = x;
    }
    sum += exp(x - max_value);
  }
  __local float* maxima = scratch;
  __local float* sums = scratch + size;
  maxima[lid] = max_value;
  sums[lid] = sum;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int active = size / 2; active > 0; active /= 2) {
    if (lid < active) {
      const float m1 = maxima[lid], m2 = maxima[lid + active];
      const float m = fmax(m1, m2);
      // A work-item that saw no column holds (-inf, 0): contribute 0, not exp(nan).
      const float s1 = m1 == -INFINITY ? 0.f : sums[lid] * exp(m1 - m);
      const float s2 = m2 == -INFINITY ? 0.f : sums[lid + active] * exp(m2 - m);
      maxima[lid] = m;
      sums[lid] = s1 + s2;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float result = maxima[0] + log(sums[0]);
  barrier(CLK_LOCAL_MEM_FENCE);
  return result;
}

__kernel void crossentropy_forward(__global float* losses, const __global float* logits,
                                   const __global int* targets, const int V, const int Vp,
                                   __local float* scratch) {
  const int row = get_group_id(0);
  const __global float* x = logits + (size_t)row * Vp;
  const float lse = row_log_sum_exp(x, V, scratch);
  if (get_local_id(0) == 0) losses[row] = lse - x[targets[row]];
}

__kernel void fused_classifier(__global float* logits, __global float* losses,
                               const __global int* targets, const int V, const int Vp,
                               const float dloss, __local float* scratch) {
  const int row = get_group_id(0), lid = get_local_id(0), size = get_local_size(0);
  __global float* x = logits + (size_t)row * Vp;
  const int target = targets[row];
  const float lse = row_log_sum_exp(x, V, scratch);
  const float target_logit = x[target];
  barrier(CLK_GLOBAL_MEM_FENCE);  // every work-item has read x[target] before it is overwritten
  if (lid == 0) losses[row] = lse - target_logit;
  for (int v = lid; v < Vp; v += size) {
    const float p = v < V ? exp(x[v] - lse) : 0.f;
    const float onehot = v == target ? 1.f : 0.f;
    x[v] = v < V ? (p - onehot) * dloss : 0.f;
  }
}
