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
// ρ (B,H,T), bucket ids (B,H,n_r,T), the sorted order (B,H,n_r,T) and the buckets' first
// slots (B,H,n_r,n_b+1). Hashes and sort are constants of the step: backward reuses them
// and never rehashes. LSE is kept as the pair (M, log Σ) with LSE = M + log Σ, M the
// largest round L_r: a query alone in every round has LSE = −1e5 + log n_r, which one
// float holds only to ±0.004, while its self pair's P = exp((−1e5 − M) − log Σ) = 1/n_r
// needs it exactly.
//
// Work-item mapping:
//   lsh_hash: one work-item per (head, position, batch): ρ and its n_r bucket ids; every
//     work-item reads the same rotation entry at once (broadcast).
//   lsh_sort: one work-group of SORT_WG work-items per (batch, head, round); it also keeps
//     each bucket's first slot (starts), which bound the attention kernels' bands.
//   lsh_attend, lsh_attend_dq: one work-group per (QUERIES consecutive sorted slots,
//     (batch, head, round)); one work-item per query slot. In sorted order the allowed keys
//     of slot s are the band [max(s − 2c, first slot of s's bucket), s], and the band's
//     start grows with s, so the block [s0, s0 + QUERIES) streams only [start of s0's band,
//     s0 + QUERIES) through local memory, KEYS rows at a time; every work-item walks all
//     rows of a tile, testing its own band, so that all read the same row at once (a
//     broadcast). Head rows are HEAD_VEC float4s (zero past HEAD_SIZE): one 128-bit local
//     load per four multiply-adds, dot products in four partial sums. lsh_attend keeps Q_i
//     and its accumulator in registers; lsh_attend_dq keeps Q_i and dQ_i there and dO_i in
//     local memory, and per tile first writes each allowed key's dS to local memory, then
//     adds the dS K_j in a second loop (one loop holds each key row in registers between
//     the dot and the update: spills).
//   lsh_attend_dkv: the same with roles swapped: one work-item per key slot j, seen by the
//     query slots [j, min(j + 2c, last slot of j's bucket)]; the block streams [s0, the end
//     of its last key's band]. dK_j, dV_j in registers, K_j and V_j in local memory, (P, dS)
//     per pair through local memory as in lsh_attend_dq.
//   lsh_combine: one work-item per element of (B,T,C).
//   lsh_delta, lsh_input_grad: one work-group of HEAD_SIZE work-items per (head, position,
//     batch), one per channel, dot products summed in local memory.
// Layouts: qv (B,T,2C); ρ, D (B,H,T); LSE (B,H,T,2); bucket, sorted (B,H,n_r,T) (group id 1 of the
// attention kernels is its (b·H + h)·n_r + r); starts (B,H,n_r,n_b+1); per-round outputs
// out_r, dq_r, dk_r, dv_r (n_r,B,T,C) and lse_r (n_r,B,H,T); rotations (n_r, d, n_b/2).

#ifndef HEAD_SIZE
#define HEAD_SIZE 64  // d, the head size (sizes the private arrays)
#endif

#include "reduce.cl"  // work_group_sum: the per-head dot products of the backward
#ifndef QUERIES
#define QUERIES 32  // sorted slots per work-group of the attention kernels (= work-items)
#endif
#ifndef KEYS
#define KEYS 16  // rows of the streamed tile of the attention kernels
#endif
#ifndef SORT_WG
#define SORT_WG 256  // work-items of the counting sort
#endif
#define HEAD_VEC ((HEAD_SIZE + 3) / 4)  // float4s per head row in the attention kernels
// float4s per row of the backward kernels' own rows (one per work-item): odd, so that the 8
// work-items of a 128-bit load phase, each reading its own row, hit 8 different groups of
// 4 banks.
#define OWN_PITCH (HEAD_VEC | 1)

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
// starts (n_buckets + 1 per slice): the first slot of each bucket, then T; the attention
// kernels' band bounds.
__kernel void lsh_sort(__global int* sorted, __global int* starts, __global const int* bucket,
                       const int T, const int n_buckets,
                       __local int* offsets,  // n_buckets
                       __local int* block) {  // SORT_WG
  const int lid = get_local_id(0);
  bucket += (size_t)get_group_id(0) * T;
  sorted += (size_t)get_group_id(0) * T;
  starts += (size_t)get_group_id(0) * (n_buckets + 1);
  for (int m = lid; m < n_buckets; m += SORT_WG) offsets[m] = 0;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int t = lid; t < T; t += SORT_WG) atomic_inc(&offsets[bucket[t]]);
  barrier(CLK_LOCAL_MEM_FENCE);
  if (lid == 0) {  // counts → first slot of each bucket
    int total = 0;
    for (int m = 0; m < n_buckets; ++m) {
      const int count = offsets[m];
      offsets[m] = starts[m] = total;
      total += count;
    }
    starts[n_buckets] = T;
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
  size_t bhr;                  // (b·H + h)·n_rounds + r
  size_t batch_row0, bh_row0;  // b·T, (b·H + h)·T: first rows of (B,T,·) and (B,H,T,·)
  __global const int* order;   // sorted slot → position
  __global const int* bkt;     // position → bucket
  __global const int* start;   // bucket → its first slot; [n_buckets] = T
} Slice;

