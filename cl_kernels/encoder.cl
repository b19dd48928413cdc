// encoder.cl — GPT-2's input embedding: token embedding + position embedding.
//
// encoder_forward: one work-item per (b, t, c): out[b,t,c] = wte[tokens[b,t], c] + wpe[t, c].
// Nothing is kept for backward (the tokens are the step's input).
//
// Backward, deterministic without float atomics (OpenCL 1.2 has none):
//   encoder_backward_wpe: one work-item per (t, c); dwpe[t,c] += Σ_b dout[b,t,c], b in order.
//   dwte needs Σ over the positions holding each token, and two positions may hold the
//   same token, so the positions are first sorted by (token, position) on the device:
//   encoder_sort_positions: one work-item per position p finds its rank
//     r = #{q : (tokens[q], q) < (tokens[p], p)} by comparing against all B·T tokens
//     (staged through local memory) and writes order[r] = p. Cost O((B·T)²) integer
//     compares: 67M for B·T = 8192, tens of microseconds on a GPU.
//   encoder_backward_wte: one work-item per (sorted index r, c); the work-item at the start
//     of each run of equal tokens sums dout over the run, positions in increasing order,
//     and adds the sum to dwte[token, c]. Its work is the run length: a token that fills
//     a fraction f of the batch costs f·B·T serial loads for each of its C work-items.
// Row indices are 32-bit (B·T·C and V·C below 2^31).

#ifndef SORT_WG
#define SORT_WG 256  // encoder_sort_positions: work-group size = tokens staged per step
#endif

__kernel void encoder_forward(__global float* out, const __global int* tokens,
                              const __global float* wte, const __global float* wpe, const int T,
                              const int C, const int count) {
  const int c = get_global_id(0), position = get_global_id(1);  // position = b·T + t
  if (c >= C || position >= count) return;
  const int t = position % T;
  out[position * C + c] = wte[tokens[position] * C + c] + wpe[t * C + c];
}

__kernel void encoder_backward_wpe(__global float* dwpe, const __global float* dout, const int B,
                                   const int T, const int C) {
  const int c = get_global_id(0), t = get_global_id(1);
  if (c >= C || t >= T) return;
  float sum = 0.f;
  for (int b = 0; b < B; ++b) sum += dout[(b * T + t) * C + c];
  dwpe[t * C + c] += sum;
}

__kernel __attribute__((reqd_work_group_size(SORT_WG, 1, 1)))
void encoder_sort_positions(__global int* order, const __global int* tokens, const int count) {
  const int p = get_global_id(0), lid = get_local_id(0);
  const int token = p < count ? tokens[p] : 0;
  __local int tile[SORT_WG];
  int rank = 0;
  for (int base = 0; base < count; base += SORT_WG) {
    barrier(CLK_LOCAL_MEM_FENCE);  // the previous step is done with the tile
    if (base + lid < count) tile[lid] = tokens[base + lid];
    barrier(CLK_LOCAL_MEM_FENCE);
    const int n = min(SORT_WG, count - base);
    for (int i = 0; i < n; ++i) {
      const int other = tile[i];
      rank += other < token || (other == token && base + i < p);
    }
  }
  if (p < count) order[rank] = p;
}

__kernel void encoder_backward_wte(__global float* dwte, const __global float* dout,
                                   const __global int* order, const __global int* tokens,
                                   const int count, const int C) {
  const int c = get_global_id(0), r = get_global_id(1);
  if (c >= C || r >= count) return;
  const int token = tokens[order[r]];
  if (r > 0 && tokens[order[r - 1]] == token) return;  // not the first of its run
  float sum = 0.f;
  for (int s = r; s < count && tokens[order[s]] == token; ++s) sum += dout[order[s] * C + c];
  dwte[token * C + c] += sum;
}
