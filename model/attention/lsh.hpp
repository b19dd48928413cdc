// lsh: Reformer LSH attention (Kitaev et al. 2020) made strictly causal, VARIANTS.md §lsh;
// cl_kernels/attention/lsh.cl states the algorithm and its backward. Declared here so the
// tests can reach the hashing, the sort, the CPU reference and what a layer keeps.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model/attention/common_reference.hpp"
#include "model/attention_variant.hpp"

namespace attnscope {

// The resolved shape of one LSH attention: n_r = rounds, n_b = buckets, c = chunk.
struct LshShape {
  int B = 1, T = 1, H = 1, head_size = 1;
  int rounds = 2, buckets = 2, chunk = 64;
};

// What one layer keeps from forward for backward. The hashes and the sort are constants
// of the step, so backward reads them from here and never rehashes.
struct LshActivations : AttentionActivations {
  DeviceBuffer qv;      // (B, T, 2C): Q | V — scores, values, the normalisation's backward
  DeviceBuffer att;     // (B, T, C): O, heads merged — output projection input, D = dO·O
  DeviceBuffer lse;     // (B, H, T, 2): log-sum-exp over all rounds' pairs as (M, log Σ)
  DeviceBuffer rho;     // (B, H, T): 1/‖Q‖, so K = Q·ρ
  DeviceBuffer bucket;  // (B, H, n_r, T) int: bucket id of each position
  DeviceBuffer sorted;  // (B, H, n_r, T) int: position at each sorted slot
  DeviceBuffer starts;  // (B, H, n_r, n_b + 1) int: first sorted slot of each bucket, then T
};

// lsh.cl's tunables for one device and head size (see the kernel file).
struct LshTiles {
  int queries = 32;                                   // QUERIES
  int keys = 16;                                      // KEYS
  int sort_wg = 256;                                  // SORT_WG
  size_t tile_bytes(int head_size) const;  // KEYS padded rows (HEAD_VEC float4s) streamed
  size_t own_bytes(int head_size) const;   // QUERIES rows of OWN_PITCH float4s, one per item
  size_t attention_local_bytes(int head_size) const;  // the largest of the three kernels
  std::string build_options(int head_size) const;
};

// The attention tiles lsh.cl is built with on `device` for this head size (before the
// compiled kernels' own work-group limits): the largest that fit, or ATTNSCOPE_LSH_TILES.
LshTiles choose_lsh_tiles(const DeviceInfo& device, int head_size);
// ATTNSCOPE_LSH_TILES="QUERIES,KEYS" makes lsh.cl use those attention tiles (the tests run
// the H200's on PoCL with it); UsageError when malformed or beyond the device's limits.
LshTiles parse_lsh_tiles(const std::string& spec, const DeviceInfo& device, int head_size);

class LshAttention : public AttentionVariant {
 public:
  using AttentionVariant::AttentionVariant;

  VariantInfo info() const override;
  void resolve(const AttentionDims& dims) override;
  std::vector<TensorSpec> parameters(const AttentionDims& dims) const override;
  AttentionCost cost(const AttentionDims& dims) const override;

  std::vector<DeviceBufferSpec> device_buffers(const AttentionDims& dims) const override;
  std::unique_ptr<AttentionActivations> allocate(Ops& ops, const AttentionDims& dims) override;
  void forward(const DeviceArgs& args, const cl::Buffer& out) override;
  void backward(const DeviceArgs& args, const DeviceGrads& gradients) override;

  void reference_forward(const ReferenceArgs& args, float* out) const override;
  void reference_backward(const ReferenceArgs& args,
                          const ReferenceGrads& gradients) const override;

  // The rotations of this step, and the bucket ids the reference last hashed for these
  // dims and step (the inputs of the dump's reference outputs), as (B, H, n_r, T).
  std::vector<NamedTensor> debug_tensors(const AttentionDims& dims,
                                         const StepContext& step) const override;

  LshShape shape(const AttentionDims& dims) const;

 private:
  void build_kernels(Runtime& rt, const AttentionDims& dims);
  void grow_scratch(Runtime& rt, const AttentionDims& dims);
  void upload_rotations(Runtime& rt, const LshShape& s, const StepContext& step);
  void hash_and_sort(Runtime& rt, const LshShape& s, LshActivations& acts);
  void attend(Runtime& rt, const LshShape& s, const AttentionDims& dims, LshActivations& acts);
  void attend_backward(Runtime& rt, const LshShape& s, const AttentionDims& dims,
                       LshActivations& acts);
  void dump_buckets(Runtime& rt, const LshShape& s, const StepContext& step,
                    const LshActivations& acts);
  size_t attention_groups(const LshShape& s) const;
  // Bucket ids (B, H, n_r, T) of the reference's own qv for this step.
  std::vector<int> reference_buckets(const ReferenceArgs& args) const;

