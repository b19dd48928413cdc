#include "model/attention/lsh.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "host/runtime/error.hpp"
#include "host/runtime/output_file.hpp"
#include "model/npy.hpp"
#include "model/reference/layers.hpp"
#include "model/tf32.hpp"

namespace attnscope {

namespace {

constexpr const char* kKernelFile = "attention/lsh.cl";
constexpr size_t kElementWiseGroup = 64;

size_t activation_floats(const AttentionDims& d) { return size_t(d.B) * d.T * d.C; }
size_t head_rows(const LshShape& s) { return size_t(s.B) * s.H * s.T; }
size_t round_rows(const LshShape& s) { return head_rows(s) * s.rounds; }
size_t bucket_starts(const LshShape& s) {
  return size_t(s.B) * s.H * s.rounds * (s.buckets + 1);
}

// Σ over sorted slots s of the keys in its window, min(s, 2c) + 1: the allowed pairs of one
// (b, h, round) when every bucket is long enough — the bound VARIANTS.md counts.
double window_pairs(int T, int chunk) {
  const double m = std::min(T, 2 * chunk);
  return m * (m + 1) / 2 + (T - m) * (2.0 * chunk + 1);
}

size_t local_mem_budget(const DeviceInfo& dev) {
  return dev.local_mem_bytes - dev.local_mem_bytes / 8;
}

size_t head_vec(int head_size) { return (size_t(head_size) + 3) / 4; }  // HEAD_VEC
constexpr size_t kFloat4Bytes = 4 * sizeof(float);

}  // namespace

size_t LshTiles::tile_bytes(int d) const { return size_t(keys) * head_vec(d) * kFloat4Bytes; }

size_t LshTiles::own_bytes(int d) const {
  return size_t(queries) * (head_vec(d) | 1) * kFloat4Bytes;  // OWN_PITCH = HEAD_VEC | 1
}

// lsh_attend: keys, values; lsh_attend_dq: those, own dO rows and a dS per (key, query);
// lsh_attend_dkv: own K and V rows, Q and dO tiles, 3 floats per row and (P, dS) per pair.
size_t LshTiles::attention_local_bytes(int d) const {
  const size_t pairs = size_t(keys) * queries;
  const size_t forward = 2 * tile_bytes(d);
  const size_t dq = own_bytes(d) + 2 * tile_bytes(d) + pairs * sizeof(float);
  const size_t dkv = 2 * own_bytes(d) + 2 * tile_bytes(d) + 3 * size_t(keys) * sizeof(float) +
                     pairs * 2 * sizeof(float);
  return std::max({forward, dq, dkv});
}

namespace {

// Whether the attention kernels' local memory and work-groups fit the device.
bool lsh_tiles_fit(const LshTiles& t, const DeviceInfo& dev, int head_size) {
  return t.attention_local_bytes(head_size) <= local_mem_budget(dev) &&
         size_t(t.queries) <= dev.max_work_group_size;
}

}  // namespace

// The largest tiles (from 32 queries per group and 16-row stream tiles) whose local memory
// fits the device for this head size and whose work-groups the device allows. 32 queries,
// not 64: a block's key range reaches back to its first query's band start, and the
// narrower the block, the fewer rows each work-item walks past outside its own band. 16
// rows, not 32: a one-warp work-group of lsh_attend_dkv then holds 30 KiB of local memory
// instead of 42 at head size 64, so more of them share a compute unit (on the H200, 2026-12-02,
// gpt2 B=16 T=512 tf32: that kernel 11.4 ms a step against 12.2, the others unchanged).
LshTiles choose_lsh_tiles(const DeviceInfo& dev, int head_size) {
  LshTiles t;
  if (const char* spec = std::getenv("ATTNSCOPE_LSH_TILES"); spec && *spec)
    t = parse_lsh_tiles(spec, dev, head_size);
  while (!lsh_tiles_fit(t, dev, head_size)) {
    if (t.keys > 8)
      t.keys /= 2;
    else if (t.queries > 1)
      t.queries /= 2;
    else if (t.keys > 1)
      t.keys /= 2;
    else
      throw Error("lsh attention with head size " + std::to_string(head_size) +
                  " needs more local memory than " + dev.short_label() + " has");
  }
  t.sort_wg = int(std::min<size_t>(t.sort_wg, dev.max_work_group_size));
  if (size_t(head_size) > dev.max_work_group_size)
    throw Error("lsh attention needs work-groups of the head size (" + std::to_string(head_size) +
                ") on " + dev.short_label());
  return t;
}

LshTiles parse_lsh_tiles(const std::string& spec, const DeviceInfo& device, int head_size) {
  LshTiles t;
  char tail = 0;
  if (std::sscanf(spec.c_str(), "%d,%d%c", &t.queries, &t.keys, &tail) != 2 || t.queries < 1 ||
      t.keys < 1)
    throw UsageError("ATTNSCOPE_LSH_TILES: '" + spec + "' is not QUERIES,KEYS (both positive)");
  if (!lsh_tiles_fit(t, device, head_size))
    throw UsageError("ATTNSCOPE_LSH_TILES: " + spec + " needs " +
                     std::to_string(t.attention_local_bytes(head_size)) +
                     " bytes of local memory and " + std::to_string(t.queries) +
                     " work-items; " + device.short_label() + " allows " +
                     std::to_string(local_mem_budget(device)) + " and " +
                     std::to_string(device.max_work_group_size));
  return t;
}

std::string LshTiles::build_options(int head_size) const {
  return "-DHEAD_SIZE=" + std::to_string(head_size) + " -DQUERIES=" + std::to_string(queries) +
         " -DKEYS=" + std::to_string(keys) + " -DSORT_WG=" + std::to_string(sort_wg);
}

VariantInfo LshAttention::info() const {
  return {"lsh",
          "Reformer LSH attention, strictly causal: shared-QK (K = Q/|Q|), random-rotation "
          "hashing, sort by (bucket, position), each query attends to itself (score -1e5) and "
          "its bucket's 2c latest earlier keys; rounds combined by log-sum-exp; pairs met in "
          "several rounds are not de-duplicated",
          "O(T·n_r·c·d) time, O(T·d) memory",
          "Kitaev et al. 2020, Reformer: The Efficient Transformer (arXiv:2001.04451)",
          {{"hashes", 2, "hash rounds"},
           {"buckets", 0, "buckets, even", "max(2, T/64)"},
           {"chunk", 64, "keys per chunk c"}}};
}

namespace lsh {

std::string bucket_dump_directory() {
  const char* dir = std::getenv("ATTNSCOPE_LSH_BUCKETS");
  if (!dir || !*dir) return "";
  prepare_output_directory(std::string("ATTNSCOPE_LSH_BUCKETS=") + dir, dir);
  return dir;
}

std::string bucket_file_name(int64_t pass, int64_t step, int layer) {
  char name[96];
  std::snprintf(name, sizeof name, "pass%06lld_step%06lld_layer%03d.npy", (long long)pass,
                (long long)step, layer);
  return name;
}

std::vector<float> reference_qv(const float* x, const float* w_qv, const float* b_qv, int N, int C,
                                bool tf32) {
  std::vector<float> qv(size_t(N) * 2 * C);
  if (tf32)
    reference_tf32_gemm(qv.data(), x, w_qv, b_qv, N, 2 * C, C, /*trans_a=*/false,
                        /*trans_b=*/true, 1.f, 0.f);
  else
    reference::matmul_forward(qv.data(), x, w_qv, b_qv, N, C, 2 * C);
  return qv;
}

}  // namespace lsh

void LshAttention::resolve(const AttentionDims& dims) {
  if (option("chunk") < 1)
    throw UsageError("--chunk must be at least 1, got " + std::to_string(option("chunk")));
  if (option("hashes") < 1)
    throw UsageError("--hashes must be at least 1, got " + std::to_string(option("hashes")));
  const int buckets = option("buckets");
  if (buckets != 0 && (buckets < 2 || buckets % 2 != 0))
    throw UsageError("--buckets must be even and at least 2, got " + std::to_string(buckets));
  set_derived("buckets", lsh::default_buckets(dims.T));
  bucket_dump_dir_ = lsh::bucket_dump_directory();  // checked here, before any work
}

LshShape LshAttention::shape(const AttentionDims& dims) const {
  const int buckets = option("buckets") > 0 ? option("buckets") : lsh::default_buckets(dims.T);
  return {dims.B, dims.T, dims.H, dims.head_size(), option("hashes"), buckets, option("chunk")};
}

std::vector<TensorSpec> LshAttention::parameters(const AttentionDims& dims) const {
  const size_t C = dims.C;
  return {{"qvw", {2 * C, C}, Init::kNormal, true},
          {"qvb", {2 * C}, Init::kZero, false},
          {"attprojw", {C, C}, Init::kResidualProjection, true},
          {"attprojb", {C}, Init::kZero, false}};
}

AttentionCost LshAttention::cost(const AttentionDims& dims) const {
  const LshShape s = shape(dims);
  const double B = dims.B, T = dims.T, C = dims.C, d = s.head_size, G = B * dims.H;
  const double projections = 2 * B * T * C * (2 * C) + 2 * B * T * C * C;
  const double hashing = 2 * G * s.rounds * T * d * (s.buckets / 2);
  // Allowed pairs, at most 2c + 1 per query and round: QKᵀ and PV forward. Backward
  // recomputes scores twice: lsh_attend_dq (score, dO·V, dQ) and lsh_attend_dkv (score,
  // dO·V, dK, dV), 7 multiply-adds per pair and channel against the definition's 4.
  const double pairs = G * s.rounds * window_pairs(dims.T, s.chunk);
  AttentionCost c;
  c.model_flops_forward = projections + hashing + 2 * 2 * d * pairs;
  c.executed_flops_forward = c.model_flops_forward;
  c.model_flops_backward = 2 * projections + 2 * 4 * d * pairs;
  c.executed_flops_backward = 2 * projections + 2 * 7 * d * pairs;
  c.saved_bytes = sizeof(float) * (3 * B * T * C + 3 * G * T) +
                  sizeof(int) * G * s.rounds * (2 * T + s.buckets + 1);
  return c;
}

void LshAttention::build_kernels(Runtime& rt, const AttentionDims& dims) {
  const DeviceInfo& dev = rt.device();
  const int d = dims.head_size();
  LshTiles t = choose_lsh_tiles(dev, d);
  for (;;) {  // a compiled kernel may allow fewer work-items than the device
    const std::string options = t.build_options(d);
    if (options == built_options_) return;
    cl::Kernel attend = rt.kernel(kKernelFile, "lsh_attend", options);
    cl::Kernel dq = rt.kernel(kKernelFile, "lsh_attend_dq", options);
    cl::Kernel dkv = rt.kernel(kKernelFile, "lsh_attend_dkv", options);
    cl::Kernel sort = rt.kernel(kKernelFile, "lsh_sort", options);
    auto allows = [&](const cl::Kernel& k, int n) {
      return k.getWorkGroupInfo<CL_KERNEL_WORK_GROUP_SIZE>(dev.device) >= size_t(n);
    };
    if (!allows(sort, t.sort_wg)) {
      t.sort_wg /= 2;
    } else if (!allows(attend, t.queries) || !allows(dq, t.queries) || !allows(dkv, t.queries)) {
      t.queries /= 2;
    } else {
      attend_ = attend, attend_dq_ = dq, attend_dkv_ = dkv, sort_ = sort;
      break;
    }
    if (t.sort_wg == 0 || t.queries == 0)
      throw Error("lsh kernels cannot run on " + dev.short_label());
  }
  tiles_ = t;
  built_options_ = t.build_options(d);
  hash_ = rt.kernel(kKernelFile, "lsh_hash", built_options_);
  combine_ = rt.kernel(kKernelFile, "lsh_combine", built_options_);
  delta_ = rt.kernel(kKernelFile, "lsh_delta", built_options_);
  input_grad_ = rt.kernel(kKernelFile, "lsh_input_grad", built_options_);
}

void LshAttention::grow_scratch(Runtime& rt, const AttentionDims& dims) {
  const LshShape s = shape(dims);
  const size_t per_round = s.rounds * activation_floats(dims);
  ensure_floats(rt, out_r_, per_round, "lsh per-round O / dQ scratch");
  ensure_floats(rt, lse_r_, round_rows(s), "lsh per-round LSE scratch");
  ensure_floats(rt, dk_r_, per_round, "lsh per-round dK scratch");
  ensure_floats(rt, dv_r_, per_round, "lsh per-round dV scratch");
  ensure_floats(rt, datt_, activation_floats(dims), "lsh datt scratch");
  ensure_floats(rt, delta_buf_, head_rows(s), "lsh D scratch");
  ensure_floats(rt, dqv_, 2 * activation_floats(dims), "lsh dqv scratch");
  // Sized here, not at the first upload, so that nothing is allocated inside a step.
  ensure_floats(rt, rotations_, size_t(s.rounds) * s.head_size * (s.buckets / 2), "lsh rotations");
}

std::vector<DeviceBufferSpec> LshAttention::device_buffers(const AttentionDims& dims) const {
  const LshShape s = shape(dims);
  const size_t btc = activation_floats(dims), per_round = s.rounds * btc;
  const size_t ids = round_rows(s) * sizeof(int);
  return {layer_floats("lsh qv", 2 * btc),
          layer_floats("lsh att", btc),
          layer_floats("lsh lse (max, log-sum)", 2 * head_rows(s)),
          layer_floats("lsh rho", head_rows(s)),
          {"lsh bucket ids", ids, true},
          {"lsh sorted order", ids, true},
          {"lsh bucket starts", bucket_starts(s) * sizeof(int), true},
          shared_floats("lsh per-round O / dQ scratch", per_round),
          shared_floats("lsh per-round LSE scratch", round_rows(s)),
          shared_floats("lsh per-round dK scratch", per_round),
          shared_floats("lsh per-round dV scratch", per_round),
          shared_floats("lsh datt scratch", btc),
          shared_floats("lsh D scratch", head_rows(s)),
          shared_floats("lsh dqv scratch", 2 * btc),
          shared_floats("lsh rotations", size_t(s.rounds) * s.head_size * (s.buckets / 2))};
}

std::unique_ptr<AttentionActivations> LshAttention::allocate(Ops& ops, const AttentionDims& dims) {
  Runtime& rt = ops.runtime();
  const LshShape s = shape(dims);
  tf32_projection_ = ops.precision() == Precision::tf32;
  build_kernels(rt, dims);
  const size_t sort_bytes = (size_t(s.buckets) + tiles_.sort_wg) * sizeof(int);
  if (sort_bytes > local_mem_budget(rt.device()))
    throw UsageError("--buckets " + std::to_string(s.buckets) + " is too many for the sort's " +
                     "local memory on " + rt.device().short_label());
  grow_scratch(rt, dims);
  auto acts = std::make_unique<LshActivations>();
  acts->qv = rt.alloc_floats(2 * activation_floats(dims), "lsh qv");
  acts->att = rt.alloc_floats(activation_floats(dims), "lsh att");
  acts->lse = rt.alloc_floats(2 * head_rows(s), "lsh lse (max, log-sum)");
  acts->rho = rt.alloc_floats(head_rows(s), "lsh rho");
  acts->bucket = rt.alloc(round_rows(s) * sizeof(int), "lsh bucket ids");
  acts->sorted = rt.alloc(round_rows(s) * sizeof(int), "lsh sorted order");
  acts->starts = rt.alloc(bucket_starts(s) * sizeof(int), "lsh bucket starts");
  return acts;
}

void LshAttention::upload_rotations(Runtime& rt, const LshShape& s, const StepContext& step) {
  const std::vector<uint64_t> key = {options().seed, uint64_t(step.step), uint64_t(s.rounds),
                                     uint64_t(s.head_size), uint64_t(s.buckets)};
  if (key == rotations_key_) return;  // layers of one step share the rotations
  const std::vector<float> values =
      lsh::rotations(options().seed, step.step, s.rounds, s.head_size, s.buckets);
  ensure_floats(rt, rotations_, values.size(), "lsh rotations");
  rt.upload(rotations_, values.data(), values.size() * sizeof(float));
  rotations_key_ = key;
}

// Blocks on the download: the dump is a debugging aid, off unless ATTNSCOPE_LSH_BUCKETS is set.
void LshAttention::dump_buckets(Runtime& rt, const LshShape& s, const StepContext& step,
                                const LshActivations& acts) {
  if (step.layer == 0) ++forward_passes_;
  const std::vector<int32_t> ids = rt.download_vector<int32_t>(acts.bucket, round_rows(s));
  write_npy(bucket_dump_dir_ + "/" + lsh::bucket_file_name(forward_passes_, step.step, step.layer),
            {size_t(s.B), size_t(s.H), size_t(s.rounds), size_t(s.T)}, ids);
}

size_t LshAttention::attention_groups(const LshShape& s) const {
  return (size_t(s.T) + tiles_.queries - 1) / tiles_.queries;
}

void LshAttention::hash_and_sort(Runtime& rt, const LshShape& s, LshActivations& acts) {
  const int C = s.H * s.head_size;
  const double rows = round_rows(s);
  set_args(hash_, acts.bucket.buffer(), acts.rho.buffer(), acts.qv.buffer(), rotations_.buffer(),
           s.B, s.T, C, s.H, s.rounds, s.buckets);
  rt.launch(
      hash_, cl::NDRange(s.H, s.T, s.B), cl::NullRange,
      KernelCost{2.0 * rows * s.head_size * (s.buckets / 2),
                 sizeof(float) * (double(s.B) * s.T * C + head_rows(s)) + sizeof(int) * rows});
  const size_t slices = size_t(s.B) * s.H * s.rounds;
  set_args(sort_, acts.sorted.buffer(), acts.starts.buffer(), acts.bucket.buffer(), s.T, s.buckets,
           cl::Local(s.buckets * sizeof(int)), cl::Local(tiles_.sort_wg * sizeof(int)));
  rt.launch(sort_, cl::NDRange(slices * tiles_.sort_wg), cl::NDRange(tiles_.sort_wg),
            KernelCost{0, 3.0 * sizeof(int) * rows});
}

void LshAttention::attend(Runtime& rt, const LshShape& s, const AttentionDims& dims,
                          LshActivations& acts) {
  const int C = dims.C, d = s.head_size;
  const size_t slices = size_t(s.B) * s.H * s.rounds, tile = tiles_.tile_bytes(d);
  const double pairs = slices * window_pairs(s.T, s.chunk), btc = activation_floats(dims);
  set_args(attend_, out_r_.buffer(), lse_r_.buffer(), acts.qv.buffer(), acts.rho.buffer(),
           acts.bucket.buffer(), acts.sorted.buffer(), acts.starts.buffer(), s.B, s.T, C, s.H,
           s.rounds, s.buckets, s.chunk, cl::Local(tile), cl::Local(tile));
  rt.launch(attend_, cl::NDRange(attention_groups(s) * tiles_.queries, slices),
            cl::NDRange(tiles_.queries, 1),
            KernelCost{2 * 2 * d * pairs, sizeof(float) * (s.rounds * 3 * btc)});
  set_args(combine_, acts.att.buffer(), acts.lse.buffer(), out_r_.buffer(), lse_r_.buffer(), s.B,
           s.T, C, s.H, s.rounds);
  const size_t group = std::min(kElementWiseGroup, rt.device().max_work_group_size);
  rt.launch(combine_, cl::NDRange(round_up(C, group), s.T, s.B), cl::NDRange(group, 1, 1),
            KernelCost{0, sizeof(float) * ((s.rounds + 1) * btc + round_rows(s))});
}

void LshAttention::attend_backward(Runtime& rt, const LshShape& s, const AttentionDims& dims,
                                   LshActivations& acts) {
  const int C = dims.C, d = s.head_size;
  const size_t slices = size_t(s.B) * s.H * s.rounds, keys = tiles_.keys;
  const size_t tile = tiles_.tile_bytes(d), own = tiles_.own_bytes(d);
  const size_t pairs_per_tile = keys * tiles_.queries;
  const double pairs = slices * window_pairs(s.T, s.chunk), btc = activation_floats(dims);
  set_args(delta_, delta_buf_.buffer(), datt_.buffer(), acts.att.buffer(), s.T, C, s.H,
           cl::Local(sizeof(float) * d));
  rt.launch(delta_, cl::NDRange(C, s.T, s.B), cl::NDRange(d, 1, 1),
            KernelCost{0, sizeof(float) * (2 * btc + head_rows(s))});

  const cl::NDRange global(attention_groups(s) * tiles_.queries, slices);
  const cl::NDRange local(tiles_.queries, 1);
  set_args(attend_dq_, out_r_.buffer(), acts.qv.buffer(), acts.rho.buffer(), acts.bucket.buffer(),
           acts.sorted.buffer(), acts.starts.buffer(), datt_.buffer(), acts.lse.buffer(),
           delta_buf_.buffer(), s.B, s.T, C, s.H, s.rounds, s.buckets, s.chunk, cl::Local(own),
           cl::Local(tile), cl::Local(tile), cl::Local(pairs_per_tile * sizeof(float)));
  rt.launch(attend_dq_, global, local,
            KernelCost{2 * 3 * d * pairs, sizeof(float) * s.rounds * 5 * btc});
  set_args(attend_dkv_, dk_r_.buffer(), dv_r_.buffer(), acts.qv.buffer(), acts.rho.buffer(),
           acts.bucket.buffer(), acts.sorted.buffer(), acts.starts.buffer(), datt_.buffer(),
           acts.lse.buffer(), delta_buf_.buffer(), s.B, s.T, C, s.H, s.rounds, s.buckets, s.chunk,
           cl::Local(own), cl::Local(own), cl::Local(tile), cl::Local(tile),
           cl::Local(pairs_per_tile * 2 * sizeof(float)), cl::Local(keys * sizeof(float)),
           cl::Local(keys * sizeof(float)), cl::Local(keys * sizeof(float)));
  rt.launch(attend_dkv_, global, local,
            KernelCost{2 * 4 * d * pairs, sizeof(float) * s.rounds * 6 * btc});

  set_args(input_grad_, dqv_.buffer(), out_r_.buffer(), dk_r_.buffer(), dv_r_.buffer(),
           acts.qv.buffer(), acts.rho.buffer(), s.B, s.T, C, s.H, s.rounds,
           cl::Local(sizeof(float) * d));
  rt.launch(input_grad_, cl::NDRange(C, s.T, s.B), cl::NDRange(d, 1, 1),
            KernelCost{0, sizeof(float) * (3 * s.rounds * btc + 4 * btc + head_rows(s))});
}

void LshAttention::forward(const DeviceArgs& args, const cl::Buffer& out) {
  const auto& [ops, dims, step, params, x, activations] = args;
  auto& acts = static_cast<LshActivations&>(activations);
  Runtime& rt = ops.runtime();
  build_kernels(rt, dims);
  const LshShape s = shape(dims);
  const int N = dims.B * dims.T, C = dims.C;
  ops.matmul_forward(acts.qv, x, params[0], &params[1], N, C, 2 * C);
  upload_rotations(rt, s, step);
  hash_and_sort(rt, s, acts);
  if (!bucket_dump_dir_.empty()) dump_buckets(rt, s, step, acts);
  attend(rt, s, dims, acts);
  ops.matmul_forward(out, acts.att, params[2], &params[3], N, C, C);
}

void LshAttention::backward(const DeviceArgs& args, const DeviceGrads& gradients) {
  const auto& [ops, dims, step, params, x, activations] = args;
  const auto& [dout, dx, grads] = gradients;
  auto& acts = static_cast<LshActivations&>(activations);
  Runtime& rt = ops.runtime();
  build_kernels(rt, dims);
  const int N = dims.B * dims.T, C = dims.C;
  ops.matmul_backward(datt_, grads[2], &grads[3], dout, acts.att, params[2], N, C, C);
  attend_backward(rt, shape(dims), dims, acts);
  ops.matmul_backward(dx, grads[0], &grads[1], dqv_, x, params[0], N, C, 2 * C);
}

// The reference hashes in float from its own qv (double-accumulated, rounded to float; from
// TF32-rounded operands under tf32), exactly as the device hashes its qv; the two qv differ
// in the last bits, so a bucket can differ only where two projections tie to within float
// rounding.
std::vector<int> LshAttention::reference_buckets(const ReferenceArgs& args) const {
  const auto& [dims, step, params, x] = args;
  const LshShape s = shape(dims);
  const int N = dims.B * dims.T, C = dims.C;
  const std::vector<float> qv = lsh::reference_qv(x, params[0], params[1], N, C, tf32_projection_);
  return lsh::hash_positions(
      qv.data(), s, lsh::rotations(options().seed, step.step, s.rounds, s.head_size, s.buckets));
}

void LshAttention::reference_forward(const ReferenceArgs& args, float* out) const {
  const auto& [dims, step, params, x] = args;
  const std::vector<int> buckets = reference_buckets(args);
  reference::lsh_block_forward(shape(dims), buckets, params, x, out);
  std::lock_guard<std::mutex> lock(reference_hash_mutex_);
  reference_buckets_ = buckets;
  reference_hash_key_ = {dims.B, dims.T, dims.C, dims.H, step.step};
}

void LshAttention::reference_backward(const ReferenceArgs& args,
                                      const ReferenceGrads& gradients) const {
  const auto& [dims, step, params, x] = args;
  const auto& [dout, dx, dparams] = gradients;
  reference::lsh_block_backward(shape(dims), reference_buckets(args), params, x, dout, dx,
                                dparams);
}

std::vector<NamedTensor> LshAttention::debug_tensors(const AttentionDims& dims,
                                                     const StepContext& step) const {
  const LshShape s = shape(dims);
  std::vector<NamedTensor> tensors;
  tensors.push_back({"rotations",
                     {size_t(s.rounds), size_t(s.head_size), size_t(s.buckets / 2)},
                     lsh::rotations(options().seed, step.step, s.rounds, s.head_size, s.buckets)});
  std::lock_guard<std::mutex> lock(reference_hash_mutex_);
  const std::vector<int64_t> key = {dims.B, dims.T, dims.C, dims.H, step.step};
  if (key == reference_hash_key_)
    tensors.push_back({"bucket_ids",
                       {size_t(s.B), size_t(s.H), size_t(s.rounds), size_t(s.T)},
                       std::vector<float>(reference_buckets_.begin(), reference_buckets_.end())});
  return tensors;
}

std::unique_ptr<AttentionVariant> make_lsh(const AttentionOptions& options) {
  return std::make_unique<LshAttention>(options);
}

}  // namespace attnscope
