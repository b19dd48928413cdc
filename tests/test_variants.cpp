// Generic tests of every registered attention variant (a new registry line is tested
// here with no other change): device against CPU reference on the standard check cases,
// the reference's backward against finite differences of its forward, causality of the
// device kernels, run-to-run determinism; plus the dump of `attnscope check` and the npy
// writer it uses. Shapes are small: this executable runs every variant on PoCL in CI.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/runtime/error.hpp"
#include "model/npy.hpp"
#include "model/registry.hpp"
#include "model/variant_check.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using namespace testing;

std::string variant_test_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

// A shape small enough for many reference evaluations, with options scaled so windows,
// chunks, buckets and groups all take effect.
VariantCheckCase small_case(int B, int T, int C, int H) {
  VariantCheckCase c;
  c.dims = {B, T, C, H};
  c.options.values["window"] = 4;
  c.options.values["chunk"] = 4;
  c.options.values["buckets"] = 4;
  c.options.values["kv_heads"] = H > 1 ? H / 2 : 1;
  c.options.seed = 77;
  c.seed = 4242;
  c.step = 3;
  return c;
}

std::unique_ptr<AttentionVariant> resolved_variant(const std::string& name,
                                                   const VariantCheckCase& c) {
  auto variant = make_variant(name, c.options);
  variant->resolve(c.dims);
  return variant;
}

double norm(const std::vector<float>& a) {
  double sum = 0;
  for (float v : a) sum += double(v) * v;
  return std::sqrt(sum);
}

// ---------------------------------------------------------------- device vs reference

class VariantCheck : public ::testing::TestWithParam<std::tuple<std::string, size_t>> {};

TEST_P(VariantCheck, DeviceMatchesReference) {
  const auto& [name, index] = GetParam();
  const VariantCheckResult r = check_variant(shared_ops(), name, standard_check_cases()[index]);
  EXPECT_TRUE(r.passed) << format_check_result(r);
  EXPECT_EQ(r.dparam_errors.size(), make_variant(name, {})->parameters(r.c.dims).size());
}

INSTANTIATE_TEST_SUITE_P(
    AllVariants, VariantCheck,
    ::testing::Combine(::testing::ValuesIn(variant_names()),
                       ::testing::Range(size_t(0), standard_check_cases().size())),
    [](const ::testing::TestParamInfo<std::tuple<std::string, size_t>>& info) {
      return std::get<0>(info.param) + "_case" + std::to_string(std::get<1>(info.param));
    });

class VariantTest : public ::testing::TestWithParam<std::string> {};

// ---------------------------------------------------------------- reference gradients

// loss = Σ out·r in double, out from reference_forward.
double reference_loss(const AttentionVariant& v, const VariantCheckCase& c,
                      const VariantInputs& in, const std::vector<float>& r) {
  std::vector<const float*> params;
  for (const auto& p : in.params) params.push_back(p.data());
  std::vector<float> out(r.size());
  v.reference_forward({c.dims, StepContext{c.step}, params, in.x.data()}, out.data());
  double loss = 0;
  for (size_t i = 0; i < out.size(); ++i) loss += double(out[i]) * r[i];
  return loss;
}

// Central difference of reference_loss in coordinate i of `tensor` (a member of in), or
// nothing where the forward is discontinuous there: LSH's hashing is a constant of the
// step, so a perturbation can flip a bucket, which shows as one-sided differences that
// disagree wildly. A smaller step is tried before giving up; the backward has no say.
std::optional<double> central_difference(const AttentionVariant& v, const VariantCheckCase& c,
                                         VariantInputs& in, std::vector<float>& tensor, size_t i,
                                         const std::vector<float>& r, double base, double scale) {
  const float original = tensor[i];
  for (double eps : {1e-2, 1e-3}) {
    tensor[i] = float(original + eps);
    const double up = reference_loss(v, c, in, r), h_up = double(tensor[i]) - original;
    tensor[i] = float(original - eps);
    const double down = reference_loss(v, c, in, r), h_down = original - double(tensor[i]);
    tensor[i] = original;
    const double forward = (up - base) / h_up, backward = (base - down) / h_down;
    if (std::abs(forward - backward) <= 0.2 * (std::abs(forward + backward) / 2 + scale))
      return (up - down) / (h_up + h_down);
  }
  return std::nullopt;
}

