// mla: multi-head latent attention. Device against its CPU reference at several latent
// sizes; and a property that pins down the up-projections: with the latent c a permutation
// of x plus a bias (d_c = C) and W_uk, W_uv taken from baseline's W_k, W_v through that
// permutation, mla computes exactly baseline's function, so its output, dx and the shared
// parameters' gradients equal baseline's, and its up-projection gradient is baseline's
// dW_k, dW_v permuted plus the bias term. A transposed, swapped or misplaced W_uk/W_uv
// (or latent) fails it.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "host/runtime/error.hpp"
#include "model/registry.hpp"
#include "model/variant_check.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using namespace testing;


struct MlaCase {
  AttentionDims dims;
  int latent_dim;  // 0: the default, 4·head size
};

class MlaMatchesReference : public ::testing::TestWithParam<MlaCase> {};

TEST_P(MlaMatchesReference, ForwardAndEveryGradient) {
  VariantCheckCase c;
  c.dims = GetParam().dims;
  c.options.values["latent_dim"] = GetParam().latent_dim;
  c.seed = testing::test_rng()();
  const VariantCheckResult r = check_variant(shared_ops(), "mla", c);
  EXPECT_TRUE(r.passed) << format_check_result(r);
  EXPECT_EQ(r.dparam_errors.size(), 7u);
}

// T = 1; T a multiple of no tile; d_c below the head size (7), the default 4·d, above C
// (200); head sizes 16, 24 and 128.
INSTANTIATE_TEST_SUITE_P(Shapes, MlaMatchesReference,
                         ::testing::Values(MlaCase{{1, 1, 64, 4}, 16}, MlaCase{{2, 37, 64, 4}, 0},
                                           MlaCase{{1, 45, 72, 3}, 7},
                                           MlaCase{{1, 33, 128, 1}, 200}));

// ---------------------------------------------------------------- equal to baseline

// Rows [row0, row0 + rows) of a row-major matrix with `cols` columns.
std::vector<float> rows_of(const std::vector<float>& m, size_t row0, size_t rows, size_t cols) {
  return std::vector<float>(m.begin() + row0 * cols, m.begin() + (row0 + rows) * cols);
}

TEST(MlaVariant, EqualsBaselineWhenTheLatentIsPermutedX) {
  const AttentionDims dims{2, 29, 64, 4};
  const size_t C = dims.C;
  AttentionOptions options;
  options.values["latent_dim"] = dims.C;
  auto mla = make_variant("mla", options), baseline = make_variant("baseline", {});
  mla->resolve(dims);
  baseline->resolve(dims);

  // Baseline: {qkvw (3C,C), qkvb (3C), attprojw, attprojb}, random.
  VariantInputs base = random_variant_inputs(*baseline, dims, testing::test_rng()());
  std::vector<float>& qkvw = base.params[0];
  std::vector<float>& qkvb = base.params[1];
  std::vector<size_t> perm(C);  // latent channel r carries x channel perm[r]
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), testing::test_rng());
  const std::vector<float> beta = testing::random_vector(C, 0.3f);  // b_dkv

  // mla: {qw, qb, dkvw (d_c,C), dkvb, ukvw (2C,d_c), attprojw, attprojb}.
  std::vector<float> dkvw(C * C, 0.f), ukvw(2 * C * C);
  for (size_t r = 0; r < C; ++r) dkvw[r * C + perm[r]] = 1.f;  // c = x[perm] + β
  for (size_t o = 0; o < 2 * C; ++o) {   // K|V row o: W_k|W_v row o through the permutation,
    double bias = 0;                      // and the bias it makes of β becomes baseline's b_k|b_v
    for (size_t r = 0; r < C; ++r) {
      ukvw[o * C + r] = qkvw[(C + o) * C + perm[r]];
      bias += double(ukvw[o * C + r]) * beta[r];
    }
    qkvb[C + o] = float(bias);
  }
  VariantInputs ours;
  ours.x = base.x;
  ours.dout = base.dout;
  ours.params = {rows_of(qkvw, 0, C, C), rows_of(qkvb, 0, C, 1), dkvw, beta, ukvw,
                 base.params[2], base.params[3]};

  const VariantOutputs theirs = run_variant_on_device(shared_ops(), *baseline, dims, {}, base);
  for (bool device : {true, false}) {
    const VariantOutputs got = device ? run_variant_on_device(shared_ops(), *mla, dims, {}, ours)
                                      : run_variant_reference(*mla, dims, {}, ours);
    const std::string where = device ? " (device)" : " (reference)";
    EXPECT_LT(relative_error(got.out, theirs.out), kTolerance) << "out" << where;
    EXPECT_LT(relative_error(got.dx, theirs.dx), kTolerance) << "dx" << where;
    EXPECT_LT(relative_error(got.dparams[0], rows_of(theirs.dparams[0], 0, C, C)), kTolerance)
        << "dW_q" << where;
    EXPECT_LT(relative_error(got.dparams[1], rows_of(theirs.dparams[1], 0, C, 1)), kTolerance)
        << "db_q" << where;
    EXPECT_LT(relative_error(got.dparams[5], theirs.dparams[2]), kTolerance) << "dW_o" << where;
    EXPECT_LT(relative_error(got.dparams[6], theirs.dparams[3]), kTolerance) << "db_o" << where;
    // dW_uk[o][r] = Σ_n dK[n][o]·c[n][r] = dW_k[o][perm[r]] + β[r]·db_k[o]; likewise V.
    std::vector<float> expected(2 * C * C);
    for (size_t o = 0; o < 2 * C; ++o)
      for (size_t r = 0; r < C; ++r)
        expected[o * C + r] = float(double(theirs.dparams[0][(C + o) * C + perm[r]]) +
                                    double(beta[r]) * theirs.dparams[1][C + o]);
    EXPECT_LT(relative_error(got.dparams[4], expected), kTolerance) << "dW_ukv" << where;
  }
}

