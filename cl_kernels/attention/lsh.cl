// lsh: Reformer LSH attention (Kitaev et al. 2020) made strictly causal, VARIANTS.md §lsh.
// Shared QK: qv = x·W_qvᵀ + b gives Q | V; keys K_j = Q_j·ρ_j, ρ_j = 1/√(‖Q_j‖² + 1e-12)
// (the 1e-12 only keeps Q_j = 0 finite). Per hash round r, with the host's rotation R_r
// (d × n_b/2, N(0,1), from (seed, step)):
//   bucket_r(j) = argmax([Q_j R_r ; −Q_j R_r]), first index on ties — Q_j has K_j's
//     direction, so this is K_j's bucket, and query and key of a position share it;
//   positions sorted by (bucket, position) (a stable counting sort: slot s ↦ position);
//   the query at slot s attends to slots max(s − 2c, first slot of its bucket) .. s, i.e.
//     to itself and the ≤ 2c latest earlier positions of its bucket; score Q_i·K_j/√d, the
//     pair i = j −1e5; softmax over them → O_r, L_r (log-sum-exp).
//   O = Σ_r exp(L_r − LSE)·O_r, LSE = logsumexp_r L_r.
// Since exp(L_r − LSE)·exp(s_rj − L_r) = exp(s_rj − LSE), O is one softmax over all
// (round, key) pairs — a pair met in several rounds counts once per round — so with
// P_rj = exp(s_rj − LSE) and D_i = dO_i·O_i the backward is a sum over rounds:
//   dS_rj = P_rj (dO_i·V_j − D_i);  dQ_i += dS K_j/√d;  dK_j += dS Q_i/√d;  dV_j += P_rj dO_i
// (the constant self score passes no gradient), then through the normalisation
//   dQ_j += ρ_j dK_j − ρ_j³ (Q_j·dK_j) Q_j.
// Host sequence (model/attention/lsh.cpp):
//   forward:  lsh_hash → lsh_sort → lsh_attend (all rounds) → lsh_combine
//   backward: lsh_delta → lsh_attend_dq, lsh_attend_dkv (all rounds) → lsh_input_grad
// Kept for backward (by the host, per layer): qv (B,T,2C), O (B,T,C), LSE (B,H,T,2),
// ρ (B,H,T), bucket ids (B,H,n_r,T) and the sorted order (B,H,n_r,T). Hashes and sort are
// constants of the step: backward reuses them and never rehashes. LSE is kept as the pair
// (M, log Σ) with LSE = M + log Σ, M the largest round L_r: a query alone in every round
// has LSE = −1e5 + log n_r, which one float holds only to ±0.004, while its self pair's
// P = exp((−1e5 − M) − log Σ) = 1/n_r needs it exactly.
//
// Work-item mapping:
//   lsh_hash: one work-item per (head, position, batch): ρ and its n_r bucket ids; every
//     work-item reads the same rotation entry at once (broadcast).
//   lsh_sort: one work-group of SORT_WG work-items per (batch, head, round).
//   lsh_attend, lsh_attend_dq: one work-group per (QUERIES consecutive sorted slots,
//     (batch, head, round)); one work-item per query slot, holding its vectors in private
//     arrays of HEAD_SIZE; the key slots the block can see ([s0 − 2c, s0 + QUERIES)) pass
//     through local memory KEYS rows at a time, read by all work-items at once (broadcast).
//   lsh_attend_dkv: the same with roles swapped: one work-item per key slot, the query
//     slots that can see the block ([s0, s0 + QUERIES + 2c)) streamed through local memory.
//   lsh_combine: one work-item per element of (B,T,C).
//   lsh_delta, lsh_input_grad: one work-group of HEAD_SIZE work-items per (head, position,
//     batch), one per channel, dot products summed in local memory.
// Layouts: qv (B,T,2C); ρ, D (B,H,T); LSE (B,H,T,2); bucket, sorted (B,H,n_r,T) (group id 1 of the
// attention kernels is its (b·H + h)·n_r + r); per-round outputs out_r, dq_r, dk_r, dv_r
// (n_r,B,T,C) and lse_r (n_r,B,H,T); rotations (n_r, d, n_b/2).

