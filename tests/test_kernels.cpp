// Every Ops method against the CPU reference (model/reference/layers.hpp) on fresh random
// inputs, outputs poisoned with NaN first (accumulated outputs start from random values
// instead), at shapes that are not multiples of any tile; plus run-to-run determinism.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "host/runtime/error.hpp"
#include "model/gemm.hpp"
#include "model/gemm_tuning.hpp"
#include "model/reference/layers.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using testing::bitwise_equal;
using testing::from_device;
using testing::kTolerance;
using testing::poisoned;
using testing::random_vector;
using testing::relative_error;
using testing::shared_ops;
using testing::shared_runtime;
using testing::to_device;

std::vector<int> random_ints(size_t n, int bound) {
  std::uniform_int_distribution<int> pick(0, bound - 1);
  std::vector<int> v(n);
  for (auto& x : v) x = pick(testing::test_rng());
  return v;
}

DeviceBuffer ints_to_device(const std::vector<int>& host) {
  DeviceBuffer buf = shared_runtime().alloc(host.size() * sizeof(int), "test ints");
  shared_runtime().upload(buf, host.data(), host.size() * sizeof(int));
  return buf;
}

std::vector<float> plus(std::vector<float> v, float offset) {
  for (auto& x : v) x += offset;
  return v;
}

// ---------------------------------------------------------------- gemm / matmul

struct GemmCase {
  int M, N, K;
};

// Non-multiples of every tile, K = 1, one row, one column, exact multiples, larger.
const std::vector<GemmCase> kGemmShapes = {
    {1, 1, 1},    {3, 5, 1},     {1, 17, 33},    {33, 1, 17},
    {65, 47, 19}, {128, 64, 32}, {129, 130, 17}, {300, 200, 130},
};

// Runs one gemm (all slices) on the device as `plan` says (or as Ops chooses) and on the
// CPU; returns the error.
double gemm_error(const GemmPlan* plan, const Ops::GemmSpec& s) {
  const size_t a_size = size_t(s.M) * s.K, b_size = size_t(s.K) * s.N, c_size = size_t(s.M) * s.N;
  std::vector<float> a = random_vector(s.offset_a + (s.batch - 1) * s.stride_a + a_size);
  std::vector<float> b = random_vector(s.offset_b + (s.batch - 1) * s.stride_b + b_size);
  std::vector<float> c = random_vector(s.offset_c + (s.batch - 1) * s.stride_c + c_size);
  auto da = to_device(a), db = to_device(b);
  auto dc = s.beta == 0.f ? poisoned(c.size()) : to_device(c);
  DeviceBuffer partials;
  GemmScratch scratch = [&](size_t bytes) -> const cl::Buffer& {
    partials = poisoned(bytes / sizeof(float));
    return partials.buffer();
  };
  if (plan)
    launch_gemm(shared_runtime(), *plan, s, da, db, dc, nullptr, scratch);
  else
    shared_ops().gemm(s, da, db, dc);
  std::vector<float> got = from_device(dc, c.size()), want(got.size()), ref_c = c;
  for (int z = 0; z < s.batch; ++z)
    reference::gemm(ref_c.data() + s.offset_c + z * s.stride_c,
                    a.data() + s.offset_a + z * s.stride_a, b.data() + s.offset_b + z * s.stride_b,
                    s.M, s.N, s.K, s.trans_a, s.trans_b, s.alpha, s.beta);
  // Compare the slices only: the rest of C is either poison or must be untouched.
  std::vector<float> got_slices, want_slices;
  for (int z = 0; z < s.batch; ++z) {
    size_t begin = s.offset_c + z * s.stride_c;
    got_slices.insert(got_slices.end(), got.begin() + begin, got.begin() + begin + c_size);
    want_slices.insert(want_slices.end(), ref_c.begin() + begin, ref_c.begin() + begin + c_size);
  }
  return relative_error(got_slices, want_slices);
}

Ops::GemmSpec plain_spec(const GemmCase& shape, bool trans_a, bool trans_b) {
  Ops::GemmSpec s;
  s.M = shape.M, s.N = shape.N, s.K = shape.K, s.trans_a = trans_a, s.trans_b = trans_b;
  return s;
}

TEST(Gemm, EveryTransposeAndShapeMatchesReference) {
  for (const auto& shape : kGemmShapes)
    for (int t = 0; t < 4; ++t) {
      Ops::GemmSpec s = plain_spec(shape, t & 1, t & 2);
      EXPECT_LT(gemm_error(nullptr, s), kTolerance)
          << "M=" << s.M << " N=" << s.N << " K=" << s.K << " trans_a=" << s.trans_a
          << " trans_b=" << s.trans_b;
    }
}