Slice slice_of(__global const int* bucket, __global const int* sorted, __global const int* starts,
               int T, int H, int n_rounds, int n_buckets) {
  Slice z;
  z.bhr = get_group_id(1);
  z.r = z.bhr % n_rounds;
  z.h = z.bhr / n_rounds % H;
  z.b = z.bhr / n_rounds / H;
  z.batch_row0 = (size_t)z.b * T;
  z.bh_row0 = ((size_t)z.b * H + z.h) * T;
  z.order = sorted + z.bhr * T;
  z.bkt = bucket + z.bhr * T;
  z.start = starts + z.bhr * (n_buckets + 1);
  return z;
}

// The band. Slots are sorted by (bucket, position), so the query at slot s sees the slot
// range [first_key_slot(s), s] and the key at slot s is seen by [s, last_query_slot(s)].
// Both bounds grow with s: a block's range is its first query's start to its last's end.
int first_key_slot(Slice z, int s, int window) {
  return max(s - window, z.start[z.bkt[z.order[s]]]);
}

int last_query_slot(Slice z, int s, int window) {
  return min(s + window, z.start[z.bkt[z.order[s]] + 1] - 1);
}

// Channels 4v .. 4v+3 of a head row, 0 past HEAD_SIZE (rows are HEAD_VEC float4s). When
// HEAD_SIZE is a multiple of 4, so are C and the offset of every head row of qv, dO and
// the per-round outputs: rows are 16-byte aligned and one 128-bit access moves 4 channels.
float4 load_head(__global const float* row, int v) {
#if HEAD_SIZE % 4 == 0
  return ((__global const float4*)row)[v];
#else
  const int k = 4 * v;
  return (float4)(k < HEAD_SIZE ? row[k] : 0.f, k + 1 < HEAD_SIZE ? row[k + 1] : 0.f,
                  k + 2 < HEAD_SIZE ? row[k + 2] : 0.f, k + 3 < HEAD_SIZE ? row[k + 3] : 0.f);
#endif
}

void store_head(__global float* row, int v, float4 x) {
#if HEAD_SIZE % 4 == 0
  ((__global float4*)row)[v] = x;
#else
  const int k = 4 * v;
  if (k < HEAD_SIZE) row[k] = x.s0;
  if (k + 1 < HEAD_SIZE) row[k + 1] = x.s1;
  if (k + 2 < HEAD_SIZE) row[k + 2] = x.s2;
  if (k + 3 < HEAD_SIZE) row[k + 3] = x.s3;
#endif
}

// Σ a·b over a padded row in four partial sums: four independent multiply-add chains
// instead of one, and one local load per four multiply-adds.
float dot_private_local(const float4* a, __local const float4* b) {
  float4 s = 0.f;
#pragma unroll
  for (int v = 0; v < HEAD_VEC; ++v) s += a[v] * b[v];
  return (s.x + s.y) + (s.z + s.w);
}

float dot_local_local(__local const float4* a, __local const float4* b) {
  float4 s = 0.f;
#pragma unroll
  for (int v = 0; v < HEAD_VEC; ++v) s += a[v] * b[v];
  return (s.x + s.y) + (s.z + s.w);
}

