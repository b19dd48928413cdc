// lsh attention: rotations (deterministic per seed and step), device bucket ids equal to
// the host's from the same qv, the device's sort order, each query's key set against a
// brute-force enumeration (read off the output with one-hot values), the device against
// the CPU reference, the reference's gradients by finite differences (buckets frozen),
// causality, options, the dump tensors and the bucket dump (ATTNSCOPE_LSH_BUCKETS).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <vector>

#include "host/runtime/error.hpp"
#include "model/attention/lsh.hpp"
#include "model/reference/layers.hpp"
#include "model/tf32.hpp"
#include "model/variant_check.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using namespace testing;


std::unique_ptr<LshAttention> make(const AttentionDims& dims, int hashes, int buckets, int chunk,
                                   uint64_t seed = 1337) {
  AttentionOptions options;
  options.values["hashes"] = hashes;
  options.values["buckets"] = buckets;
  options.values["chunk"] = chunk;
  options.seed = seed;
  auto v = std::make_unique<LshAttention>(options);
  v->resolve(dims);
  return v;
}

uint64_t fresh_seed() { return testing::test_rng()(); }

// One device forward; keeps the activations so the tests can read buckets and the order.
struct DeviceForward {
  std::unique_ptr<AttentionActivations> acts;
  std::vector<float> out;
  const LshActivations& lsh() const { return static_cast<const LshActivations&>(*acts); }
};

DeviceForward forward_on_device(LshAttention& v, const AttentionDims& dims, int64_t step,
                                const VariantInputs& in, int layer = 0) {
  std::vector<DeviceBuffer> buffers;
  std::vector<cl::Buffer> params;
  for (const auto& p : in.params) {
    buffers.push_back(to_device(p));
    params.push_back(buffers.back());
  }
  DeviceBuffer x = to_device(in.x), out = testing::poisoned(in.x.size());
  DeviceForward result;
  result.acts = v.allocate(shared_ops(), dims);
  v.forward({shared_ops(), dims, StepContext{step, layer}, params, x, *result.acts}, out);
  result.out = from_device(out, in.x.size());
  return result;
}

std::vector<int> download_ints(const DeviceBuffer& buffer, size_t count) {
  return shared_runtime().download_vector<int>(buffer, count);
}

std::vector<float> download_qv(const DeviceForward& f, const AttentionDims& dims) {
  return from_device(f.lsh().qv, size_t(2) * dims.B * dims.T * dims.C);
}

TEST(LshHashing, RotationsAreDeterministicPerSeedAndStep) {
  const auto a = lsh::rotations(42, 7, 2, 16, 8), b = lsh::rotations(42, 7, 2, 16, 8);
  ASSERT_EQ(a.size(), 2u * 16 * 4);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, lsh::rotations(42, 8, 2, 16, 8));
  EXPECT_NE(a, lsh::rotations(43, 7, 2, 16, 8));
  // N(0, 1): mean and variance of many draws.
  const auto many = lsh::rotations(1, 0, 4, 128, 128);
  double sum = 0, squares = 0;
  for (float x : many) sum += x, squares += double(x) * x;
  const double mean = sum / many.size(), variance = squares / many.size() - mean * mean;
  EXPECT_LT(std::abs(mean), 0.03);
  EXPECT_NEAR(variance, 1.0, 0.05);
}

TEST(LshHashing, BucketIsArgmaxOfSignedProjections) {
  // d = 2, n_b = 4: R = I, so the buckets are the four half-axes: +x, +y, −x, −y.
  const float rotation[] = {1, 0, 0, 1};
  const float px[] = {3, 1}, py[] = {1, 2}, nx[] = {-3, 1}, ny[] = {1, -2};
  EXPECT_EQ(lsh::bucket_of(px, rotation, 2, 4), 0);
  EXPECT_EQ(lsh::bucket_of(py, rotation, 2, 4), 1);
  EXPECT_EQ(lsh::bucket_of(nx, rotation, 2, 4), 2);
  EXPECT_EQ(lsh::bucket_of(ny, rotation, 2, 4), 3);
}