// The configurations GPUs run — the built-in ones and every entry of the tuning database —
// run on the CPU device too, so CI checks the tiles a GPU takes. Each program build costs
// seconds on PoCL, so each configuration gets two of the four transpose cases, alternating
// between configurations so that every case runs with more than one tile shape; the
// shapes cover edge tiles (bounds-checked loads and stores), interior tiles of aligned
// rows (128-bit loads and stores, VECTOR_IO) and unaligned rows (vload4).
TEST(Gemm, EveryTileConfigurationMatchesReference) {
  const std::vector<GemmCase> shapes = {{1, 1, 1}, {129, 130, 17}, {70, 200, 45}, {256, 256, 64}};
  const DeviceInfo& device = shared_runtime().device();
  std::vector<GemmConfig> configs = gemm_configs();
  for (const auto& entry : gemm_tuning_table().entries())
    if (entry.precision == "fp32" &&
        std::find(configs.begin(), configs.end(), entry.config) == configs.end())
      configs.push_back(entry.config);
  const int transposes[2][2] = {{2, 1}, {0, 3}};  // bit 0: trans_a, bit 1: trans_b
  int tested = 0;
  for (const auto& config : configs) {
    if (!gemm_fits_device(config, device)) continue;
    for (int t : transposes[tested++ % 2])
      for (const auto& shape : shapes) {
        Ops::GemmSpec s = plain_spec(shape, t & 1, t & 2);
        GemmPlan plan{config, 1};
        EXPECT_LT(gemm_error(&plan, s), kTolerance)
            << config.label() << " M=" << s.M << " N=" << s.N << " K=" << s.K
            << " trans_a=" << s.trans_a << " trans_b=" << s.trans_b;
      }
  }
  EXPECT_GE(tested, int(gemm_configs().size()));
}

// Split-K (GPUs use it for dweight-shaped products with small M·N): slices that do not
// divide K, fewer slices than asked when K is short, accumulation (beta = 1) and beta = 0.
TEST(Gemm, SplitKMatchesReference) {
  const GemmConfig config = gemm_configs()[0];  // a GPU's tiles
  struct Case {
    GemmCase shape;
    int splits;
    float alpha, beta;
  };
  for (const Case& c : {Case{{37, 29, 300}, 3, 1.f, 1.f}, Case{{37, 29, 300}, 5, 0.5f, 0.f},
                        Case{{5, 70, 20}, 4, 1.f, 1.f}, Case{{64, 32, 256}, 2, 1.f, 0.f}}) {
    Ops::GemmSpec s = plain_spec(c.shape, true, false);
    s.alpha = c.alpha, s.beta = c.beta, s.offset_a = 3, s.offset_b = 5, s.offset_c = 7;
    GemmPlan plan{config, c.splits};
    EXPECT_LT(gemm_error(&plan, s), kTolerance)
        << "M=" << s.M << " N=" << s.N << " K=" << s.K << " splits=" << c.splits;
  }
}

DeviceInfo large_gpu() {  // like the H100/H200: 132 compute units, 48 KiB local memory
  DeviceInfo gpu;
  gpu.name = "test GPU";
  gpu.is_gpu = true, gpu.compute_units = 132, gpu.local_mem_bytes = 48 * 1024;
  gpu.max_work_group_size = 1024;
  return gpu;
}

// The default plan (no tuned entry) for GPT-2's products on a large GPU: tiles chosen by
// wave efficiency, split-K for small dweights, the largest fitting tile on small devices.
TEST(Gemm, DefaultPlanForALargeGpu) {
  const DeviceInfo gpu = large_gpu();
  const GemmTuningTable empty;
  auto plan_for = [&](int M, int N, int K, bool trans_a, bool trans_b, int batch = 1) {
    Ops::GemmSpec s = plain_spec({M, N, K}, trans_a, trans_b);
    s.batch = batch;
    return plan_gemm(gpu, s, false, empty);
  };
  // 1152 tiles of 128×128 fill 4.4 waves of 264 slots: big tiles win.
  EXPECT_EQ(plan_for(8192, 2304, 768, false, true).config.label(), "128x128x16/8x8");
  // N = 768: 384 tiles of 128×128 are 1.45 waves; 768 of 128×64 are 2.9.
  EXPECT_EQ(plan_for(8192, 768, 768, false, true).config.label(), "128x64x16/8x4");
  GemmPlan attproj_dweight = plan_for(768, 768, 8192, true, false);
  EXPECT_GT(attproj_dweight.k_splits, 1);
  EXPECT_EQ(attproj_dweight.source, "default");
  EXPECT_EQ(plan_for(50304, 768, 8192, true, false).k_splits, 1);  // enough tiles already
  EXPECT_EQ(plan_for(1024, 64, 1024, false, false, 96).config.tile_n, 64);  // P·V: N = 64
  DeviceInfo small_local = gpu;
  small_local.local_mem_bytes = 8 * 1024;  // none of the 256-work-item tiles fits
  EXPECT_EQ(plan_gemm(small_local, plain_spec({8192, 768, 768}, false, true), false, empty)
                .config.tile_m, 32);
  DeviceInfo cpu = gpu;
  cpu.is_gpu = false, cpu.is_cpu = true;
  EXPECT_EQ(plan_gemm(cpu, plain_spec({768, 768, 8192}, true, false), false, empty).k_splits, 1);
}

