// baseline-specific checks (the generic ones are in test_variants.cpp): what a layer keeps
// for backward (Q/K/V per head, P, merged O) against the CPU reference, P's shape
// (rows sum to 1, exact zeros above the diagonal), rows longer than the softmax
// work-group, `attnscope check` failing on a broken kernel, the parameter table and the
// cost formulas at a shape computed by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <vector>

#include "model/attention/baseline.hpp"
#include "model/attention/common_reference.hpp"
#include "model/reference/layers.hpp"
#include "model/registry.hpp"
#include "model/variant_check.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using namespace testing;

// What forward leaves in the activations, downloaded.
struct KeptTensors {
  std::vector<float> qkvr, probs, att;
};

KeptTensors run_forward_and_download(BaselineAttention& v, const AttentionDims& dims,
                                     const VariantInputs& in) {
  Runtime& rt = shared_runtime();
  std::vector<DeviceBuffer> param_buffers;
  std::vector<cl::Buffer> params;
  for (const auto& p : in.params) {
    param_buffers.push_back(to_device(p));
    params.push_back(param_buffers.back());
  }
  DeviceBuffer x = to_device(in.x), out = testing::poisoned(in.x.size());
  auto acts = v.allocate(shared_ops(), dims);
  auto& kept = static_cast<BaselineActivations&>(*acts);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (DeviceBuffer* b : {&kept.qkvr, &kept.probs, &kept.att}) rt.fill(*b, nan, b->floats());
  v.forward({shared_ops(), dims, StepContext{}, params, x, kept}, out);
  return {from_device(kept.qkvr, kept.qkvr.floats()), from_device(kept.probs, kept.probs.floats()),
          from_device(kept.att, kept.att.floats())};
}

// The reference's Q, K, V laid out as the device keeps them: (3, B, H, T, d).
std::vector<float> reference_qkvr(const std::vector<float>& qkv, const AttentionDims& dims) {
  const int B = dims.B, T = dims.T, H = dims.H, d = dims.head_size(), C = dims.C;
  std::vector<float> qkvr(qkv.size());
  for (int p = 0; p < 3; ++p)
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < H; ++h)
        for (int t = 0; t < T; ++t)
          for (int c = 0; c < d; ++c)
            qkvr[((((size_t(p) * B + b) * H + h) * T + t) * d) + c] =
                qkv[(size_t(b) * T + t) * 3 * C + p * C + h * d + c];
  return qkvr;
}

class BaselineKept : public ::testing::TestWithParam<AttentionDims> {};

TEST_P(BaselineKept, ActivationsMatchReferenceAndPIsCausal) {
  const AttentionDims dims = GetParam();
  const int N = dims.B * dims.T, C = dims.C, T = dims.T;
  BaselineAttention v(AttentionOptions{});
  v.resolve(dims);
  const VariantInputs in = random_variant_inputs(v, dims, 31);
  const KeptTensors kept = run_forward_and_download(v, dims, in);

  std::vector<float> qkv(size_t(N) * 3 * C), att(size_t(N) * C);
  std::vector<float> probs(size_t(dims.B) * dims.H * T * T);
  reference::matmul_forward(qkv.data(), in.x.data(), in.params[0].data(), in.params[1].data(), N,
                            C, 3 * C);
  const auto heads = reference::split_qkv(qkv.data(), C);
  reference::ExactAttentionShape shape{dims.B, T, dims.H, dims.head_size()};
  reference::exact_attention_forward({att.data(), C}, probs.data(), nullptr, heads.q, heads.k,
                                     heads.v, shape);
  EXPECT_LT(relative_error(kept.qkvr, reference_qkvr(qkv, dims)), 1e-4);
  EXPECT_LT(relative_error(kept.probs, probs), 1e-4);
  EXPECT_LT(relative_error(kept.att, att), 1e-4);

  for (size_t row = 0; row < kept.probs.size() / T; ++row) {
    const int i = int(row % T);
    double sum = 0;
    for (int j = 0; j < T; ++j) {
      const float p = kept.probs[row * T + j];
      if (j > i) {
        ASSERT_EQ(p, 0.f) << "row " << row << " column " << j << " above the diagonal";
      }
      ASSERT_GE(p, 0.f);
      sum += p;
    }
    ASSERT_NEAR(sum, 1.0, 1e-5) << "row " << row;
  }
}

// T = 200 makes rows longer than the softmax work-group (128 where the device allows);
// head size 6 takes the head permutations' one-float path (the others move float4s).
INSTANTIATE_TEST_SUITE_P(Shapes, BaselineKept,
                         ::testing::Values(AttentionDims{2, 37, 64, 4}, AttentionDims{1, 1, 32, 2},
                                           AttentionDims{1, 200, 32, 2},
                                           AttentionDims{2, 9, 18, 3}));

