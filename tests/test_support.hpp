// Helpers shared by the tests: one process-wide Runtime (so every OpenCL program is
// compiled once per test executable), random inputs, poisoned outputs, error norms,
// finite differences, and checks of error messages. A test file says
// `using namespace testing;` inside attnscope to use them unqualified.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "host/runtime/runtime.hpp"
#include "model/ops.hpp"

namespace attnscope::testing {

// The device under test: ATTNSCOPE_TEST_DEVICE (a --device spec) or the default.
Runtime& shared_runtime();
// Ops on it: fp32, the split (bitwise reproducible) attention backward.
Ops& shared_ops();

// Fresh random values, N(0, scale), from test_rng().
std::vector<float> random_vector(size_t n, float scale = 1.f);
// The generator of every test input. Each test starts it from (the process's seed, the
// test's full name), so one test replays alone under --gtest_filter. The seed is
// ATTNSCOPE_TEST_SEED where set, else drawn from std::random_device; a failed test prints
// "ATTNSCOPE_TEST_SEED=N" to replay it.
std::mt19937_64& test_rng();
uint64_t test_seed();

// A device buffer filled from host data / poisoned with NaN so unwritten outputs show.
DeviceBuffer to_device(const std::vector<float>& host);
DeviceBuffer poisoned(size_t count);
std::vector<float> from_device(const cl::Buffer& buffer, size_t count);

// Device results against a CPU reference that accumulates in double: fp32 rounding
// stays well below this relative error; a wrong index or a missed term does not.
constexpr double kTolerance = 1e-4;

// ‖a − b‖ / ‖b‖, computed in double; NaN anywhere gives +inf.
double relative_error(const std::vector<float>& a, const std::vector<float>& b);
// Same size and the same bits (run-to-run determinism).
bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b);

// Σ out·dout: the scalar whose gradient a backward pass computes for upstream dout.
double weighted_sum(const std::vector<float>& out, const std::vector<float>& dout);
// The derivative of objective() along a random direction of `tensor` (one of its inputs),
// by central differences at h = 2e-3 and 1e-3 combined by Richardson's extrapolation
// (error O(h^4)), against `gradient`'s analytic one along the same direction, to 2e-3
// relative. Leaves `tensor` as it found it. name labels a failure.
void expect_directional_derivative(const std::function<double()>& objective,
                                   std::vector<float>& tensor, const std::vector<float>& gradient,
                                   const std::string& name);

// Runs f and expects an exception of type E whose message is one line holding every piece.
template <class E>
void expect_error(const std::function<void()>& f, const std::vector<std::string>& pieces) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one mentioning " << pieces.front();
  } catch (const E& e) {
    const std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    for (const auto& piece : pieces) EXPECT_NE(message.find(piece), std::string::npos) << message;
  }
}

// ATTNSCOPE_DEVICE_LIMITS that make PoCL plan as an NVIDIA H200 does (local memory,
// work-group size, compute units, GPU type, its GEMM tuning entries).
inline const char* const kH200Limits =
    "local_mem=49152,work_group=1024,compute_units=132,type=gpu,tuning=NVIDIA H200";

// An empty directory of the system's temporary directory, named for the test and this
// process (so that tests running in parallel never share one).
std::filesystem::path fresh_test_dir(const std::string& name);

// Runs the attnscope binary with arguments; returns exit code, captures stdout+stderr.
// device_limits, when given, is passed as ATTNSCOPE_DEVICE_LIMITS.
int run_attnscope(const std::string& args, std::string* output = nullptr,
                  const std::string& device_limits = "");

}  // namespace attnscope::testing