TEST(LshHashing, AllowedKeysAreTheLatestEarlierOfTheBucket) {
  const int buckets[] = {0, 1, 0, 0, 1, 0, 0, 1};
  EXPECT_EQ(lsh::allowed_keys(buckets, 0, 1), (std::vector<int>{0}));
  EXPECT_EQ(lsh::allowed_keys(buckets, 6, 1), (std::vector<int>{3, 5, 6}));
  EXPECT_EQ(lsh::allowed_keys(buckets, 6, 2), (std::vector<int>{0, 2, 3, 5, 6}));
  EXPECT_EQ(lsh::allowed_keys(buckets, 7, 1), (std::vector<int>{1, 4, 7}));
  EXPECT_EQ(lsh::default_buckets(37), 2);
  EXPECT_EQ(lsh::default_buckets(192), 4);
  EXPECT_EQ(lsh::default_buckets(4096), 64);
}

// T = 300 > SORT_WG: the sort's blocks; several buckets, batches and heads.
TEST(LshDevice, BucketsEqualHostAndOrderIsByBucketThenPosition) {
  const AttentionDims dims{2, 300, 64, 2};
  auto v = make(dims, 3, 8, 4, fresh_seed());
  const VariantInputs in = random_variant_inputs(*v, dims, fresh_seed());
  const int64_t step = 5;
  const DeviceForward f = forward_on_device(*v, dims, step, in);
  const LshShape s = v->shape(dims);
  const size_t n = size_t(s.B) * s.H * s.rounds * s.T;
  const std::vector<int> device_buckets = download_ints(f.lsh().bucket, n);
  const std::vector<int> sorted = download_ints(f.lsh().sorted, n);
  const size_t n_starts = n / s.T * (s.buckets + 1);
  const std::vector<int> starts = download_ints(f.lsh().starts, n_starts);
  const auto rotations = lsh::rotations(v->options().seed, step, s.rounds, s.head_size, s.buckets);
  EXPECT_EQ(device_buckets, lsh::hash_positions(download_qv(f, dims).data(), s, rotations));
  std::set<int> used;
  for (size_t slice = 0; slice < n / s.T; ++slice) {
    const int* order = sorted.data() + slice * s.T;
    const int* ids = device_buckets.data() + slice * s.T;
    std::vector<int> positions(order, order + s.T);
    std::sort(positions.begin(), positions.end());
    for (int t = 0; t < s.T; ++t) ASSERT_EQ(positions[t], t) << "not a permutation";
    for (int slot = 1; slot < s.T; ++slot) {
      const int a = order[slot - 1], b = order[slot];
      ASSERT_TRUE(ids[a] < ids[b] || (ids[a] == ids[b] && a < b)) << "slot " << slot;
    }
    const int* start = starts.data() + slice * (s.buckets + 1);
    for (int m = 0; m <= s.buckets; ++m) {  // the first slot of bucket m: the count below m
      const int below = int(std::count_if(ids, ids + s.T, [&](int id) { return id < m; }));
      ASSERT_EQ(start[m], below) << "bucket " << m;
    }
    used.insert(ids, ids + s.T);
  }
  EXPECT_GT(used.size(), 4u);  // the hash spreads positions over buckets
}

// ATTNSCOPE_LSH_TILES for the scope of one object ("" leaves the device's own choice).
struct TilesOverride {
  explicit TilesOverride(const std::string& spec) {
    if (!spec.empty()) setenv("ATTNSCOPE_LSH_TILES", spec.c_str(), 1);
  }
  ~TilesOverride() { unsetenv("ATTNSCOPE_LSH_TILES"); }
};

// The H200's limits as OpenCL reports them (48 KiB of local memory, 1024 work-items).
DeviceInfo h200_limits() {
  DeviceInfo d;
  d.is_gpu = true;
  d.local_mem_bytes = 49152;
  d.max_work_group_size = 1024;
  return d;
}

std::string tiles_spec(const LshTiles& t) {
  return std::to_string(t.queries) + "," + std::to_string(t.keys);
}

// The tiles the device tests run: the device's own, the H200's for this head size and odd
// small ones, whose blocks and tiles end at every kind of place.
std::vector<std::string> tile_specs(int head_size) {
  return {"", tiles_spec(choose_lsh_tiles(h200_limits(), head_size)), "5,3"};
}

TEST(LshTiles, TheH200ChoiceFitsItsLocalMemory) {
  const LshTiles t = choose_lsh_tiles(h200_limits(), 64);
  EXPECT_EQ(tiles_spec(t), "32,16");  // what the H200 builds for GPT-2's heads
  EXPECT_LE(t.attention_local_bytes(64), 49152u - 49152u / 8);
  for (int d : {16, 24, 45, 128})
    EXPECT_LE(choose_lsh_tiles(h200_limits(), d).attention_local_bytes(d), 49152u - 49152u / 8);
  EXPECT_THROW(parse_lsh_tiles("32", h200_limits(), 64), UsageError);
  EXPECT_THROW(parse_lsh_tiles("0,8", h200_limits(), 64), UsageError);
  EXPECT_THROW(parse_lsh_tiles("64,64", h200_limits(), 64), UsageError);  // local memory
  EXPECT_EQ(tiles_spec(parse_lsh_tiles("5,3", h200_limits(), 64)), "5,3");
}

