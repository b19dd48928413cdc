// The CPU reference's threads (model/reference/parallel.hpp): every index runs once, a
// nested call runs serially, a failure comes back to the caller, and the products and exact
// attention the references are built on give the same bits on one thread as on several.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "model/attention/common_reference.hpp"
#include "model/reference/layers.hpp"
#include "model/reference/parallel.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

using reference::parallel_for;
using reference::set_reference_threads;
using namespace testing;

// Sets the reference's thread count for one test and restores the default after it.
struct ReferenceThreads {
  explicit ReferenceThreads(int threads) { set_reference_threads(threads); }
  ~ReferenceThreads() { set_reference_threads(0); }
};

TEST(ParallelFor, EveryIndexOnceAndNestedCallsRunSerially) {
  ReferenceThreads threads(3);
  for (int count : {0, 1, 2, 1000}) {
    std::vector<std::atomic<int>> runs(size_t(count) * 5);
    parallel_for(count, [&](int i) {
      parallel_for(5, [&](int j) { ++runs[size_t(i) * 5 + j]; });  // nested: serial
    });
    for (const auto& r : runs) EXPECT_EQ(r.load(), 1) << "count " << count;
  }
}

TEST(ParallelFor, RethrowsTheFirstFailureAfterEveryThreadStopped) {
  ReferenceThreads threads(4);
  std::atomic<int> running{0};
  EXPECT_THROW(parallel_for(100,
                            [&](int i) {
                              ++running;
                              if (i == 17) {
                                --running;
                                throw std::runtime_error("index 17");
                              }
                              --running;
                            }),
               std::runtime_error);
  EXPECT_EQ(running.load(), 0);
}

// Outputs of the shared references at one thread count, for a bitwise comparison.
std::vector<std::vector<float>> reference_outputs(int threads) {
  ReferenceThreads scoped(threads);
  std::mt19937_64 rng(test_seed());
  auto fixed = [&](size_t n) {  // the same values at every thread count
    std::normal_distribution<float> normal;
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
  };
  std::vector<std::vector<float>> outputs;
  const int M = 37, N = 29, K = 23;
  for (int layout = 0; layout < 4; ++layout) {
    const std::vector<float> a = fixed(size_t(M) * K), b = fixed(size_t(K) * N);
    std::vector<float> c = fixed(size_t(M) * N);  // beta ≠ 0 reads it
    reference::gemm(c.data(), a.data(), b.data(), M, N, K, layout & 1, layout & 2, 0.5f, -1.5f);
    outputs.push_back(c);
  }
  // Groups and a window: the GQA and sliding-window mappings of the tasks.
  const int B = 2, T = 41, H = 4, G = 2, d = 8, C = H * d, kv_C = G * d;
  const reference::ExactAttentionShape shape{B, T, H, d, G, 9};
  const std::vector<float> q = fixed(size_t(B) * T * C), k = fixed(size_t(B) * T * kv_C),
                           v = fixed(size_t(B) * T * kv_C), dout = fixed(size_t(B) * T * C);
  std::vector<float> out(q.size()), probs(size_t(B) * H * T * T), lse(size_t(B) * H * T);
  reference::exact_attention_forward({out.data(), C}, probs.data(), lse.data(), {q.data(), C},
                                     {k.data(), kv_C}, {v.data(), kv_C}, shape);
  std::vector<float> dq = fixed(q.size()), dk = fixed(k.size()), dv = fixed(v.size());
  reference::exact_attention_backward({dq.data(), C}, {dk.data(), kv_C}, {dv.data(), kv_C},
                                      {dout.data(), C}, {q.data(), C}, {k.data(), kv_C},
                                      {v.data(), kv_C}, shape);
  for (auto* t : {&out, &probs, &lse, &dq, &dk, &dv}) outputs.push_back(*t);
  return outputs;
}

TEST(ReferenceThreads, GemmAndExactAttentionGiveTheSameBitsOnOneThreadAndMany) {
  const auto serial = reference_outputs(1), threaded = reference_outputs(5);
  ASSERT_EQ(serial.size(), threaded.size());
  for (size_t i = 0; i < serial.size(); ++i)
    EXPECT_TRUE(bitwise_equal(serial[i], threaded[i])) << "output " << i;
}

}  // namespace
}  // namespace attnscope