#ifndef HEAD_SIZE
#define HEAD_SIZE 64  // d, the head size (sizes the private arrays)
#endif

#include "reduce.cl"  // work_group_sum: the per-head dot products of the backward
#ifndef QUERIES
#define QUERIES 64  // sorted slots per work-group of the attention kernels (= work-items)
#endif
#ifndef KEYS
#define KEYS 32  // rows of the streamed tile of the attention kernels
#endif
#ifndef SORT_WG
#define SORT_WG 256  // work-items of the counting sort
#endif

#define SELF_SCORE -1e5f
#define NORM_EPS 1e-12f

// Σ_k q[k]·R[k][m] in plain float, product and sum rounded separately and in order, so the
// host (lsh::bucket_of in model/attention/lsh_hashing.cpp) reproduces every bucket exactly.
float project(const float* q, __global const float* rotation_column, int stride) {
#pragma OPENCL FP_CONTRACT OFF
  float p = 0.f;
  for (int k = 0; k < HEAD_SIZE; ++k) p += q[k] * rotation_column[k * stride];
  return p;
}

__kernel void lsh_hash(__global int* bucket, __global float* rho, __global const float* qv,
                       __global const float* rotations, const int B, const int T, const int C,
                       const int H, const int n_rounds, const int n_buckets) {
  const int h = get_global_id(0), t = get_global_id(1), b = get_global_id(2);
  if (h >= H || b >= B) return;
  const int n_half = n_buckets / 2;
  __global const float* q_row = qv + ((size_t)b * T + t) * 2 * C + h * HEAD_SIZE;
  float q[HEAD_SIZE], squares = 0.f;
  for (int k = 0; k < HEAD_SIZE; ++k) q[k] = q_row[k], squares += q[k] * q[k];
  const size_t bh = (size_t)b * H + h;
  rho[bh * T + t] = 1.f / sqrt(squares + NORM_EPS);
  for (int r = 0; r < n_rounds; ++r) {
    __global const float* rotation = rotations + (size_t)r * HEAD_SIZE * n_half;
    // argmax of [p ; −p]: the largest p against the largest −p, the positive n_half first.
    float max_p = -INFINITY, min_p = INFINITY;
    int arg_max = 0, arg_min = 0;
    for (int m = 0; m < n_half; ++m) {
      const float p = project(q, rotation + m, n_half);
      if (p > max_p) max_p = p, arg_max = m;
      if (p < min_p) min_p = p, arg_min = m;
    }
    bucket[(bh * n_rounds + r) * T + t] = max_p >= -min_p ? arg_max : n_half + arg_min;
  }
}

// Stable counting sort of one (b, h, r): sorted[slot] = position, by (bucket, position).
__kernel void lsh_sort(__global int* sorted, __global const int* bucket, const int T,
                       const int n_buckets, __local int* offsets,  // n_buckets
                       __local int* block) {                       // SORT_WG
  const int lid = get_local_id(0);
  bucket += (size_t)get_group_id(0) * T;
  sorted += (size_t)get_group_id(0) * T;
  for (int m = lid; m < n_buckets; m += SORT_WG) offsets[m] = 0;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int t = lid; t < T; t += SORT_WG) atomic_inc(&offsets[bucket[t]]);
  barrier(CLK_LOCAL_MEM_FENCE);
  if (lid == 0) {  // counts → first slot of each bucket
    int total = 0;
    for (int m = 0; m < n_buckets; ++m) {
      const int count = offsets[m];
      offsets[m] = total;
      total += count;
    }
  }
  // Blocks of SORT_WG positions in order; inside a block a position's rank among its
  // bucket's members is counted directly, which keeps the order (atomics would not).
  for (int t0 = 0; t0 < T; t0 += SORT_WG) {
    const int t = t0 + lid, mine = t < T ? bucket[t] : -1;
    barrier(CLK_LOCAL_MEM_FENCE);  // offsets final; the previous block's ranks are read
    block[lid] = mine;
    barrier(CLK_LOCAL_MEM_FENCE);
    int rank = 0, count = 0;
    if (mine >= 0) {
      for (int m = 0; m < SORT_WG; ++m) {
        count += block[m] == mine;
        rank += block[m] == mine && m < lid;
      }
      sorted[offsets[mine] + rank] = t;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (mine >= 0 && rank == count - 1) offsets[mine] += count;
  }
}