// Positions in each bucket of one round's ids.
std::vector<int> bucket_sizes(const int* ids, int T, int buckets) {
  std::vector<int> sizes(buckets, 0);
  for (int t = 0; t < T; ++t) ++sizes[ids[t]];
  return sizes;
}

// With x_j = e_j, V = x and identity output projection, out_i = Σ_j P_ij e_j: the positive
// entries of row i are exactly the keys query i saw (its own, of score −1e5, gets weight
// exactly 0 unless it is alone in every round). Returns the sizes of all buckets met.
std::vector<int> expect_key_sets(int T, int hashes, int buckets, int chunk,
                                 const std::string& tiles) {
  const AttentionDims dims{1, T, T, 1};
  const TilesOverride override_tiles(tiles);
  auto v = make(dims, hashes, buckets, chunk, fresh_seed());
  VariantInputs in = random_variant_inputs(*v, dims, fresh_seed());
  std::fill(in.x.begin(), in.x.end(), 0.f);
  for (int t = 0; t < T; ++t) in.x[size_t(t) * T + t] = 1.f;
  for (auto& p : in.params) std::fill(p.begin(), p.end(), 0.f);
  in.params[0] = testing::random_vector(size_t(2) * T * T);  // W_q random ...
  std::fill(in.params[0].begin() + size_t(T) * T, in.params[0].end(), 0.f);
  for (int c = 0; c < T; ++c) {
    in.params[0][size_t(T + c) * T + c] = 1.f;  // ... W_v = I
    in.params[2][size_t(c) * T + c] = 1.f;      // W_o = I
  }
  const DeviceForward f = forward_on_device(*v, dims, 3, in);
  const std::vector<int> ids = download_ints(f.lsh().bucket, size_t(hashes) * T);
  const std::string label = "T=" + std::to_string(T) + " " + v->describe_options() +
                            " tiles '" + tiles + "'";
  for (int i = 0; i < T; ++i) {
    std::set<int> expected;
    for (int r = 0; r < hashes; ++r)
      for (int j : lsh::allowed_keys(ids.data() + size_t(r) * T, i, chunk))
        if (j != i) expected.insert(j);
    if (expected.empty()) expected.insert(i);
    std::set<int> seen;
    for (int j = 0; j < T; ++j)
      if (f.out[size_t(i) * T + j] > 0.f) seen.insert(j);
    EXPECT_EQ(seen, expected) << "query " << i << ", " << label;
  }
  std::vector<int> sizes;
  for (int r = 0; r < hashes; ++r) {
    const std::vector<int> round = bucket_sizes(ids.data() + size_t(r) * T, T, buckets);
    sizes.insert(sizes.end(), round.begin(), round.end());
  }
  return sizes;
}

TEST(LshDevice, KeySetsMatchBruteForceEnumeration) {
  for (int hashes : {1, 2}) expect_key_sets(40, hashes, 4, 2, "");  // window 2c = 4 keys
}

// The kernels walk only the band of each block: its start is the first query's bucket
// start or 2c back, its end the last key's bucket end or 2c on. Key sets on every tile
// choice for buckets of one position, buckets longer than 2c, T a multiple of no tile,
// head sizes a multiple of no float4.
TEST(LshDevice, KeySetsAtBucketAndTileEdges) {
  struct Shape { int T, hashes, buckets, chunk; };
  const Shape shapes[] = {{37, 2, 2, 2}, {45, 1, 32, 3}, {70, 2, 4, 8}, {33, 2, 16, 1}};
  bool singleton = false, longer_than_window = false;
  for (const Shape& sh : shapes)
    for (const std::string& tiles : tile_specs(sh.T))
      for (int size : expect_key_sets(sh.T, sh.hashes, sh.buckets, sh.chunk, tiles)) {
        singleton |= size == 1;
        longer_than_window |= size > 2 * sh.chunk + 1;
      }
  EXPECT_TRUE(singleton);
  EXPECT_TRUE(longer_than_window);
}