// ---------------------------------------------------------------- options and cost

TEST(MlaVariant, LatentDimDefaultsToFourHeadSizesAndRejectsNegatives) {
  const AttentionDims dims{1, 8, 64, 4};
  auto defaulted = make_variant("mla", {});
  defaulted->resolve(dims);
  EXPECT_EQ(defaulted->describe_options(), "latent_dim=64");
  EXPECT_EQ(defaulted->parameters(dims)[2].shape, (std::vector<size_t>{64, 64}));
  AttentionOptions options;
  options.values["latent_dim"] = 7;
  auto seven = make_variant("mla", options);
  seven->resolve(dims);
  EXPECT_EQ(seven->parameters(dims)[4].shape, (std::vector<size_t>{128, 7}));
  options.values["latent_dim"] = -3;
  try {
    make_variant("mla", options)->resolve(dims);
    FAIL() << "a negative --latent-dim was accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--latent-dim"), std::string::npos) << e.what();
  }
}

// mla's cost is flash's with the fused W_qkv (C→3C) replaced by W_q (C→C), W_dkv (C→d_c)
// and the up-projection (d_c→2C); the attention core is the same.
TEST(MlaVariant, CostCountsTheLatentProjections) {
  const AttentionDims dims{2, 64, 96, 3};
  AttentionOptions options;
  options.values["latent_dim"] = 40;
  auto mla = make_variant("mla", options), flash = make_variant("flash", {});
  mla->resolve(dims);
  flash->resolve(dims);
  const double N = dims.B * dims.T, C = dims.C, dc = 40;
  const double extra = 2 * N * C * dc + 2 * N * dc * 2 * C - 2 * N * C * 2 * C;
  const AttentionCost a = mla->cost(dims), b = flash->cost(dims);
  EXPECT_DOUBLE_EQ(a.model_flops_forward - b.model_flops_forward, extra);
  EXPECT_DOUBLE_EQ(a.model_flops_backward - b.model_flops_backward, 2 * extra);
  EXPECT_DOUBLE_EQ(a.executed_flops_forward - b.executed_flops_forward, extra);
  EXPECT_DOUBLE_EQ(a.executed_flops_backward - b.executed_flops_backward, 2 * extra);
  // Q, c, K|V, O, L
  EXPECT_DOUBLE_EQ(a.saved_bytes, 4 * (N * C + N * dc + 2 * N * C + N * C + dims.B * dims.H * dims.T));
}

}  // namespace
}  // namespace attnscope