// Slots [first, first + rows) of `order` → padded tile rows: K_j = Q_j·ρ_j and V_j.
void load_key_rows(__local float4* keys, __local float4* values, __global const float* qv,
                   __global const float* rho, Slice z, int first, int rows, int C) {
  for (int idx = get_local_id(0); idx < rows * HEAD_VEC; idx += QUERIES) {
    const int row = idx / HEAD_VEC, j = z.order[first + row];
    __global const float* src = qv + (z.batch_row0 + j) * 2 * C + z.h * HEAD_SIZE;
    keys[idx] = load_head(src, idx % HEAD_VEC) * rho[z.bh_row0 + j];
    values[idx] = load_head(src + C, idx % HEAD_VEC);
  }
}

__kernel void lsh_attend(__global float* out_r, __global float* lse_r, __global const float* qv,
                         __global const float* rho, __global const int* bucket,
                         __global const int* sorted, __global const int* starts, const int B,
                         const int T, const int C, const int H, const int n_rounds,
                         const int n_buckets, const int chunk,
                         __local float4* keys,     // KEYS × HEAD_VEC
                         __local float4* values) { // KEYS × HEAD_VEC
  const Slice z = slice_of(bucket, sorted, starts, T, H, n_rounds, n_buckets);
  const int s0 = get_group_id(0) * QUERIES, s = s0 + get_local_id(0), window = 2 * chunk;
  const bool active = s < T;
  const int i = active ? z.order[s] : 0, lo = active ? first_key_slot(z, s, window) : T;
  const float scale = 1.f / sqrt((float)HEAD_SIZE);

  float4 q[HEAD_VEC], acc[HEAD_VEC];
  __global const float* qi = qv + (z.batch_row0 + i) * 2 * C + z.h * HEAD_SIZE;
#pragma unroll
  for (int v = 0; v < HEAD_VEC; ++v) q[v] = load_head(qi, v) * scale, acc[v] = 0.f;
  float running_max = -INFINITY, sum = 0.f;  // online softmax

  const int first = first_key_slot(z, s0, window), last = min(T, s0 + QUERIES);
  for (int k0 = first; k0 < last; k0 += KEYS) {
    const int rows = min(KEYS, last - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    load_key_rows(keys, values, qv, rho, z, k0, rows, C);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int kk = 0; kk < rows; ++kk) {
      const int ks = k0 + kk;
      if (ks < lo || ks > s) continue;
      const float score = ks == s ? SELF_SCORE : dot_private_local(q, keys + kk * HEAD_VEC);
      if (score > running_max) {  // rescale only on a new maximum, not at every key
        const float rescale = exp(running_max - score);
        sum *= rescale;
#pragma unroll
        for (int v = 0; v < HEAD_VEC; ++v) acc[v] *= rescale;
        running_max = score;
      }
      const float p = exp(score - running_max);
      sum += p;
#pragma unroll
      for (int v = 0; v < HEAD_VEC; ++v) acc[v] += p * values[kk * HEAD_VEC + v];
    }
  }
  if (!active) return;
  __global float* o = out_r + (((size_t)z.r * B + z.b) * T + i) * C + z.h * HEAD_SIZE;
  const float inv_sum = 1.f / sum;  // one division, not HEAD_SIZE
#pragma unroll
  for (int v = 0; v < HEAD_VEC; ++v) store_head(o, v, acc[v] * inv_sum);
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

// dq_r (n_r,B,T,C): Σ over the query's allowed keys of round r of dS K_j/√d (the self pair,
// of constant score, passes none). The work-item's dO_i is in local memory (own_douts,
// QUERIES rows of OWN_PITCH float4s), Q_i and dQ_i private: three private rows spill.
// Per tile, one loop puts each allowed key's dS in own_ds and a second adds dS K_j: in one
// loop the compiler keeps each key row in registers from the dot to the update, and spills.
__kernel void lsh_attend_dq(__global float* dq_r, __global const float* qv,
                            __global const float* rho, __global const int* bucket,
                            __global const int* sorted, __global const int* starts,
                            __global const float* datt, __global const float* lse,
                            __global const float* delta, const int B, const int T, const int C,
                            const int H, const int n_rounds, const int n_buckets, const int chunk,
                            __local float4* own_douts,  // QUERIES × OWN_PITCH
                            __local float4* keys,       // KEYS × HEAD_VEC
                            __local float4* values,     // KEYS × HEAD_VEC
                            __local float* own_ds) {    // KEYS × QUERIES
  const Slice z = slice_of(bucket, sorted, starts, T, H, n_rounds, n_buckets);
  const int lid = get_local_id(0), s0 = get_group_id(0) * QUERIES, s = s0 + lid;
  const int window = 2 * chunk;
  const bool active = s < T;
  const int i = active ? z.order[s] : 0, lo = active ? first_key_slot(z, s, window) : T;
  const size_t at = z.bh_row0 + i;
  const float scale = 1.f / sqrt((float)HEAD_SIZE), delta_i = delta[at];
  const float lse_max = lse[2 * at], lse_log_sum = lse[2 * at + 1];

  float4 q[HEAD_VEC], dq[HEAD_VEC];
  __global const float* qi = qv + (z.batch_row0 + i) * 2 * C + z.h * HEAD_SIZE;
  __global const float* doi = datt + (z.batch_row0 + i) * C + z.h * HEAD_SIZE;
  __local float4* dout = own_douts + lid * OWN_PITCH;
#pragma unroll
  for (int v = 0; v < HEAD_VEC; ++v)
    q[v] = load_head(qi, v) * scale, dout[v] = load_head(doi, v), dq[v] = 0.f;

  const int first = first_key_slot(z, s0, window), last = min(T, s0 + QUERIES);
  for (int k0 = first; k0 < last; k0 += KEYS) {
    const int rows = min(KEYS, last - k0);
    barrier(CLK_LOCAL_MEM_FENCE);
    load_key_rows(keys, values, qv, rho, z, k0, rows, C);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int kk = 0; kk < rows; ++kk) {
      const int ks = k0 + kk;
      if (ks < lo || ks >= s) continue;
      const float p = exp((dot_private_local(q, keys + kk * HEAD_VEC) - lse_max) - lse_log_sum);
      own_ds[kk * QUERIES + lid] = p * (dot_local_local(dout, values + kk * HEAD_VEC) - delta_i);
    }
    for (int kk = 0; kk < rows; ++kk) {
      const int ks = k0 + kk;
      if (ks < lo || ks >= s) continue;
      const float ds = own_ds[kk * QUERIES + lid];
#pragma unroll
      for (int v = 0; v < HEAD_VEC; ++v) dq[v] += ds * keys[kk * HEAD_VEC + v];
    }
  }
  if (!active) return;
  __global float* o = dq_r + (((size_t)z.r * B + z.b) * T + i) * C + z.h * HEAD_SIZE;
#pragma unroll
  for (int v = 0; v < HEAD_VEC; ++v) store_head(o, v, dq[v] * scale);
}