// A tuned entry for the device's name and the product's shape class wins over the
// defaults; split-K only where the product allows it; other devices and classes fall back.
TEST(Gemm, TunedPlanComesFromTheDatabase) {
  const DeviceInfo gpu = large_gpu();
  GemmTuningEntry entry;
  entry.device = gpu.name, entry.precision = "fp32", entry.shape_class = "tn:s-s-l";
  entry.config = {64, 128, 16, 4, 8}, entry.k_splits = 6;
  GemmTuningTable table;
  table.merge({entry});
  Ops::GemmSpec dweight = plain_spec({768, 768, 8192}, true, false);
  EXPECT_EQ(gemm_shape_class(dweight), "tn:s-s-l");
  GemmPlan plan = plan_gemm(gpu, dweight, false, table);
  EXPECT_EQ(plan.source, "tuned");
  EXPECT_EQ(plan.config.label(), "64x128x16/4x8");
  EXPECT_EQ(plan.k_splits, 6);
  EXPECT_EQ(plan_gemm(gpu, dweight, true, table).k_splits, 1);  // a bias forbids the split
  DeviceInfo other = gpu;
  other.name = "another GPU";
  EXPECT_EQ(plan_gemm(other, dweight, false, table).source, "default");
  other.tuning_name = gpu.name;  // ATTNSCOPE_DEVICE_LIMITS's tuning=: the entries of that name
  EXPECT_EQ(plan_gemm(other, dweight, false, table).source, "tuned");
  EXPECT_EQ(plan_gemm(gpu, plain_spec({768, 768, 8192}, false, false), false, table).source,
            "default");
}

TEST(Gemm, TuningTableRoundTripsAndRejectsMalformedText) {
  GemmTuningEntry entry;
  entry.device = "NVIDIA H200", entry.precision = "fp32", entry.shape_class = "nt:l-m-s";
  entry.config = {128, 128, 8, 8, 8}, entry.k_splits = 1, entry.tflops = 41.5;
  GemmTuningTable table;
  table.merge({entry});
  entry.config.tile_k = 16;  // same key: replaces
  table.merge({entry});
  ASSERT_EQ(table.entries().size(), 1u);
  GemmTuningTable again = GemmTuningTable::parse(table.to_json(), "test");
  ASSERT_NE(again.find("NVIDIA H200", "fp32", "nt:l-m-s"), nullptr);
  EXPECT_EQ(again.find("NVIDIA H200", "fp32", "nt:l-m-s")->config.tile_k, 16);
  EXPECT_EQ(again.find("NVIDIA H200", "tf32", "nt:l-m-s"), nullptr);
  EXPECT_THROW(GemmTuningTable::parse("{\"entries\": [{\"device\": 1}]}", "test"), Error);
  EXPECT_THROW(GemmTuningTable::parse("not json", "test"), Error);
  const std::string invalid = R"({"entries": [{"device": "d", "precision": "fp32",
      "shape_class": "nn:s-s-s", "config": {"tile_m": 30, "tile_n": 32, "tile_k": 8,
      "wpt_m": 4, "wpt_n": 4}}]})";
  EXPECT_THROW(GemmTuningTable::parse(invalid, "test"), Error);  // 30 is not 4-row blocks
}

