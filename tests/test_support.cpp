#include "tests/test_support.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>

namespace attnscope::testing {

Runtime& shared_runtime() {
  static Runtime runtime([] {
    const char* spec = std::getenv("ATTNSCOPE_TEST_DEVICE");
    return std::string(spec ? spec : "");
  }());
  return runtime;
}

// The split attention backward on every device (auto would fuse it on an NVIDIA GPU):
// the suite's determinism tests expect bitwise reproducible kernels; the fused backward has
// tests of its own (test_variant_exact.cpp).
Ops& shared_ops() {
  static Ops ops(shared_runtime(), Precision::fp32, AttentionBackward::split);
  return ops;
}

uint64_t test_seed() {
  static const uint64_t seed = [] {
    const char* fixed = std::getenv("ATTNSCOPE_TEST_SEED");
    if (!fixed || !*fixed) return (uint64_t(std::random_device{}()) << 32) ^ std::random_device{}();
    char* end = nullptr;
    const unsigned long long value = std::strtoull(fixed, &end, 10);
    if (*end != '\0') {
      std::fprintf(stderr, "ATTNSCOPE_TEST_SEED: '%s' is not a non-negative integer\n", fixed);
      std::exit(2);
    }
    return uint64_t(value);
  }();
  return seed;
}

std::mt19937_64& test_rng() {
  static std::mt19937_64 rng(test_seed());
  return rng;
}

namespace {

// FNV-1a: the same on every build, unlike std::hash.
uint64_t name_hash(const std::string& name) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::string full_name(const ::testing::TestInfo& info) {
  return std::string(info.test_suite_name()) + "." + info.name();
}

class SeedListener : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo& info) override {
    test_rng().seed(test_seed() ^ name_hash(full_name(info)));
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed())
      std::printf("[   SEED   ] %s: replay its random inputs with ATTNSCOPE_TEST_SEED=%llu\n",
                  full_name(info).c_str(), (unsigned long long)test_seed());
  }
};

// Installed when the test executable starts (gtest_main owns main()).
const bool kSeedListenerInstalled = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new SeedListener);
  return true;
}();

}  // namespace

std::vector<float> random_vector(size_t n, float scale) {
  std::normal_distribution<float> normal(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = normal(test_rng());
  return v;
}

DeviceBuffer to_device(const std::vector<float>& host) {
  Runtime& rt = shared_runtime();
  DeviceBuffer buf = rt.alloc_floats(host.size(), "test input");
  rt.upload(buf, host.data(), host.size() * sizeof(float));
  return buf;
}

DeviceBuffer poisoned(size_t count) {
  Runtime& rt = shared_runtime();
  DeviceBuffer buf = rt.alloc_floats(count, "test output");
  rt.fill(buf, std::numeric_limits<float>::quiet_NaN(), count);
  return buf;
}

std::vector<float> from_device(const cl::Buffer& buffer, size_t count) {
  return shared_runtime().download_vector<float>(buffer, count);
}

double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return std::numeric_limits<double>::infinity();
    double d = double(a[i]) - double(b[i]);
    num += d * d;
    den += double(b[i]) * double(b[i]);
  }
  if (den == 0) return std::sqrt(num);
  return std::sqrt(num / den);
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

double weighted_sum(const std::vector<float>& out, const std::vector<float>& dout) {
  double sum = 0;
  for (size_t i = 0; i < out.size(); ++i) sum += double(out[i]) * dout[i];
  return sum;
}

void expect_directional_derivative(const std::function<double()>& objective,
                                   std::vector<float>& tensor, const std::vector<float>& gradient,
                                   const std::string& name) {
  const std::vector<float> base = tensor, direction = random_vector(tensor.size());
  double analytic = 0;
  for (size_t i = 0; i < tensor.size(); ++i) analytic += double(gradient[i]) * direction[i];
  auto at = [&](double step) {
    for (size_t i = 0; i < tensor.size(); ++i) tensor[i] = float(base[i] + step * direction[i]);
    return objective();
  };
  auto central = [&](double h) { return (at(h) - at(-h)) / (2 * h); };
  // Richardson's extrapolation cancels the central difference's h^2 term: along a random
  // direction of a whole weight matrix the attention logits move fast enough that this
  // term alone reached 4e-3 relative at h = 1e-3 (lsh's qvw, CI seed 18063454454638257665).
  const double h = 2e-3;
  const double numeric = (4 * central(h / 2) - central(h)) / 3;
  tensor = base;
  EXPECT_NEAR(numeric, analytic, 2e-3 * std::max(1.0, std::abs(analytic))) << name;
}

int run_attnscope(const std::string& args, std::string* output, const std::string& device_limits) {
  // Quoted: a limit such as tuning=NVIDIA H200 holds a space.
  const std::string env = device_limits.empty() ? "" : "ATTNSCOPE_DEVICE_LIMITS='" + device_limits + "' ";
  std::string cmd = env + std::string(ATTNSCOPE_BINARY) + " " + args + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  if (!pipe) return -1;
  std::array<char, 4096> buf{};
  std::string text;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) text.append(buf.data(), n);
  int status = pclose(pipe.release());
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::filesystem::path fresh_test_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() / ("attnscope_test_" + name + "_" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace attnscope::testing