// Smallest gap, relative to the largest |projection|, between the winning signed projection
// and the runner-up over every hash of qv: below float rounding of qv a bucket can flip.
double smallest_hash_margin(const std::vector<float>& qv, const LshShape& s,
                            const std::vector<float>& rotations) {
  const int d = s.head_size, half = s.buckets / 2, C = s.H * d;
  double smallest = INFINITY;
  for (size_t row = 0; row < size_t(s.B) * s.T; ++row)
    for (int h = 0; h < s.H; ++h)
      for (int r = 0; r < s.rounds; ++r) {
        std::vector<double> signed_p;
        for (int m = 0; m < half; ++m) {
          double p = 0;
          for (int k = 0; k < d; ++k)
            p += double(qv[row * 2 * C + h * d + k]) * rotations[(size_t(r) * d + k) * half + m];
          signed_p.push_back(p);
          signed_p.push_back(-p);
        }
        std::sort(signed_p.rbegin(), signed_p.rend());
        smallest = std::min(smallest, (signed_p[0] - signed_p[1]) / std::abs(signed_p[0]));
      }
  return smallest;
}

struct Case {
  AttentionDims dims;
  int hashes, buckets, chunk;
};

// Device and reference each hash their own qv (equal up to float rounding). Inputs whose
// hashes are that close to a tie are redrawn, so the comparison is of attention, not of
// rounding luck; BucketsEqualHost checks the hashing itself bit for bit.
TEST(LshDevice, MatchesReference) {
  const Case cases[] = {
      {{1, 1, 32, 2}, 2, 2, 64},     // T = 1, d = 16
      {{2, 37, 64, 2}, 2, 4, 4},     // T a multiple of no tile, windows truncated, d = 32
      {{1, 70, 64, 1}, 3, 6, 8},     // d = 64, three rounds
      {{1, 33, 128, 1}, 1, 4, 16},   // d = 128, one round
      {{2, 130, 64, 4}, 2, 2, 64},   // d = 16, few buckets: long windows across tiles
      {{2, 29, 72, 3}, 2, 4, 8},     // d = 24: the backward's per-head sums over a non-power of two
      {{1, 260, 128, 2}, 2, 4, 16},  // d = 64: buckets longer than 2c, bands across blocks
      {{1, 45, 64, 2}, 2, 32, 2},    // many buckets of one or two positions
      {{1, 90, 64, 1}, 1, 2, 4},     // d = 64, two buckets far longer than 2c = 8
  };
  for (const Case& c : cases)
    for (const std::string& tiles : tile_specs(c.dims.head_size())) {
      const TilesOverride override_tiles(tiles);
      auto v = make(c.dims, c.hashes, c.buckets, c.chunk, fresh_seed());
      const LshShape s = v->shape(c.dims);
      const StepContext step{int64_t(fresh_seed() % 1000)};
      const auto rotations =
          lsh::rotations(v->options().seed, step.step, s.rounds, s.head_size, s.buckets);
      VariantInputs in;
      for (int attempt = 0; attempt < 10; ++attempt) {
        in = random_variant_inputs(*v, c.dims, fresh_seed());
        std::vector<float> qv(size_t(2) * c.dims.B * c.dims.T * c.dims.C);
        reference::matmul_forward(qv.data(), in.x.data(), in.params[0].data(), in.params[1].data(),
                                  c.dims.B * c.dims.T, c.dims.C, 2 * c.dims.C);
        if (smallest_hash_margin(qv, s, rotations) > 1e-4) break;
      }
      const VariantOutputs dev = run_variant_on_device(shared_ops(), *v, c.dims, step, in);
      const VariantOutputs ref = run_variant_reference(*v, c.dims, step, in);
      const std::string label =
          "T=" + std::to_string(c.dims.T) + " " + v->describe_options() + " tiles '" + tiles + "'";
      EXPECT_LT(relative_error(dev.out, ref.out), kTolerance) << label;
      EXPECT_LT(relative_error(dev.dx, ref.dx), kTolerance) << label;
      for (size_t i = 0; i < dev.dparams.size(); ++i)
        EXPECT_LT(relative_error(dev.dparams[i], ref.dparams[i]), kTolerance)
            << "param " << i << " " << label;
    }
}

// Σ out·dout of the reference block with the buckets held fixed (constants of the step).
double weighted_reference_sum(const LshShape& s, const std::vector<int>& buckets,
                              const VariantInputs& in) {
  std::vector<float> out(in.x.size());
  std::vector<const float*> params;
  for (const auto& p : in.params) params.push_back(p.data());
  reference::lsh_block_forward(s, buckets, params, in.x.data(), out.data());
  return weighted_sum(out, in.dout);
}