// Finite differences against `analytic` at a few dozen coordinates of `tensor`.
void expect_gradient_matches(const AttentionVariant& v, const VariantCheckCase& c,
                             VariantInputs& in, std::vector<float>& tensor,
                             const std::vector<float>& analytic, const std::vector<float>& r,
                             const std::string& what) {
  double analytic_rms = 0;
  for (float g : analytic) analytic_rms += double(g) * g / analytic.size();
  analytic_rms = std::sqrt(analytic_rms);
  ASSERT_GT(analytic_rms, 0) << what << ": the analytic gradient is identically zero";
  const double base = reference_loss(v, c, in, r);
  std::mt19937_64 rng(tensor.size());
  const size_t samples = std::min<size_t>(24, tensor.size());
  std::vector<float> numeric, expected;
  for (size_t s = 0; s < samples; ++s) {
    const size_t i = samples == tensor.size() ? s : rng() % tensor.size();
    if (auto d = central_difference(v, c, in, tensor, i, r, base, analytic_rms)) {
      numeric.push_back(float(*d));
      expected.push_back(analytic[i]);
    }
  }
  ASSERT_GE(numeric.size(), samples * 3 / 4) << what << ": too many discontinuous coordinates";
  EXPECT_LT(relative_error(numeric, expected), 1e-3) << what;
}

TEST_P(VariantTest, ReferenceBackwardMatchesFiniteDifferences) {
  const VariantCheckCase c = small_case(2, 6, 16, 2);
  auto v = resolved_variant(GetParam(), c);
  VariantInputs in = random_variant_inputs(*v, c.dims, c.seed);
  std::vector<float> r = in.dout;  // the loss weights are the upstream gradient
  const VariantOutputs grads = run_variant_reference(*v, c.dims, StepContext{c.step}, in);
  expect_gradient_matches(*v, c, in, in.x, grads.dx, r, "dx");
  const auto specs = v->parameters(c.dims);
  for (size_t p = 0; p < specs.size(); ++p)
    expect_gradient_matches(*v, c, in, in.params[p], grads.dparams[p], r, "d" + specs[p].name);
}

// ---------------------------------------------------------------- causality

// Outputs at positions ≤ t must not move when x changes after t; with dout zero after t,
// neither may the parameter gradients nor dx at ≤ t, and dx after t must be zero.
TEST_P(VariantTest, DeviceKernelsAreCausal) {
  const VariantCheckCase c = small_case(2, 13, 32, 2);
  const int t = 6, B = c.dims.B, T = c.dims.T, C = c.dims.C;
  auto v = resolved_variant(GetParam(), c);
  VariantInputs in = random_variant_inputs(*v, c.dims, c.seed);
  auto positions = [&](const std::vector<float>& a, bool past) {
    std::vector<float> part;
    for (int b = 0; b < B; ++b)
      for (int s = past ? 0 : t + 1; s < (past ? t + 1 : T); ++s)
        part.insert(part.end(), a.begin() + (size_t(b) * T + s) * C,
                    a.begin() + (size_t(b) * T + s + 1) * C);
    return part;
  };
  for (int b = 0; b < B; ++b)
    std::fill(in.dout.begin() + (size_t(b) * T + t + 1) * C, in.dout.begin() + size_t(b + 1) * T * C, 0.f);
  const VariantOutputs before = run_variant_on_device(shared_ops(), *v, c.dims, {c.step}, in);

  std::mt19937_64 rng(99);
  std::normal_distribution<float> normal(0.f, 3.f);
  for (int b = 0; b < B; ++b)
    for (int s = t + 1; s < T; ++s)
      for (int ch = 0; ch < C; ++ch) in.x[(size_t(b) * T + s) * C + ch] = normal(rng);
  const VariantOutputs after = run_variant_on_device(shared_ops(), *v, c.dims, {c.step}, in);

  const double tol = 1e-6;  // a leak moves them by ~1/T of their size
  EXPECT_LT(relative_error(positions(after.out, true), positions(before.out, true)), tol);
  EXPECT_GT(relative_error(positions(after.out, false), positions(before.out, false)), 1e-2)
      << "perturbing x after t did not change out after t: the test is not testing";
  EXPECT_LT(relative_error(positions(after.dx, true), positions(before.dx, true)), tol);
  EXPECT_LT(norm(positions(after.dx, false)), tol * norm(after.dx)) << "dx after t";
  for (size_t p = 0; p < before.dparams.size(); ++p)
    EXPECT_LT(relative_error(after.dparams[p], before.dparams[p]), tol) << "parameter " << p;
}

// ---------------------------------------------------------------- determinism