// Where one (b, h, r) work-group is, from its group id.
typedef struct {
  int b, h, r;
  size_t bhr;  // (b·H + h)·n_rounds + r
} Slice;

Slice slice_of(int H, int n_rounds) {
  Slice s;
  s.bhr = get_group_id(1);
  s.r = s.bhr % n_rounds;
  s.h = s.bhr / n_rounds % H;
  s.b = s.bhr / n_rounds / H;
  return s;
}

// Slots [first, first + rows) of `order` → tile rows: K_j = Q_j·ρ_j, V_j and the slot's
// bucket (−2 past `rows`, matching no query).
void load_key_rows(__local float* keys, __local float* values, __local int* row_bucket,
                   __global const float* qv, __global const float* rho,
                   __global const int* order, __global const int* bkt, int first, int rows,
                   int tile_rows, size_t batch_row0, size_t bh_row0, int C, int h) {
  const int lid = get_local_id(0);
  for (int idx = lid; idx < rows * HEAD_SIZE; idx += QUERIES) {
    const int row = idx / HEAD_SIZE, k = idx % HEAD_SIZE, j = order[first + row];
    __global const float* src = qv + (batch_row0 + j) * 2 * C + h * HEAD_SIZE + k;
    keys[idx] = src[0] * rho[bh_row0 + j];
    values[idx] = src[C];
  }
  for (int row = lid; row < tile_rows; row += QUERIES)
    row_bucket[row] = row < rows ? bkt[order[first + row]] : -2;
}

float dot_private_local(const float* a, __local const float* b) {
  float s = 0.f;
  for (int k = 0; k < HEAD_SIZE; ++k) s += a[k] * b[k];
  return s;
}

__kernel void lsh_attend(__global float* out_r, __global float* lse_r, __global const float* qv,
                         __global const float* rho, __global const int* bucket,
                         __global const int* sorted, const int B, const int T, const int C,
                         const int H, const int n_rounds, const int chunk,
                         __local float* keys,       // KEYS × HEAD_SIZE
                         __local float* values,     // KEYS × HEAD_SIZE
                         __local int* key_bucket) { // KEYS
  const Slice z = slice_of(H, n_rounds);
  const int s0 = get_group_id(0) * QUERIES, s = s0 + get_local_id(0), window = 2 * chunk;
  __global const int* order = sorted + z.bhr * T;
  __global const int* bkt = bucket + z.bhr * T;
  const size_t batch_row0 = (size_t)z.b * T, bh_row0 = ((size_t)z.b * H + z.h) * T;
  const bool active = s < T;
  const int i = active ? order[s] : 0, my_bucket = active ? bkt[i] : -1;
  const float scale = 1.f / sqrt((float)HEAD_SIZE);

  float q[HEAD_SIZE], acc[HEAD_SIZE];
  __global const float* qi = qv + (batch_row0 + i) * 2 * C + z.h * HEAD_SIZE;
  for (int k = 0; k < HEAD_SIZE; ++k) q[k] = qi[k] * scale, acc[k] = 0.f;
  float running_max = -INFINITY, sum = 0.f;  // online softmax

  const int first = max(0, s0 - window), last = min(T, s0 + QUERIES);
  for (int k0 = first; k0 < last; k0 += KEYS) {
    const int rows = min(KEYS, last - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    load_key_rows(keys, values, key_bucket, qv, rho, order, bkt, k0, rows, KEYS, batch_row0,
                  bh_row0, C, z.h);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int kk = 0; kk < rows; ++kk) {
      const int ks = k0 + kk;
      if (ks > s || ks < s - window || key_bucket[kk] != my_bucket) continue;
      const float score = ks == s ? SELF_SCORE : dot_private_local(q, keys + kk * HEAD_SIZE);
      const float new_max = fmax(running_max, score);
      const float rescale = exp(running_max - new_max), p = exp(score - new_max);
      sum = sum * rescale + p;
      for (int k = 0; k < HEAD_SIZE; ++k)
        acc[k] = acc[k] * rescale + p * values[kk * HEAD_SIZE + k];
      running_max = new_max;
    }
  }
  if (!active) return;
  __global float* o = out_r + (((size_t)z.r * B + z.b) * T + i) * C + z.h * HEAD_SIZE;
  for (int k = 0; k < HEAD_SIZE; ++k) o[k] = acc[k] / sum;
  lse_r[(((size_t)z.r * B + z.b) * H + z.h) * T + i] = running_max + log(sum);
}