// tf32 entries carry matmul_tf32.cl's tiles (warps, not work per item) and are found
// only for the tf32 planner.
TEST(Gemm, Tf32EntriesRoundTripAndPlan) {
  GemmTuningEntry entry;
  entry.device = "test GPU", entry.precision = "tf32", entry.shape_class = "nt:l-m-s";
  entry.tf32 = {64, 128, 16, 2, 2}, entry.k_splits = 1;
  ASSERT_TRUE(entry.tf32.valid());
  GemmTuningTable table;
  table.merge({entry});
  const GemmTuningTable again = GemmTuningTable::parse(table.to_json(), "test");
  const GemmTuningEntry* found = again.find("test GPU", "tf32", "nt:l-m-s");
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(found->tf32.label(), entry.tf32.label());
  EXPECT_EQ(again.find("test GPU", "fp32", "nt:l-m-s"), nullptr);
  const DeviceInfo gpu = large_gpu();
  const Ops::GemmSpec qkv = plain_spec({8192, 2304, 768}, false, true);
  const Tf32Plan tuned = plan_gemm_tf32(gpu, qkv, true, Precision::tf32, again);
  EXPECT_EQ(tuned.source, "tuned");
  EXPECT_EQ(tuned.config.label(), entry.tf32.label());
  EXPECT_EQ(plan_gemm(gpu, qkv, true, again).source, "default");  // fp32 does not take it
  EXPECT_EQ(plan_gemm_tf32(gpu, plain_spec({8192, 768, 768}, false, true), true, Precision::tf32,
                           again).source,
            "default");
  // 3xtf32 has entries of its own: the tf32 one is not taken, and its default is split.
  const Tf32Plan split = plan_gemm_tf32(gpu, qkv, true, Precision::tf32x3, again);
  EXPECT_EQ(split.source, "default");
  EXPECT_TRUE(split.config.split);
  // A 3xtf32 entry reads back split, and is what the 3xtf32 planner takes.
  GemmTuningEntry split_entry = entry;
  split_entry.precision = "3xtf32", split_entry.tf32 = {128, 128, 16, 2, 2};
  split_entry.tf32.split = true;
  table.merge({split_entry});
  const GemmTuningTable both = GemmTuningTable::parse(table.to_json(), "test");
  ASSERT_NE(both.find("test GPU", "3xtf32", "nt:l-m-s"), nullptr);
  EXPECT_TRUE(both.find("test GPU", "3xtf32", "nt:l-m-s")->tf32.split);
  EXPECT_FALSE(both.find("test GPU", "tf32", "nt:l-m-s")->tf32.split);
  const Tf32Plan tuned_split = plan_gemm_tf32(gpu, qkv, true, Precision::tf32x3, both);
  EXPECT_EQ(tuned_split.source, "tuned");
  EXPECT_EQ(tuned_split.config.label(), "128x128x16/2x2w/3x");
}

TEST(Gemm, ProfileNamesAndShapeClasses) {
  Ops::GemmSpec s = plain_spec({8192, 2304, 768}, false, true);
  EXPECT_EQ(gemm_profile_name(s), "gemm_nt_8192x2304x768");
  EXPECT_EQ(gemm_shape_class(s), "nt:l-m-s");
  s.batch = 192;
  EXPECT_EQ(gemm_profile_name(s), "gemm_nt_8192x2304x768_b192");
  EXPECT_EQ(gemm_shape_class(s), "nt:b:l-m-s");
}

// The tuner's space: only valid configurations that fit the device, and plenty of them.
TEST(Gemm, TuningSpaceFitsTheDevice) {
  const DeviceInfo gpu = large_gpu();
  const auto space = gemm_tuning_space(gpu);
  EXPECT_GE(space.size(), 100u);
  for (const auto& c : space) {
    EXPECT_TRUE(c.valid()) << c.label();
    EXPECT_TRUE(gemm_fits_device(c, gpu)) << c.label();
  }
}

TEST(Gemm, BatchedWithOffsetsStridesAlphaBeta) {
  for (int t = 0; t < 4; ++t) {
    Ops::GemmSpec s = plain_spec({37, 29, 23}, t & 1, t & 2);
    s.batch = 3, s.alpha = 0.5f, s.beta = -1.5f;
    s.offset_a = 7, s.offset_b = 3, s.offset_c = 11;
    s.stride_a = 37 * 23 + 5, s.stride_b = 29 * 23 + 1, s.stride_c = 37 * 29 + 13;
    EXPECT_LT(gemm_error(nullptr, s), kTolerance)
        << "trans_a=" << s.trans_a << " trans_b=" << s.trans_b;
    s.beta = 0.f;  // C poisoned: must not be read
    EXPECT_LT(gemm_error(nullptr, s), kTolerance) << "beta=0 trans " << t;
  }
}

TEST(Gemm, RejectsOperandsLargerThanTheirBuffers) {
  Ops::GemmSpec s = plain_spec({8, 8, 8}, false, false);
  auto small = poisoned(63), ok = poisoned(64);
  EXPECT_THROW(shared_ops().gemm(s, small, ok, ok), Error);
  s.batch = 2, s.stride_c = 64;
  EXPECT_THROW(shared_ops().gemm(s, ok, ok, ok), Error);
}

struct MatmulCase {
  int N, C, OC;
};
const std::vector<MatmulCase> kMatmulShapes = {{1, 1, 1},  {7, 1, 5},    {1, 13, 9},
                                               {5, 13, 1}, {64, 48, 96}, {300, 130, 200}};

TEST(Matmul, ForwardMatchesReference) {
  for (const auto& m : kMatmulShapes)
    for (bool with_bias : {false, true}) {
      auto inp = random_vector(size_t(m.N) * m.C), weight = random_vector(size_t(m.OC) * m.C);
      auto bias = random_vector(m.OC);
      auto d_inp = to_device(inp), d_weight = to_device(weight), d_bias = to_device(bias);
      auto d_out = poisoned(size_t(m.N) * m.OC);
      const cl::Buffer* bias_arg = with_bias ? &d_bias.buffer() : nullptr;
      shared_ops().matmul_forward(d_out, d_inp, d_weight, bias_arg, m.N, m.C, m.OC);
      std::vector<float> want(size_t(m.N) * m.OC);
      reference::matmul_forward(want.data(), inp.data(), weight.data(),
                                with_bias ? bias.data() : nullptr, m.N, m.C, m.OC);
      EXPECT_LT(relative_error(from_device(d_out, want.size()), want), kTolerance)
          << "N=" << m.N << " C=" << m.C << " OC=" << m.OC << " bias=" << with_bias;
    }
}

