// Bad input on the command line, in the environment and in input files, through the built
// binary: every case must end with one line `attnscope: error: ...` on stderr naming the
// problem and the exit code README's table gives (2 for bad input), before any work runs.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace attnscope {
namespace {

struct Outcome {
  int code = -1;
  std::string err;  // stderr only
};

// Runs `env attnscope args`, stdout discarded.
Outcome run(const std::string& args, const std::string& env = "") {
  const std::string cmd = env + (env.empty() ? "" : " ") + ATTNSCOPE_BINARY + " " + args + " 2>&1 >/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  Outcome o;
  if (!pipe) return o;
  std::array<char, 4096> buf{};
  for (size_t n; (n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0;) o.err.append(buf.data(), n);
  const int status = pclose(pipe.release());
  o.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return o;
}

std::string help_of(const std::string& command) {
  std::string text;
  testing::run_attnscope(command + " --help", &text);
  return text;
}

// One line, `attnscope: error: ` first, holding every piece; the given exit code.
void expect_refused(const std::string& args, int code, const std::vector<std::string>& pieces,
                    const std::string& env = "") {
  const Outcome o = run(args, env);
  SCOPED_TRACE(env + " attnscope " + args);
  EXPECT_EQ(o.code, code) << o.err;
  EXPECT_EQ(o.err.rfind("attnscope: error: ", 0), 0u) << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  for (const auto& piece : pieces) EXPECT_NE(o.err.find(piece), std::string::npos) << o.err;
}

std::vector<std::string> subcommands() {
  const std::string help = help_of("");
  std::vector<std::string> names;
  const std::regex line(R"(\n  ([a-z]+) )");
  const size_t start = help.find("Subcommands:");
  EXPECT_NE(start, std::string::npos) << help;
  for (std::sregex_iterator it(help.begin() + start, help.end(), line), end; it != end; ++it)
    names.push_back((*it)[1]);
  return names;
}

// Item 9 of issue 9: every floating-point option of every command refuses ±inf and nan.
TEST(CommandLine, EveryFloatOptionRefusesNonFiniteValues) {
  std::set<std::string> seen;
  for (const std::string& command : subcommands()) {
    const std::string help = help_of(command);
    const std::regex float_option(R"((--[a-z0-9-]+) FLOAT)");
    for (std::sregex_iterator it(help.begin(), help.end(), float_option), end; it != end; ++it) {
      const std::string option = (*it)[1];
      seen.insert(command + " " + option);
      for (const char* value : {"inf", "-inf", "nan", "NaN", "Infinity"})
        expect_refused(command + " " + option + "=" + value, 2, {option, value});
    }
  }
  // The walk must have found the options the issue named (else it tested nothing).
  for (const char* named : {"train --lr", "train --eps", "train --beta1", "train --weight-decay",
                            "bench --peak-tflops", "bench --idle-seconds", "bench --target-loss",
                            "telemetry --seconds", "gemm --tune-seconds"})
    EXPECT_TRUE(seen.count(named)) << named << " is not a FLOAT option in --help";
}

// Finite values pass the number checks and the command goes on to pick its device.
TEST(CommandLine, FiniteValuesOfFloatOptionsStillParse) {
  const std::vector<std::string> pieces{"--device 'no-such-device' matches no OpenCL device"};
  expect_refused("train --lr 1e-3 --beta1 0 --weight-decay 0 --device no-such-device", 2, pieces);
  expect_refused("bench --val-every 1 --target-loss -1.5 --peak-tflops 0.5 --device no-such-device", 2,
                 pieces);
  expect_refused("telemetry --seconds 0.01 --device no-such-device", 2, pieces);
}

}  // namespace
}  // namespace attnscope