// Under tf32 the reference hashes the projection the device computes on tensor cores:
// x and W_qv rounded to TF32, then summed in double; in fp32, the plain projection.
TEST(LshReference, HashesTheProjectionOfTheRunsPrecision) {
  const int N = 5, C = 24;
  const std::vector<float> x = random_vector(size_t(N) * C), w = random_vector(size_t(2) * C * C),
                           b = random_vector(2 * C);
  std::vector<float> plain(size_t(N) * 2 * C), rounded(plain.size());
  reference::matmul_forward(plain.data(), x.data(), w.data(), b.data(), N, C, 2 * C);
  std::vector<float> x_tf32 = x, w_tf32 = w;
  for (float& v : x_tf32) v = round_to_tf32(v);
  for (float& v : w_tf32) v = round_to_tf32(v);
  reference::matmul_forward(rounded.data(), x_tf32.data(), w_tf32.data(), b.data(), N, C, 2 * C);
  const std::vector<float> fp32 = lsh::reference_qv(x.data(), w.data(), b.data(), N, C, false);
  const std::vector<float> tf32 = lsh::reference_qv(x.data(), w.data(), b.data(), N, C, true);
  EXPECT_TRUE(bitwise_equal(fp32, plain));
  EXPECT_LT(relative_error(tf32, rounded), 1e-6);
  EXPECT_GT(relative_error(tf32, plain), 1e-5) << "no TF32 rounding visible";
}

TEST(LshReference, GradientsMatchFiniteDifferences) {
  const LshShape s{2, 12, 2, 4, 2, 4, 2};  // window 4 of up to 11 earlier keys
  const AttentionDims dims{s.B, s.T, s.H * s.head_size, s.H};
  auto v = make(dims, s.rounds, s.buckets, s.chunk);
  VariantInputs in = random_variant_inputs(*v, dims, fresh_seed());
  std::vector<int> buckets(size_t(s.B) * s.H * s.rounds * s.T);
  for (int& id : buckets) id = int(fresh_seed() % s.buckets);
  std::vector<const float*> params;
  for (const auto& p : in.params) params.push_back(p.data());
  std::vector<float> dx(in.x.size());
  std::vector<std::vector<float>> dparams;
  std::vector<float*> dparam_ptrs;
  for (const auto& p : in.params) dparams.emplace_back(p.size(), 0.f);
  for (auto& g : dparams) dparam_ptrs.push_back(g.data());
  reference::lsh_block_backward(s, buckets, params, in.x.data(), in.dout.data(), dx.data(),
                                dparam_ptrs);
  auto objective = [&] { return weighted_reference_sum(s, buckets, in); };
  expect_directional_derivative(objective, in.x, dx, "x");
  const char* names[] = {"qvw", "qvb", "attprojw", "attprojb"};
  for (size_t i = 0; i < in.params.size(); ++i)
    expect_directional_derivative(objective, in.params[i], dparams[i], names[i]);
}

// Changing the token at position t changes no output before t.
TEST(LshDevice, IsCausal) {
  const AttentionDims dims{1, 50, 32, 2};
  auto v = make(dims, 2, 4, 4, fresh_seed());
  VariantInputs in = random_variant_inputs(*v, dims, fresh_seed());
  const std::vector<float> before = forward_on_device(*v, dims, 1, in).out;
  const int t = 31;
  for (int c = 0; c < dims.C; ++c) in.x[size_t(t) * dims.C + c] += 1.f;
  const std::vector<float> after = forward_on_device(*v, dims, 1, in).out;
  const size_t prefix = size_t(t) * dims.C;
  EXPECT_TRUE(std::equal(before.begin(), before.begin() + prefix, after.begin()));
  EXPECT_FALSE(std::equal(before.begin() + prefix, before.end(), after.begin() + prefix));
}

TEST(LshDevice, SameSeedAndStepSameResultOtherStepOtherBuckets) {
  const AttentionDims dims{1, 64, 32, 2};
  auto v = make(dims, 2, 8, 4, fresh_seed());
  const VariantInputs in = random_variant_inputs(*v, dims, fresh_seed());
  const DeviceForward a = forward_on_device(*v, dims, 9, in),
                      b = forward_on_device(*v, dims, 9, in);
  const DeviceForward c = forward_on_device(*v, dims, 10, in);
  EXPECT_EQ(a.out, b.out);
  const size_t n = size_t(2) * 2 * 64;
  EXPECT_NE(download_ints(a.lsh().bucket, n), download_ints(c.lsh().bucket, n));
}