#define ELEMENT_INDICES                                                            \
  const int col = get_global_id(0), t = get_global_id(1), bt = get_global_id(2); \
  if (col >= C) return;                                                           \
  const int h = col / HEAD_SIZE;                                                  \
  const size_t row = (size_t)bt * T + t, bh_row = ((size_t)bt * H + h) * T + t;

// att (B,T,C) = Σ_r exp(L_r − LSE)·O_r; LSE (B,H,T,2) = (M, log Σ) kept for backward.
__kernel void lsh_combine(__global float* att, __global float* lse, __global const float* out_r,
                          __global const float* lse_r, const int B, const int T, const int C,
                          const int H, const int n_rounds) {
  ELEMENT_INDICES
  const size_t round_stride = (size_t)B * H * T;
  float max_l = -INFINITY;
  for (int r = 0; r < n_rounds; ++r) max_l = fmax(max_l, lse_r[r * round_stride + bh_row]);
  float total = 0.f, o = 0.f;
  for (int r = 0; r < n_rounds; ++r) {
    const float w = exp(lse_r[r * round_stride + bh_row] - max_l);
    total += w;
    o += w * out_r[(r * (size_t)B * T + row) * C + col];
  }
  att[row * C + col] = o / total;
  if (col % HEAD_SIZE == 0) lse[2 * bh_row] = max_l, lse[2 * bh_row + 1] = log(total);
}

// D (B,H,T) = dO_i·O_i per head. Work-group = the HEAD_SIZE channels of (head, position, batch).
__kernel void lsh_delta(__global float* delta, __global const float* datt,
                        __global const float* att, const int T, const int C, const int H,
                        __local float* buf) {  // HEAD_SIZE
  const int k = get_local_id(0), h = get_group_id(0), t = get_global_id(1), b = get_global_id(2);
  const size_t src = ((size_t)b * T + t) * C + h * HEAD_SIZE + k;
  const float d = work_group_sum(datt[src] * att[src], buf);
  if (k == 0) delta[((size_t)b * H + h) * T + t] = d;
}

