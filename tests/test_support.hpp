// Helpers shared by the tests: one process-wide Runtime (so every OpenCL program is
// compiled once per test executable), random inputs, poisoned outputs, error norms.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "host/runtime.hpp"
#include "model/ops.hpp"

namespace attnscope::testing {

// The device under test: ATTNSCOPE_TEST_DEVICE (a --device spec) or the default.
Runtime& shared_runtime();
Ops& shared_ops();

// Fresh random values, N(0, scale), from a per-call seed sequence.
std::vector<float> random_vector(size_t n, float scale = 1.f);
std::mt19937_64& test_rng();

// A device buffer filled from host data / poisoned with NaN so unwritten outputs show.
DeviceBuffer to_device(const std::vector<float>& host);
DeviceBuffer poisoned(size_t count);
std::vector<float> from_device(const cl::Buffer& buffer, size_t count);

// ‖a − b‖ / ‖b‖, computed in double; NaN anywhere gives +inf.
double relative_error(const std::vector<float>& a, const std::vector<float>& b);

// Runs the attnscope binary with arguments; returns exit code, captures stdout+stderr.
// device_limits, when given, is passed as ATTNSCOPE_DEVICE_LIMITS.
int run_attnscope(const std::string& args, std::string* output = nullptr,
                  const std::string& device_limits = "");

}  // namespace attnscope::testing