TEST_P(VariantTest, SameSeedGivesIdenticalResults) {
  const VariantCheckCase c = small_case(2, 11, 32, 4);
  auto first = resolved_variant(GetParam(), c), second = resolved_variant(GetParam(), c);
  const VariantInputs in = random_variant_inputs(*first, c.dims, c.seed);
  ASSERT_TRUE(bitwise_equal(in.x, random_variant_inputs(*second, c.dims, c.seed).x));
  const VariantOutputs a = run_variant_on_device(shared_ops(), *first, c.dims, {c.step}, in);
  const VariantOutputs b = run_variant_on_device(shared_ops(), *second, c.dims, {c.step}, in);
  EXPECT_TRUE(bitwise_equal(a.out, b.out));
  EXPECT_TRUE(bitwise_equal(a.dx, b.dx));
  for (size_t p = 0; p < a.dparams.size(); ++p) EXPECT_TRUE(bitwise_equal(a.dparams[p], b.dparams[p]));
  const VariantOutputs ra = run_variant_reference(*first, c.dims, {c.step}, in);
  const VariantOutputs rb = run_variant_reference(*second, c.dims, {c.step}, in);
  EXPECT_TRUE(bitwise_equal(ra.out, rb.out));
  EXPECT_TRUE(bitwise_equal(ra.dx, rb.dx));
}

INSTANTIATE_TEST_SUITE_P(AllVariants, VariantTest, ::testing::ValuesIn(variant_names()),
                         variant_test_name);

// ---------------------------------------------------------------- harness pieces

TEST(VariantCheckHarness, StandardCasesCoverTheAwkwardShapes) {
  bool t1 = false, odd_t = false, batch = false, d16 = false, d128 = false;
  for (const auto& c : standard_check_cases()) {
    t1 |= c.dims.T == 1;
    odd_t |= c.dims.T % 2 == 1 && c.dims.T > 16;
    batch |= c.dims.B > 1;
    d16 |= c.dims.head_size() == 16;
    d128 |= c.dims.head_size() == 128;
    EXPECT_LT(c.options.values.at("window"), c.dims.T + 8);
  }
  EXPECT_TRUE(t1 && odd_t && batch && d16 && d128);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Npy, WritesVersion1HeaderAndLittleEndianData) {
  const std::string path = ::testing::TempDir() + "attnscope_npy_test.npy";
  write_npy(path, {2, 3}, std::vector<float>{1, 2, 3, 4, 5, -6.5f});
  const std::string bytes = read_file(path);
  ASSERT_GE(bytes.size(), 10u);
  EXPECT_EQ(bytes.substr(0, 8), std::string("\x93NUMPY\x01\x00", 8));
  const size_t header_len = size_t(uint8_t(bytes[8])) | size_t(uint8_t(bytes[9])) << 8;
  EXPECT_EQ((10 + header_len) % 64, 0u);
  const std::string header = bytes.substr(10, header_len);
  EXPECT_NE(header.find("'descr': '<f4'"), std::string::npos) << header;
  EXPECT_NE(header.find("'fortran_order': False"), std::string::npos) << header;
  EXPECT_NE(header.find("'shape': (2, 3)"), std::string::npos) << header;
  EXPECT_EQ(header.back(), '\n');
  ASSERT_EQ(bytes.size(), 10 + header_len + 6 * sizeof(float));
  float last;
  std::memcpy(&last, bytes.data() + bytes.size() - sizeof(float), sizeof(float));
  EXPECT_EQ(last, -6.5f);

  write_npy(path, {3}, std::vector<int32_t>{7, 8, 9});
  const std::string ints = read_file(path);
  EXPECT_NE(ints.find("'descr': '<i4'"), std::string::npos);
  EXPECT_NE(ints.find("'shape': (3,)"), std::string::npos);
  EXPECT_THROW(write_npy(path, {4}, std::vector<float>{1, 2}), Error);
  std::remove(path.c_str());
}