// dq_r (n_r,B,T,C): Σ over the query's allowed keys of round r of dS K_j/√d.
__kernel void lsh_attend_dq(__global float* dq_r, __global const float* qv,
                            __global const float* rho, __global const int* bucket,
                            __global const int* sorted, __global const float* datt,
                            __global const float* lse, __global const float* delta, const int B,
                            const int T, const int C, const int H, const int n_rounds,
                            const int chunk, __local float* keys, __local float* values,
                            __local int* key_bucket) {
  const Slice z = slice_of(H, n_rounds);
  const int s0 = get_group_id(0) * QUERIES, s = s0 + get_local_id(0), window = 2 * chunk;
  __global const int* order = sorted + z.bhr * T;
  __global const int* bkt = bucket + z.bhr * T;
  const size_t batch_row0 = (size_t)z.b * T, bh_row0 = ((size_t)z.b * H + z.h) * T;
  const bool active = s < T;
  const int i = active ? order[s] : 0, my_bucket = active ? bkt[i] : -1;
  const float scale = 1.f / sqrt((float)HEAD_SIZE), delta_i = delta[bh_row0 + i];
  const float lse_max = lse[2 * (bh_row0 + i)], lse_log_sum = lse[2 * (bh_row0 + i) + 1];

  float q[HEAD_SIZE], dout[HEAD_SIZE], dq[HEAD_SIZE];
  __global const float* qi = qv + (batch_row0 + i) * 2 * C + z.h * HEAD_SIZE;
  __global const float* doi = datt + (batch_row0 + i) * C + z.h * HEAD_SIZE;
  for (int k = 0; k < HEAD_SIZE; ++k) q[k] = qi[k] * scale, dout[k] = doi[k], dq[k] = 0.f;

  const int first = max(0, s0 - window), last = min(T, s0 + QUERIES);
  for (int k0 = first; k0 < last; k0 += KEYS) {
    const int rows = min(KEYS, last - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    load_key_rows(keys, values, key_bucket, qv, rho, order, bkt, k0, rows, KEYS, batch_row0,
                  bh_row0, C, z.h);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int kk = 0; kk < rows; ++kk) {
      const int ks = k0 + kk;
      if (ks >= s || ks < s - window || key_bucket[kk] != my_bucket) continue;
      __local const float* kj = keys + kk * HEAD_SIZE;
      const float p = exp((dot_private_local(q, kj) - lse_max) - lse_log_sum);
      const float ds = p * (dot_private_local(dout, values + kk * HEAD_SIZE) - delta_i);
      for (int k = 0; k < HEAD_SIZE; ++k) dq[k] += ds * kj[k];
    }
  }
  if (!active) return;
  __global float* o = dq_r + (((size_t)z.r * B + z.b) * T + i) * C + z.h * HEAD_SIZE;
  for (int k = 0; k < HEAD_SIZE; ++k) o[k] = dq[k] * scale;
}