struct MatmulGrads {
  std::vector<float> dinp, dweight, dbias;
};

// matmul_backward on the device: dinp poisoned, dweight/dbias start from `start`.
MatmulGrads device_matmul_backward(const MatmulCase& m, const std::vector<float>& dout,
                                   const std::vector<float>& inp, const std::vector<float>& weight,
                                   const MatmulGrads& start) {
  auto d_dout = to_device(dout), d_inp = to_device(inp), d_weight = to_device(weight);
  auto d_dinp = poisoned(inp.size());
  auto d_dweight = to_device(start.dweight), d_dbias = to_device(start.dbias);
  shared_ops().matmul_backward(d_dinp, d_dweight, &d_dbias.buffer(), d_dout, d_inp, d_weight, m.N,
                               m.C, m.OC);
  return {from_device(d_dinp, inp.size()), from_device(d_dweight, weight.size()),
          from_device(d_dbias, m.OC)};
}

TEST(Matmul, BackwardMatchesReferenceAndAccumulates) {
  for (const auto& m : kMatmulShapes) {
    auto inp = random_vector(size_t(m.N) * m.C), weight = random_vector(size_t(m.OC) * m.C);
    auto dout = random_vector(size_t(m.N) * m.OC);
    MatmulGrads start{{}, random_vector(weight.size()), random_vector(m.OC)};
    MatmulGrads got = device_matmul_backward(m, dout, inp, weight, start);
    MatmulGrads want{std::vector<float>(inp.size()), start.dweight, start.dbias};
    reference::matmul_backward(want.dinp.data(), want.dweight.data(), want.dbias.data(),
                               dout.data(), inp.data(), weight.data(), m.N, m.C, m.OC);
    std::string where =
        "N=" + std::to_string(m.N) + " C=" + std::to_string(m.C) + " OC=" + std::to_string(m.OC);
    EXPECT_LT(relative_error(got.dinp, want.dinp), kTolerance) << "dinp " << where;
    EXPECT_LT(relative_error(got.dweight, want.dweight), kTolerance) << "dweight " << where;
    EXPECT_LT(relative_error(got.dbias, want.dbias), kTolerance) << "dbias " << where;
  }
}

TEST(Matmul, BackwardIsDeterministic) {
  MatmulCase m{257, 67, 131};
  auto inp = random_vector(size_t(m.N) * m.C), weight = random_vector(size_t(m.OC) * m.C);
  auto dout = random_vector(size_t(m.N) * m.OC);
  MatmulGrads start{{}, random_vector(weight.size()), random_vector(m.OC)};
  MatmulGrads first = device_matmul_backward(m, dout, inp, weight, start);
  MatmulGrads second = device_matmul_backward(m, dout, inp, weight, start);
  EXPECT_TRUE(bitwise_equal(first.dinp, second.dinp));
  EXPECT_TRUE(bitwise_equal(first.dweight, second.dweight));
  EXPECT_TRUE(bitwise_equal(first.dbias, second.dbias));
}

// ---------------------------------------------------------------- encoder

struct EncoderCase {
  int B, T, C, V;
};
// Small vocabularies make tokens repeat within and across rows (runs in the dwte sort).
const std::vector<EncoderCase> kEncoderShapes = {
    {1, 1, 1, 1}, {2, 5, 7, 3}, {3, 17, 33, 50}, {4, 64, 70, 5}, {2, 300, 16, 1000}};

TEST(Encoder, ForwardMatchesReference) {
  for (const auto& e : kEncoderShapes) {
    auto tokens = random_ints(size_t(e.B) * e.T, e.V);
    auto wte = random_vector(size_t(e.V) * e.C), wpe = random_vector(size_t(e.T) * e.C);
    auto d_tokens = ints_to_device(tokens);
    auto d_wte = to_device(wte), d_wpe = to_device(wpe);
    auto d_out = poisoned(size_t(e.B) * e.T * e.C);
    shared_ops().encoder_forward(d_out, d_tokens, d_wte, d_wpe, e.B, e.T, e.C);
    std::vector<float> want(size_t(e.B) * e.T * e.C);
    reference::encoder_forward(want.data(), tokens.data(), wte.data(), wpe.data(), e.B, e.T, e.C);
    EXPECT_LT(relative_error(from_device(d_out, want.size()), want), kTolerance)
        << "B=" << e.B << " T=" << e.T << " C=" << e.C;
  }
}