TEST(Baseline, LongRowsMatchReference) {
  VariantCheckCase c;
  c.dims = {1, 200, 32, 2};
  c.seed = 5;
  const VariantCheckResult r = check_variant(shared_ops(), "baseline", c);
  EXPECT_TRUE(r.passed) << format_check_result(r);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// `attnscope check` must catch a causality leak: a copy of the kernels whose softmax lets
// each query see one future key, read through ATTNSCOPE_KERNEL_DIR, fails with exit 1.
TEST(Baseline, CheckCommandFailsOnALeakingSoftmax) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(::testing::TempDir()) / "attnscope_leaking_kernels";
  fs::remove_all(dir);
  fs::copy(fs::path(ATTNSCOPE_SOURCE_DIR) / "cl_kernels", dir, fs::copy_options::recursive);
  const fs::path file = dir / "attention" / "baseline.cl";
  std::string source = read_text(file.string());
  const std::string mask = "for (int j = lid; j <= i; j += SOFTMAX_WG)";
  ASSERT_NE(source.find(mask), std::string::npos) << "baseline.cl changed: update this test";
  for (size_t at; (at = source.find(mask)) != std::string::npos;)
    source.replace(at, mask.size(), "for (int j = lid; j <= i + 1 && j < T; j += SOFTMAX_WG)");
  const std::string write = "s[j] = j <= i ?";
  ASSERT_NE(source.find(write), std::string::npos) << "baseline.cl changed: update this test";
  source.replace(source.find(write), write.size(), "s[j] = j <= i + 1 ?");
  std::ofstream(file) << source;

  setenv("ATTNSCOPE_KERNEL_DIR", dir.c_str(), 1);
  std::string output;
  const int code = testing::run_attnscope("check --variant baseline", &output);
  unsetenv("ATTNSCOPE_KERNEL_DIR");
  fs::remove_all(dir);
  EXPECT_EQ(code, 1) << output;
  EXPECT_NE(output.find("FAIL"), std::string::npos) << output;
}

TEST(Baseline, ParametersAreLlmcsAttentionTensors) {
  const auto specs = make_variant("baseline", {})->parameters({1, 1, 48, 4});
  ASSERT_EQ(specs.size(), 4u);
  EXPECT_EQ(specs[0].name, "qkvw");
  EXPECT_EQ(specs[0].shape, std::vector<size_t>({144, 48}));
  EXPECT_EQ(specs[0].init, Init::kNormal);
  EXPECT_TRUE(specs[0].weight_decay);
  EXPECT_EQ(specs[1].name, "qkvb");
  EXPECT_EQ(specs[1].shape, std::vector<size_t>({144}));
  EXPECT_EQ(specs[1].init, Init::kZero);
  EXPECT_FALSE(specs[1].weight_decay);
  EXPECT_EQ(specs[2].name, "attprojw");
  EXPECT_EQ(specs[2].shape, std::vector<size_t>({48, 48}));
  EXPECT_EQ(specs[2].init, Init::kResidualProjection);
  EXPECT_TRUE(specs[2].weight_decay);
  EXPECT_EQ(specs[3].name, "attprojb");
  EXPECT_EQ(specs[3].shape, std::vector<size_t>({48}));
  EXPECT_EQ(specs[3].init, Init::kZero);
  EXPECT_FALSE(specs[3].weight_decay);
}

// B=2, T=4, C=8, H=2 (d=4), by hand:
//   projections: 2·(B·T)·C·3C + 2·(B·T)·C·C = 2·8·8·24 + 2·8·8·8 = 3072 + 1024 = 4096
//   causal pairs B·H·T(T+1)/2 = 2·2·10 = 40; all pairs B·H·T² = 64
//   QKᵀ + PV: 2 products · 2 FLOPs · d = 16 per pair → model 640, executed 1024
//   saved: Q,K,V 3·B·T·C = 192, P 64, O 64 floats → 320 · 4 bytes
TEST(Baseline, CostAtAShapeComputedByHand) {
  const AttentionCost cost = make_variant("baseline", {})->cost({2, 4, 8, 2});
  EXPECT_DOUBLE_EQ(cost.model_flops_forward, 4096 + 640);
  EXPECT_DOUBLE_EQ(cost.executed_flops_forward, 4096 + 1024);
  EXPECT_DOUBLE_EQ(cost.model_flops_backward, 2 * (4096 + 640));
  EXPECT_DOUBLE_EQ(cost.executed_flops_backward, 2 * (4096 + 1024));
  EXPECT_DOUBLE_EQ(cost.saved_bytes, 1280);
}

TEST(Baseline, InfoNamesTheVariantAndItsPapers) {
  const VariantInfo info = make_variant("baseline", {})->info();
  EXPECT_EQ(info.name, "baseline");
  EXPECT_NE(info.summary.find("(B,H,T,T)"), std::string::npos);
  EXPECT_NE(info.paper.find("Vaswani"), std::string::npos);
  EXPECT_NE(info.paper.find("Radford"), std::string::npos);
}

}  // namespace
}  // namespace attnscope