// The dump must hold exactly what check_variant compared, so a case can be replayed.
TEST(VariantCheckHarness, DumpWritesIndexAndTensors) {
  const std::string dir = ::testing::TempDir() + "attnscope_dump_test";
  std::filesystem::remove_all(dir);
  const VariantCheckCase c = small_case(1, 5, 16, 2);
  const std::string name = variant_names().front();
  const VariantCheckResult r = check_variant(shared_ops(), name, c, dir);
  EXPECT_TRUE(r.passed) << format_check_result(r);
  const auto index = nlohmann::json::parse(read_file(dir + "/index.json"));
  EXPECT_EQ(index["variant"], name);
  EXPECT_EQ(index["seed"], c.seed);
  EXPECT_EQ(index["step"], c.step);
  EXPECT_EQ(index["dims"]["T"], 5);
  EXPECT_EQ(index["shapes"]["x.npy"], std::vector<size_t>({1, 5, 16}));
  const auto specs = make_variant(name, c.options)->parameters(c.dims);
  ASSERT_EQ(index["parameters"].size(), specs.size());
  for (const auto& spec : specs) {
    const std::string file = index["reference"]["grads"][spec.name];
    const std::string bytes = read_file(dir + "/" + file);
    const size_t header = size_t(uint8_t(bytes[8])) | size_t(uint8_t(bytes[9])) << 8;
    EXPECT_EQ(bytes.size(), 10 + header + spec.count() * sizeof(float)) << file;
  }
  const VariantInputs in = random_variant_inputs(*make_variant(name, c.options), c.dims, c.seed);
  const std::string x_bytes = read_file(dir + "/x.npy");
  EXPECT_EQ(0, std::memcmp(x_bytes.data() + x_bytes.size() - in.x.size() * sizeof(float),
                           in.x.data(), in.x.size() * sizeof(float)));
  std::filesystem::remove_all(dir);
}

TEST(CheckCommand, ChecksOneVariantAndRejectsUnknownNames) {
  std::string output;
  const std::string name = variant_names().front();
  EXPECT_EQ(testing::run_attnscope("check --variant " + name, &output), 0) << output;
  size_t passes = 0;
  for (size_t at = output.find("  PASS"); at != std::string::npos; at = output.find("  PASS", at + 1))
    ++passes;
  EXPECT_EQ(passes, standard_check_cases().size()) << output;
  EXPECT_EQ(testing::run_attnscope("check --variant no_such_variant", &output), 2) << output;
  EXPECT_NE(output.find("unknown attention variant"), std::string::npos) << output;
}

// The H200's limits, type and GEMM tuning entries (ATTNSCOPE_DEVICE_LIMITS) make PoCL run
// the tiles and GEMM plans the H200 runs, which check prints: every variant must pass
// with them.
TEST(CheckCommand, AllVariantsPassWithTheH200sTilesAndGemmPlans) {
  std::string output;
  EXPECT_EQ(testing::run_attnscope("check --variant all", &output, testing::kH200Limits), 0)
      << output;
  EXPECT_NE(output.find("GPU, 132 compute units, 48 KiB local memory, work-groups up to 1024, "
                        "GEMM tuning 'NVIDIA H200'"),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("all " + std::to_string(variant_names().size() * standard_check_cases().size()) +
                        " checks passed"),
            std::string::npos)
      << output;
  // The flash family's tiles at head size 64 (README, "Attention tiles"); never the CPU's TM 2.
  for (const std::string family : {"flash", "gqa", "sliding_window", "mla"})
    EXPECT_NE(output.find(family + "  ran attention/" + family +
                          ".cl -DHEAD_SIZE=64 -DTM=4 -DBR=64 -DBC=32 -DTN=4 -DBB=32 -DTNB=2 "
                          "-DTMB=4 "),
              std::string::npos)
        << family << "\n" << output;
  EXPECT_EQ(output.find("-DTM=2 "), std::string::npos) << output;
  // The GPU planner's 64×64 tiles for the projections, and the H200's tuned entry for
  // baseline's batched QKᵀ (nt:b:s-s-s in model/gemm_tuning.json).
  EXPECT_NE(output.find("ran matmul.cl -DTILE_M=64 -DTILE_N=64 -DTILE_K=16 -DWPT_M=4 -DWPT_N=4 "),
            std::string::npos)
      << output;
  EXPECT_NE(output.find("baseline  ran matmul.cl -DTILE_M=64 -DTILE_N=64 -DTILE_K=16 -DWPT_M=8 "
                        "-DWPT_N=4 -DTRANS_A=0 -DTRANS_B=1"),
            std::string::npos)
      << output;
}

// --shape checks one case of the user's size with the user's options.
TEST(CheckCommand, ShapeAndOptionsGiveOneCase) {
  std::string output;
  EXPECT_EQ(testing::run_attnscope("check --variant gqa --shape 2,75,96,6 --kv-heads 3", &output), 0)
      << output;
  EXPECT_NE(output.find("gqa  B2 T75 C96 H6 [kv_heads=3]"), std::string::npos) << output;
  EXPECT_NE(output.find("all 1 checks passed"), std::string::npos) << output;
}

}  // namespace
}  // namespace attnscope