// dwte, dwpe after encoder_backward on the device, starting from the given values.
std::pair<std::vector<float>, std::vector<float>> device_encoder_backward(
    const EncoderCase& e, const std::vector<int>& tokens, const std::vector<float>& dout,
    const std::vector<float>& dwte, const std::vector<float>& dwpe) {
  auto d_tokens = ints_to_device(tokens);
  auto d_dout = to_device(dout), d_dwte = to_device(dwte), d_dwpe = to_device(dwpe);
  shared_ops().encoder_backward(d_dwte, d_dwpe, d_dout, d_tokens, e.B, e.T, e.C);
  return {from_device(d_dwte, dwte.size()), from_device(d_dwpe, dwpe.size())};
}

TEST(Encoder, BackwardMatchesReferenceAndAccumulates) {
  for (const auto& e : kEncoderShapes) {
    auto tokens = random_ints(size_t(e.B) * e.T, e.V);
    auto dout = random_vector(size_t(e.B) * e.T * e.C);
    auto dwte = random_vector(size_t(e.V) * e.C), dwpe = random_vector(size_t(e.T) * e.C);
    auto [got_dwte, got_dwpe] = device_encoder_backward(e, tokens, dout, dwte, dwpe);
    reference::encoder_backward(dwte.data(), dwpe.data(), dout.data(), tokens.data(), e.B, e.T,
                                e.C);
    EXPECT_LT(relative_error(got_dwte, dwte), kTolerance) << "dwte B=" << e.B << " T=" << e.T;
    EXPECT_LT(relative_error(got_dwpe, dwpe), kTolerance) << "dwpe B=" << e.B << " T=" << e.T;
  }
}

TEST(Encoder, BackwardIsDeterministic) {
  EncoderCase e{4, 200, 24, 7};
  auto tokens = random_ints(size_t(e.B) * e.T, e.V);
  auto dout = random_vector(size_t(e.B) * e.T * e.C);
  auto dwte = random_vector(size_t(e.V) * e.C), dwpe = random_vector(size_t(e.T) * e.C);
  auto first = device_encoder_backward(e, tokens, dout, dwte, dwpe);
  auto second = device_encoder_backward(e, tokens, dout, dwte, dwpe);
  EXPECT_TRUE(bitwise_equal(first.first, second.first));
  EXPECT_TRUE(bitwise_equal(first.second, second.second));
}

// ---------------------------------------------------------------- layernorm

struct RowsCase {
  int N, C;
};
// C below, at and above the 256-wide work-group; inputs offset from 0 so a one-pass
// variance would lose precision.
const std::vector<RowsCase> kLayernormShapes = {{1, 1}, {3, 7}, {37, 300}, {5, 768}, {64, 1000}};

TEST(Layernorm, ForwardMatchesReference) {
  for (const auto& r : kLayernormShapes) {
    auto inp = plus(random_vector(size_t(r.N) * r.C), 3.f);
    auto weight = random_vector(r.C), bias = random_vector(r.C);
    auto d_inp = to_device(inp), d_weight = to_device(weight), d_bias = to_device(bias);
    auto d_out = poisoned(inp.size()), d_mean = poisoned(r.N), d_rstd = poisoned(r.N);
    shared_ops().layernorm_forward(d_out, d_mean, d_rstd, d_inp, d_weight, d_bias, r.N, r.C);
    std::vector<float> out(inp.size()), mean(r.N), rstd(r.N);
    reference::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(),
                                 bias.data(), r.N, r.C);
    std::string where = "N=" + std::to_string(r.N) + " C=" + std::to_string(r.C);
    EXPECT_LT(relative_error(from_device(d_out, out.size()), out), kTolerance) << where;
    EXPECT_LT(relative_error(from_device(d_mean, r.N), mean), kTolerance) << where;
    EXPECT_LT(relative_error(from_device(d_rstd, r.N), rstd), kTolerance) << where;
  }
}

struct LayernormGrads {
  std::vector<float> dinp, dweight, dbias;
};

LayernormGrads device_layernorm_backward(const RowsCase& r, const LayernormGrads& start,
                                         const std::vector<float>& dout,
                                         const std::vector<float>& inp,
                                         const std::vector<float>& weight,
                                         const std::vector<float>& mean,
                                         const std::vector<float>& rstd) {
  auto d_dinp = to_device(start.dinp), d_dweight = to_device(start.dweight);
  auto d_dbias = to_device(start.dbias);
  auto d_dout = to_device(dout), d_inp = to_device(inp), d_weight = to_device(weight);
  auto d_mean = to_device(mean), d_rstd = to_device(rstd);
  shared_ops().layernorm_backward(d_dinp, d_dweight, d_dbias, d_dout, d_inp, d_weight, d_mean,
                                  d_rstd, r.N, r.C);
  return {from_device(d_dinp, inp.size()), from_device(d_dweight, r.C), from_device(d_dbias, r.C)};
}