// dk_r, dv_r (n_r,B,T,C): Σ over the queries of round r that see the key of dS Q_i/√d and
// of P dO_i. The work-item's own K_j is in local memory (own_keys, QUERIES × (HEAD_SIZE+1):
// the odd pitch puts each work-item's row in its own bank); V_j, dK_j, dV_j are private.
__kernel void lsh_attend_dkv(__global float* dk_r, __global float* dv_r,
                             __global const float* qv, __global const float* rho,
                             __global const int* bucket, __global const int* sorted,
                             __global const float* datt, __global const float* lse,
                             __global const float* delta, const int B, const int T, const int C,
                             const int H, const int n_rounds, const int chunk,
                             __local float* own_keys,   // QUERIES × (HEAD_SIZE + 1)
                             __local float* queries,    // KEYS × HEAD_SIZE: Q_i/√d
                             __local float* douts,      // KEYS × HEAD_SIZE: dO_i
                             __local float* query_max,      // KEYS: M of LSE
                             __local float* query_log_sum,  // KEYS: log Σ of LSE
                             __local float* query_delta,    // KEYS
                             __local int* query_bucket) {  // KEYS
  const Slice z = slice_of(H, n_rounds);
  const int lid = get_local_id(0), s0 = get_group_id(0) * QUERIES, s = s0 + lid;
  const int window = 2 * chunk, pitch = HEAD_SIZE + 1;
  __global const int* order = sorted + z.bhr * T;
  __global const int* bkt = bucket + z.bhr * T;
  const size_t batch_row0 = (size_t)z.b * T, bh_row0 = ((size_t)z.b * H + z.h) * T;
  const bool active = s < T;
  const int j = active ? order[s] : 0, my_bucket = active ? bkt[j] : -1;
  const float scale = 1.f / sqrt((float)HEAD_SIZE), rho_j = rho[bh_row0 + j];

  float v[HEAD_SIZE], dk[HEAD_SIZE], dv[HEAD_SIZE];
  __global const float* qj = qv + (batch_row0 + j) * 2 * C + z.h * HEAD_SIZE;
  __local float* kj = own_keys + lid * pitch;
  for (int k = 0; k < HEAD_SIZE; ++k)
    kj[k] = qj[k] * rho_j, v[k] = qj[C + k], dk[k] = 0.f, dv[k] = 0.f;

  const int first = s0, last = min(T, s0 + QUERIES + window);
  for (int t0 = first; t0 < last; t0 += KEYS) {
    const int rows = min(KEYS, last - t0);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int idx = lid; idx < rows * HEAD_SIZE; idx += QUERIES) {
      const int row = idx / HEAD_SIZE, k = idx % HEAD_SIZE, i = order[t0 + row];
      queries[idx] = qv[(batch_row0 + i) * 2 * C + z.h * HEAD_SIZE + k] * scale;
      douts[idx] = datt[(batch_row0 + i) * C + z.h * HEAD_SIZE + k];
    }
    for (int row = lid; row < KEYS; row += QUERIES) {
      const int i = row < rows ? order[t0 + row] : 0;
      query_bucket[row] = row < rows ? bkt[i] : -2;
      query_max[row] = lse[2 * (bh_row0 + i)];
      query_log_sum[row] = lse[2 * (bh_row0 + i) + 1];
      query_delta[row] = delta[bh_row0 + i];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int qq = 0; qq < rows; ++qq) {
      const int qs = t0 + qq;
      if (qs < s || qs > s + window || query_bucket[qq] != my_bucket) continue;
      __local const float* dout = douts + qq * HEAD_SIZE;
      float p;
      if (qs == s) {
        // the self pair: a value, no score gradient
        p = exp((SELF_SCORE - query_max[qq]) - query_log_sum[qq]);
      } else {
        __local const float* qi = queries + qq * HEAD_SIZE;
        float score = 0.f, dp = 0.f;
        for (int k = 0; k < HEAD_SIZE; ++k) score += qi[k] * kj[k], dp += dout[k] * v[k];
        p = exp((score - query_max[qq]) - query_log_sum[qq]);
        const float ds = p * (dp - query_delta[qq]);
        for (int k = 0; k < HEAD_SIZE; ++k) dk[k] += ds * qi[k];
      }
      for (int k = 0; k < HEAD_SIZE; ++k) dv[k] += p * dout[k];
    }
  }
  if (!active) return;
  const size_t dst = (((size_t)z.r * B + z.b) * T + j) * C + z.h * HEAD_SIZE;
  for (int k = 0; k < HEAD_SIZE; ++k) dk_r[dst + k] = dk[k], dv_r[dst + k] = dv[k];
}

// dqv (B,T,2C) ← dQ = Σ_r dq_r + ρ dK − ρ³ (Q·dK) Q with dK = Σ_r dk_r, and dV = Σ_r dv_r.
// Work-group = the HEAD_SIZE channels of one (head, position, batch).
__kernel void lsh_input_grad(__global float* dqv, __global const float* dq_r,
                             __global const float* dk_r, __global const float* dv_r,
                             __global const float* qv, __global const float* rho, const int B,
                             const int T, const int C, const int H, const int n_rounds,
                             __local float* buf) {  // HEAD_SIZE
  const int k = get_local_id(0), h = get_group_id(0), t = get_global_id(1), b = get_global_id(2);
  const size_t row = (size_t)b * T + t, round_stride = (size_t)B * T * C;
  const size_t src = row * C + h * HEAD_SIZE + k, q_at = row * 2 * C + h * HEAD_SIZE + k;
  float dq = 0.f, dk = 0.f, dv = 0.f;
  for (int r = 0; r < n_rounds; ++r) {
    dq += dq_r[r * round_stride + src];
    dk += dk_r[r * round_stride + src];
    dv += dv_r[r * round_stride + src];
  }
  const float q = qv[q_at], rho_t = rho[((size_t)b * H + h) * T + t];
  const float q_dot_dk = work_group_sum(q * dk, buf);
  dqv[q_at] = dq + rho_t * dk - rho_t * rho_t * rho_t * q_dot_dk * q;
  dqv[q_at + C] = dv;
}