// Slots [first, first + rows) of `order` → padded tile rows Q_i/√d and dO_i, and each row's
// LSE (M, log Σ) and D.
void load_query_rows(__local float4* queries, __local float4* douts, __local float* query_max,
                     __local float* query_log_sum, __local float* query_delta,
                     __global const float* qv, __global const float* datt,
                     __global const float* lse, __global const float* delta, Slice z, int first,
                     int rows, int C) {
  const float scale = 1.f / sqrt((float)HEAD_SIZE);
  const int lid = get_local_id(0);
  for (int idx = lid; idx < rows * HEAD_VEC; idx += QUERIES) {
    const size_t i = z.batch_row0 + z.order[first + idx / HEAD_VEC];
    queries[idx] = load_head(qv + i * 2 * C + z.h * HEAD_SIZE, idx % HEAD_VEC) * scale;
    douts[idx] = load_head(datt + i * C + z.h * HEAD_SIZE, idx % HEAD_VEC);
  }
  for (int row = lid; row < rows; row += QUERIES) {
    const size_t at = z.bh_row0 + z.order[first + row];
    query_max[row] = lse[2 * at];
    query_log_sum[row] = lse[2 * at + 1];
    query_delta[row] = delta[at];
  }
}

// dk_r, dv_r (n_r,B,T,C): Σ over the queries of round r that see the key of dS Q_i/√d and
// of P dO_i. The work-item's own K_j and V_j are in local memory (own_keys, own_values:
// QUERIES rows of OWN_PITCH float4s each), dK_j and dV_j private: more private rows spill.
// Per tile, one loop puts each pair's (P, dS) in own_weights and a second accumulates (see
// lsh_attend_dq). Local arguments come widest element first (as in lsh_attend_dq), so each
// is aligned for its type even where a runtime packs them back to back.
__kernel void lsh_attend_dkv(__global float* dk_r, __global float* dv_r,
                             __global const float* qv, __global const float* rho,
                             __global const int* bucket, __global const int* sorted,
                             __global const int* starts, __global const float* datt,
                             __global const float* lse, __global const float* delta,
                             const int B, const int T, const int C, const int H,
                             const int n_rounds, const int n_buckets, const int chunk,
                             __local float4* own_keys,      // QUERIES × OWN_PITCH
                             __local float4* own_values,    // QUERIES × OWN_PITCH
                             __local float4* queries,       // KEYS × HEAD_VEC: Q_i/√d
                             __local float4* douts,         // KEYS × HEAD_VEC: dO_i
                             __local float2* own_weights,   // KEYS × QUERIES: (P, dS)
                             __local float* query_max,      // KEYS: M of LSE
                             __local float* query_log_sum,  // KEYS: log Σ of LSE
                             __local float* query_delta) {  // KEYS
  const Slice z = slice_of(bucket, sorted, starts, T, H, n_rounds, n_buckets);
  const int lid = get_local_id(0), s0 = get_group_id(0) * QUERIES, s = s0 + lid;
  const int window = 2 * chunk;
  const bool active = s < T;
  const int j = active ? z.order[s] : 0, hi = active ? last_query_slot(z, s, window) : -1;
  const float rho_j = rho[z.bh_row0 + j];

  float4 dk[HEAD_VEC], dv[HEAD_VEC];
  __global const float* qj = qv + (z.batch_row0 + j) * 2 * C + z.h * HEAD_SIZE;
  __local float4* kj = own_keys + lid * OWN_PITCH;
  __local float4* vj = own_values + lid * OWN_PITCH;
#pragma unroll
  for (int u = 0; u < HEAD_VEC; ++u)
    kj[u] = load_head(qj, u) * rho_j, vj[u] = load_head(qj + C, u), dk[u] = dv[u] = 0.f;

  const int first = s0, last = last_query_slot(z, min(T, s0 + QUERIES) - 1, window) + 1;
  for (int t0 = first; t0 < last; t0 += KEYS) {
    const int rows = min(KEYS, last - t0);
    barrier(CLK_LOCAL_MEM_FENCE);
    load_query_rows(queries, douts, query_max, query_log_sum, query_delta, qv, datt, lse, delta,
                    z, t0, rows, C);
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int qq = 0; qq < rows; ++qq) {
      const int qs = t0 + qq;
      if (qs < s || qs > hi) continue;
      // the self pair: a value, no score gradient
      const bool self = qs == s;
      const float score = self ? SELF_SCORE : dot_local_local(queries + qq * HEAD_VEC, kj);
      const float p = exp((score - query_max[qq]) - query_log_sum[qq]);
      const float dp = self ? 0.f : dot_local_local(vj, douts + qq * HEAD_VEC);
      own_weights[qq * QUERIES + lid] = (float2)(p, self ? 0.f : p * (dp - query_delta[qq]));
    }
    for (int qq = 0; qq < rows; ++qq) {
      const int qs = t0 + qq;
      if (qs < s || qs > hi) continue;
      const float2 w = own_weights[qq * QUERIES + lid];
      if (qs != s) {
#pragma unroll
        for (int u = 0; u < HEAD_VEC; ++u) dk[u] += w.y * queries[qq * HEAD_VEC + u];
      }
#pragma unroll
      for (int u = 0; u < HEAD_VEC; ++u) dv[u] += w.x * douts[qq * HEAD_VEC + u];
    }
  }
  if (!active) return;
  const size_t dst = (((size_t)z.r * B + z.b) * T + j) * C + z.h * HEAD_SIZE;
#pragma unroll
  for (int u = 0; u < HEAD_VEC; ++u)
    store_head(dk_r + dst, u, dk[u]), store_head(dv_r + dst, u, dv[u]);
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