TEST(Layernorm, BackwardMatchesReferenceAndAccumulates) {
  for (const auto& r : kLayernormShapes) {
    auto inp = plus(random_vector(size_t(r.N) * r.C), 3.f), weight = random_vector(r.C);
    auto bias = random_vector(r.C), dout = random_vector(inp.size());
    std::vector<float> out(inp.size()), mean(r.N), rstd(r.N);
    reference::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(),
                                 bias.data(), r.N, r.C);
    LayernormGrads want{random_vector(inp.size()), random_vector(r.C), random_vector(r.C)};
    LayernormGrads got = device_layernorm_backward(r, want, dout, inp, weight, mean, rstd);
    reference::layernorm_backward(want.dinp.data(), want.dweight.data(), want.dbias.data(),
                                  dout.data(), inp.data(), weight.data(), mean.data(), rstd.data(),
                                  r.N, r.C);
    std::string where = "N=" + std::to_string(r.N) + " C=" + std::to_string(r.C);
    EXPECT_LT(relative_error(got.dinp, want.dinp), kTolerance) << "dinp " << where;
    EXPECT_LT(relative_error(got.dweight, want.dweight), kTolerance) << "dweight " << where;
    EXPECT_LT(relative_error(got.dbias, want.dbias), kTolerance) << "dbias " << where;
  }
}

TEST(Layernorm, BackwardIsDeterministic) {
  RowsCase r{301, 77};
  auto inp = random_vector(size_t(r.N) * r.C), weight = random_vector(r.C);
  auto dout = random_vector(inp.size()), mean = random_vector(r.N);
  auto rstd = plus(random_vector(r.N, 0.1f), 1.f);
  LayernormGrads start{random_vector(inp.size()), random_vector(r.C), random_vector(r.C)};
  LayernormGrads first = device_layernorm_backward(r, start, dout, inp, weight, mean, rstd);
  LayernormGrads second = device_layernorm_backward(r, start, dout, inp, weight, mean, rstd);
  EXPECT_TRUE(bitwise_equal(first.dinp, second.dinp));
  EXPECT_TRUE(bitwise_equal(first.dweight, second.dweight));
  EXPECT_TRUE(bitwise_equal(first.dbias, second.dbias));
}

// ---------------------------------------------------------------- element-wise

const std::vector<size_t> kElementCounts = {1, 1000, 4099};

TEST(Gelu, ForwardAndBackwardMatchReference) {
  for (size_t n : kElementCounts) {
    auto inp = random_vector(n, 2.f), dout = random_vector(n);
    auto d_inp = to_device(inp), d_dout = to_device(dout);
    auto d_out = poisoned(n), d_dinp = poisoned(n);
    shared_ops().gelu_forward(d_out, d_inp, n);
    shared_ops().gelu_backward(d_dinp, d_inp, d_dout, n);
    std::vector<float> out(n), dinp(n);
    reference::gelu_forward(out.data(), inp.data(), n);
    reference::gelu_backward(dinp.data(), inp.data(), dout.data(), n);
    EXPECT_LT(relative_error(from_device(d_out, n), out), kTolerance) << "n=" << n;
    EXPECT_LT(relative_error(from_device(d_dinp, n), dinp), kTolerance) << "n=" << n;
  }
}

TEST(Residual, ForwardAndAccumulateMatchReference) {
  for (size_t n : kElementCounts) {
    auto a = random_vector(n), b = random_vector(n);
    auto d_a = to_device(a), d_b = to_device(b), d_out = poisoned(n);
    shared_ops().residual_forward(d_out, d_a, d_b, n);
    shared_ops().accumulate(d_a, d_b, n);
    std::vector<float> out(n);
    reference::residual_forward(out.data(), a.data(), b.data(), n);
    reference::accumulate(a.data(), b.data(), n);
    EXPECT_LT(relative_error(from_device(d_out, n), out), kTolerance) << "n=" << n;
    EXPECT_LT(relative_error(from_device(d_a, n), a), kTolerance) << "n=" << n;
  }
}

// ---------------------------------------------------------------- classifier

struct ClassifierCase {
  int N, V, Vp;
};
const std::vector<ClassifierCase> kClassifierShapes = {
    {1, 1, 1}, {3, 10, 16}, {5, 300, 301}, {7, 1000, 1024}};

