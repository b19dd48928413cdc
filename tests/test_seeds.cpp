// The test inputs' seed (tests/test_support.hpp): ATTNSCOPE_TEST_SEED replays a test's
// random inputs, and a failed test prints the seed that does. The replays are child runs
// of this executable's helper test.
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <memory>
#include <regex>
#include <string>

#include "test_support.hpp"

namespace attnscope {
namespace {

// Run as a child only (ATTNSCOPE_TEST_SEED_CHILD set): prints its first random inputs,
// and fails on purpose where the variable says "fail".
TEST(TestSeedChild, PrintsItsInputs) {
  const char* mode = std::getenv("ATTNSCOPE_TEST_SEED_CHILD");
  if (!mode) GTEST_SKIP() << "a helper of TestSeed, run as a child";
  const std::vector<float> v = testing::random_vector(3);
  std::printf("inputs %.9g %.9g %.9g\n", v[0], v[1], v[2]);
  if (std::string(mode) == "fail") ADD_FAILURE() << "failed on purpose";
}

std::string self_path() {
  std::array<char, 4096> path{};
  const ssize_t n = readlink("/proc/self/exe", path.data(), path.size() - 1);
  return n > 0 ? std::string(path.data(), size_t(n)) : "";
}

// The child's output: its inputs line and, where it failed, the seed line.
std::string run_child(const std::string& env) {
  const std::string cmd = env + " " + self_path() + " --gtest_filter=TestSeedChild.* 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  std::string text;
  std::array<char, 4096> buf{};
  for (size_t n; pipe && (n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0;) text.append(buf.data(), n);
  return text;
}

std::string match(const std::string& text, const std::string& pattern) {
  std::smatch m;
  return std::regex_search(text, m, std::regex(pattern)) ? m[1].str() : "";
}

TEST(TestSeed, AFixedSeedReplaysTheInputsAndAFailurePrintsIt) {
  const std::string inputs = "inputs ([-0-9.e ]+)";
  const std::string first = match(run_child("ATTNSCOPE_TEST_SEED_CHILD=1 ATTNSCOPE_TEST_SEED=42"), inputs);
  ASSERT_FALSE(first.empty());
  EXPECT_EQ(match(run_child("ATTNSCOPE_TEST_SEED_CHILD=1 ATTNSCOPE_TEST_SEED=42"), inputs), first);
  EXPECT_NE(match(run_child("ATTNSCOPE_TEST_SEED_CHILD=1 ATTNSCOPE_TEST_SEED=43"), inputs), first);

  // A failure under a drawn seed names it, and that seed replays the same inputs.
  const std::string failed = run_child("ATTNSCOPE_TEST_SEED_CHILD=fail");
  const std::string seed = match(failed, "PrintsItsInputs: replay its random inputs with ATTNSCOPE_TEST_SEED=([0-9]+)");
  ASSERT_FALSE(seed.empty()) << failed;
  EXPECT_EQ(match(run_child("ATTNSCOPE_TEST_SEED_CHILD=1 ATTNSCOPE_TEST_SEED=" + seed), inputs),
            match(failed, inputs));
  EXPECT_EQ(match(run_child("ATTNSCOPE_TEST_SEED_CHILD=1"), "PrintsItsInputs: replay.*=([0-9]+)"), "")
      << "a passing test prints no seed";
}

}  // namespace
}  // namespace attnscope