TEST(LshOptions, ResolveChecksAndDefaults) {
  const AttentionDims dims{1, 1024, 64, 2};
  EXPECT_THROW(make(dims, 2, 3, 64), UsageError);
  EXPECT_THROW(make(dims, 2, -2, 64), UsageError);
  EXPECT_THROW(make(dims, 0, 4, 64), UsageError);
  EXPECT_THROW(make(dims, 2, 4, 0), UsageError);
  EXPECT_EQ(make(dims, 2, 0, 64)->option("buckets"), 16);
  const AttentionCost cost = make(dims, 2, 0, 64)->cost(dims);
  EXPECT_GT(cost.executed_flops_backward, cost.model_flops_backward);
}

TEST(LshOptions, DebugTensorsHoldRotationsAndReferenceBuckets) {
  const AttentionDims dims{1, 20, 32, 2};
  auto v = make(dims, 2, 4, 4, 77);
  const VariantInputs in = random_variant_inputs(*v, dims, fresh_seed());
  const StepContext step{3};
  run_variant_reference(*v, dims, step, in);
  const std::vector<NamedTensor> tensors = v->debug_tensors(dims, step);
  ASSERT_EQ(tensors.size(), 2u);
  EXPECT_EQ(tensors[0].name, "rotations");
  EXPECT_EQ(tensors[0].data, lsh::rotations(77, 3, 2, 16, 4));
  EXPECT_EQ(tensors[1].name, "bucket_ids");
  std::vector<float> qv(size_t(2) * 20 * 32);
  reference::matmul_forward(qv.data(), in.x.data(), in.params[0].data(), in.params[1].data(), 20,
                            32, 64);
  const std::vector<int> ids = lsh::hash_positions(qv.data(), v->shape(dims), tensors[0].data);
  EXPECT_EQ(tensors[1].data, std::vector<float>(ids.begin(), ids.end()));
  EXPECT_EQ(v->debug_tensors(dims, StepContext{4}).size(), 1u);  // other step: not hashed
}

// The last count int32 of an .npy file: its data (the header comes first).
std::vector<int> npy_ints(const std::filesystem::path& path, size_t count) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<int> ids(count);
  if (bytes.size() < count * sizeof(int)) return {};
  std::memcpy(ids.data(), bytes.data() + bytes.size() - count * sizeof(int), count * sizeof(int));
  return ids;
}

// ATTNSCOPE_LSH_BUCKETS=DIR: each device forward writes the bucket ids it used, named by
// pass, step and layer (a pass begins at layer 0); unset, nothing is written.
TEST(LshDump, EveryForwardWritesTheBucketIdsItUsed) {
  const std::filesystem::path dir = fresh_test_dir("lsh_dump");
  const AttentionDims dims{2, 24, 32, 2};
  setenv("ATTNSCOPE_LSH_BUCKETS", dir.c_str(), 1);
  auto v = make(dims, 2, 4, 4);
  unsetenv("ATTNSCOPE_LSH_BUCKETS");
  const VariantInputs in = random_variant_inputs(*v, dims, fresh_seed());
  const size_t count = size_t(2) * 2 * 2 * 24;
  const struct { int64_t step; int layer; const char* file; } calls[] = {
      {5, 0, "pass000001_step000005_layer000.npy"}, {5, 1, "pass000001_step000005_layer001.npy"},
      {0, 0, "pass000002_step000000_layer000.npy"}};
  for (const auto& call : calls) {
    const DeviceForward f = forward_on_device(*v, dims, call.step, in, call.layer);
    EXPECT_EQ(npy_ints(dir / call.file, count), download_ints(f.lsh().bucket, count)) << call.file;
  }
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 3);
  auto off = make(dims, 2, 4, 4);
  forward_on_device(*off, dims, 1, in);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 3);
  std::filesystem::remove_all(dir);
}

TEST(LshDump, ADirectoryThatCannotBeMadeIsRefused) {
  const std::filesystem::path dir = fresh_test_dir("lsh_dump_refused");
  std::ofstream(dir / "file") << "x";
  setenv("ATTNSCOPE_LSH_BUCKETS", (dir / "file").c_str(), 1);
  EXPECT_THROW(make({1, 8, 32, 2}, 2, 4, 4), UsageError);
  unsetenv("ATTNSCOPE_LSH_BUCKETS");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace attnscope