TEST(Classifier, FusedLossAndGradientMatchReference) {
  for (const auto& k : kClassifierShapes) {
    // The padding holds garbage: it must be ignored by the loss and zeroed in the gradient.
    auto logits = random_vector(size_t(k.N) * k.Vp, 3.f);
    auto targets = random_ints(k.N, k.V);
    auto d_logits = to_device(logits), d_targets = ints_to_device(targets);
    auto d_losses = poisoned(k.N);
    shared_ops().fused_classifier(d_logits, d_losses, d_targets, k.N, k.V, k.Vp);
    std::vector<float> losses(k.N);
    reference::fused_classifier(logits.data(), losses.data(), targets.data(), k.N, k.V, k.Vp);
    std::string where = "N=" + std::to_string(k.N) + " V=" + std::to_string(k.V);
    EXPECT_LT(relative_error(from_device(d_losses, k.N), losses), kTolerance) << where;
    EXPECT_LT(relative_error(from_device(d_logits, logits.size()), logits), kTolerance) << where;
  }
}

TEST(Classifier, ForwardOnlyMatchesReferenceAndKeepsLogits) {
  for (const auto& k : kClassifierShapes) {
    auto logits = random_vector(size_t(k.N) * k.Vp, 3.f);
    auto targets = random_ints(k.N, k.V);
    auto d_logits = to_device(logits), d_targets = ints_to_device(targets);
    auto d_losses = poisoned(k.N);
    shared_ops().crossentropy_forward(d_losses, d_logits, d_targets, k.N, k.V, k.Vp);
    std::vector<float> losses(k.N);
    reference::crossentropy_forward(losses.data(), logits.data(), targets.data(), k.N, k.V, k.Vp);
    EXPECT_LT(relative_error(from_device(d_losses, k.N), losses), kTolerance) << "V=" << k.V;
    EXPECT_TRUE(bitwise_equal(from_device(d_logits, logits.size()), logits));
  }
}

// ---------------------------------------------------------------- optimizer

TEST(Optimizer, SquaredNormMatchesReferenceAndIsDeterministic) {
  // 300001 > 1024 groups × 256 work-items: the grid-stride loop runs more than once.
  for (size_t n : {size_t(1), size_t(1000), size_t(300001)}) {
    auto grads = random_vector(n);
    auto d_grads = to_device(grads), d_out = poisoned(1);
    shared_ops().squared_norm(d_out, d_grads, n);
    std::vector<float> first = from_device(d_out, 1);
    shared_ops().squared_norm(d_out, d_grads, n);
    std::vector<float> want = {float(reference::squared_norm(grads.data(), n))};
    EXPECT_LT(relative_error(first, want), kTolerance) << "n=" << n;
    EXPECT_TRUE(bitwise_equal(first, from_device(d_out, 1))) << "n=" << n;
  }
}

TEST(Optimizer, ClipScale) {
  struct Case {
    float norm_sq, clip;
  };
  for (const Case& c : {Case{4.f, 1.f}, Case{0.25f, 1.f}, Case{4.f, 0.f}, Case{0.f, 1.f}}) {
    auto d_norm = to_device({c.norm_sq}), d_scale = poisoned(1);
    shared_ops().clip_scale(d_scale, d_norm, c.clip);
    float want = reference::clip_scale(c.norm_sq, c.clip);
    EXPECT_FLOAT_EQ(from_device(d_scale, 1)[0], want) << c.norm_sq << " " << c.clip;
  }
}

TEST(Optimizer, AdamWMatchesReference) {
  Ops::AdamW hp;
  hp.lr = 1e-2f;
  for (size_t n : {size_t(1), size_t(4097)})
    for (int step : {1, 10}) {
      // Parameters of GPT-2's scale (0.02) and a large learning rate: the update is
      // compared, and it must not be lost in the rounding of params (rel. 1e-7 of 1e-2).
      auto params = random_vector(n, 0.02f), grads = random_vector(n), m = random_vector(n, 0.1f);
      auto v = random_vector(n, 0.1f);
      for (auto& x : v) x = x * x;
      auto d_params = to_device(params), d_grads = to_device(grads), d_m = to_device(m);
      auto d_v = to_device(v), d_scale = to_device({0.5f});
      shared_ops().adamw_update(d_params, d_grads, d_m, d_v, n, hp, 0.1f, step, d_scale);
      std::vector<float> want_params = params;
      reference::adamw_update(want_params.data(), grads.data(), m.data(), v.data(), n, hp.lr,
                              hp.beta1, hp.beta2, hp.eps, 0.1f, step, 0.5f);
      std::vector<float> got_update = from_device(d_params, n), want_update(n);
      for (size_t i = 0; i < n; ++i) {
        got_update[i] -= params[i];
        want_update[i] = want_params[i] - params[i];
      }
      std::string where = "n=" + std::to_string(n) + " step=" + std::to_string(step);
      EXPECT_LT(relative_error(got_update, want_update), kTolerance) << where;
      EXPECT_LT(relative_error(from_device(d_m, n), m), kTolerance) << where;
      EXPECT_LT(relative_error(from_device(d_v, n), v), kTolerance) << where;
    }
}

}  // namespace
}  // namespace attnscope