  LshTiles tiles_;
  std::string built_options_;
  std::string bucket_dump_dir_;  // ATTNSCOPE_LSH_BUCKETS; empty: no dump (the default)
  // allocate() ran under --precision tf32, where the device projects qv on tensor cores:
  // the reference then hashes a qv made from TF32-rounded operands too (reference_qv).
  bool tf32_projection_ = false;
  int64_t forward_passes_ = 0;   // passes dumped so far; a pass begins at layer 0
  cl::Kernel hash_, sort_, attend_, combine_, delta_, attend_dq_, attend_dkv_, input_grad_;

  DeviceBuffer rotations_;               // (n_r, d, n_b/2) of the step below
  std::vector<uint64_t> rotations_key_;  // seed, step, n_r, d, n_b of rotations_

  // Transient buffers shared by all layers, sized for the largest dims allocate() has seen.
  DeviceBuffer out_r_;        // (n_r, B, T, C): per-round O_r; backward dq_r
  DeviceBuffer lse_r_;        // (n_r, B, H, T): per-round L_r
  DeviceBuffer dk_r_, dv_r_;  // (n_r, B, T, C)
  DeviceBuffer datt_;         // (B, T, C)
  DeviceBuffer delta_buf_;    // (B, H, T): D = dO·O
  DeviceBuffer dqv_;          // (B, T, 2C)

  // What the reference hashed last, for debug_tensors (the reference is const).
  mutable std::mutex reference_hash_mutex_;
  mutable std::vector<int> reference_buckets_;
  mutable std::vector<int64_t> reference_hash_key_;  // B, T, C, H, step
};

namespace lsh {

// qv (N, 2C) = x·W_qvᵀ + b, as the reference hashes it: summed in double and rounded to
// float, with x and W_qv rounded to TF32 first when tf32 (the device's projection under
// --precision tf32). Hashing the device's own arithmetic keeps the bucket argmax from
// flipping on every near-tie that TF32's 2^-11 rounding would move: what is left are the
// ties within float rounding, as in fp32.
std::vector<float> reference_qv(const float* x, const float* w_qv, const float* b_qv, int N, int C,
                                bool tf32);

// n_r rotations of d × (n_b/2), N(0,1), from (seed, step): splitmix64 and Box-Muller, so
// the values are the same on every platform (std::normal_distribution's are not).
std::vector<float> rotations(uint64_t seed, int64_t step, int rounds, int head_size, int buckets);
// Bucket of q (head_size floats) under one rotation (head_size × buckets/2), computed in
// float exactly as lsh.cl's lsh_hash does, so equal inputs give equal buckets.
int bucket_of(const float* q, const float* rotation, int head_size, int buckets);
// Bucket ids (B, H, n_r, T) of every position of qv (B, T, 2C).
std::vector<int> hash_positions(const float* qv, const LshShape& s,
                                const std::vector<float>& rotations);
// The keys position i attends to in one round (bucket_row: that round's T bucket ids),
// by brute force over positions: i itself and the up to 2c latest earlier positions of its
// bucket, ascending.
std::vector<int> allowed_keys(const int* bucket_row, int i, int chunk);
// The default --buckets for T: max(2, T/64) rounded up to even.
int default_buckets(int T);

// ATTNSCOPE_LSH_BUCKETS=DIR makes every device forward write the bucket ids it used, one
// int32 .npy (B, H, n_r, T) per layer, named by bucket_file_name (VARIANTS.md, "The bucket
// dump"), for tools/torch_twin.py to replay. Returns DIR, created if missing, or "" when
// unset; UsageError when DIR cannot be created or written.
std::string bucket_dump_directory();
// "pass000003_step000002_layer011.npy": pass counts the model's forward passes from 1
// (training and validation alike), step is the StepContext's (0 for validation).
std::string bucket_file_name(int64_t pass, int64_t step, int layer);

}  // namespace lsh

namespace reference {

// The attention core for fixed bucket ids (B, H, n_r, T), VARIANTS.md literally: per round
// softmax over the allowed keys → O_r, L_r, combined by exp(L_r − logsumexp_r L_r). K is
// Q/‖Q‖ (as lsh.cl: Q·(‖Q‖² + 1e-12)^−½); Q and V are views into qv.
void lsh_attention_forward(const Heads& out, const ConstHeads& q, const ConstHeads& v,
                           const std::vector<int>& buckets, const LshShape& s);
// Its gradient through scores, values, the round weights and K's normalisation, the buckets
// held constant; dq and dv ACCUMULATE (+=).
void lsh_attention_backward(const Heads& dq, const Heads& dv, const ConstHeads& dout,
                            const ConstHeads& q, const ConstHeads& v,
                            const std::vector<int>& buckets, const LshShape& s);
// The whole block for fixed buckets: qv = x·W_qvᵀ + b, core, out = O·W_oᵀ + b_o. params as
// LshAttention::parameters(). Backward: dx overwritten, dparams accumulated.
void lsh_block_forward(const LshShape& s, const std::vector<int>& buckets,
                       const std::vector<const float*>& params, const float* x, float* out);
void lsh_block_backward(const LshShape& s, const std::vector<int>& buckets,
                        const std::vector<const float*>& params, const float* x, const float* dout,
                        float* dx, const std::vector<float*>& dparams);

}  // namespace reference

}  // namespace attnscope
