// `attnscope bench`, `merge`, the plot script and bad command lines, run as a user runs
// them: the binary on the test device with the tiny model. One benchmark of two variants ×
// two repeats is shared by the tests that read its results directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "host/bench.hpp"
#include "host/stats.hpp"
#include "model/atomic_add.hpp"
#include "model/gemm_tuning.hpp"
#include "model/lr_schedule.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;

namespace attnscope {
namespace {

using Row = std::map<std::string, std::string>;

struct Csv {
  std::vector<std::string> columns;
  std::vector<Row> rows;
};

// RFC 4180 fields: quoted cells may hold commas and doubled quotes.
std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> cells(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quoted && c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
      cells.back() += '"';
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (c == ',' && !quoted) {
      cells.emplace_back();
    } else {
      cells.back() += c;
    }
  }
  return cells;
}

// Every row must have exactly the header's cell count: a torn row fails the test.
Csv read_csv(const fs::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  Csv csv;
  std::string line;
  std::getline(in, line);
  csv.columns = split_csv_line(line);
  while (std::getline(in, line)) {
    auto cells = split_csv_line(line);
    EXPECT_EQ(cells.size(), csv.columns.size()) << path << ": " << line;
    Row row;
    for (size_t i = 0; i < cells.size() && i < csv.columns.size(); ++i) row[csv.columns[i]] = cells[i];
    csv.rows.push_back(row);
  }
  return csv;
}

nlohmann::json read_json(const fs::path& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

// The columns README.md documents under "### <file>": the first cell of each table row,
// split at ", " ("variant, batch, seq" documents three columns).
std::set<std::string> documented_columns(const std::string& file) {
  std::ifstream in(std::string(ATTNSCOPE_SOURCE_DIR) + "/README.md");
  std::set<std::string> columns;
  bool in_section = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("### ", 0) == 0) in_section = line.rfind("### " + file, 0) == 0;
    if (!in_section || line.rfind("| ", 0) != 0 || line.rfind("| column", 0) == 0) continue;
    std::string first = line.substr(2, line.find(" |", 2) - 2);
    std::stringstream names(first);
    for (std::string name; std::getline(names, name, ',');) {
      name.erase(0, name.find_first_not_of(' '));
      columns.insert(name);
    }
  }
  return columns;
}

// The one results directory a bench created under parent.
fs::path only_subdirectory(const fs::path& parent) {
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(parent))
    if (e.is_directory()) dirs.push_back(e.path());
  EXPECT_EQ(dirs.size(), 1u) << parent;
  return dirs.empty() ? parent : dirs.front();
}

const std::string kQuickRun = "--warmup 1 --idle-seconds 0.2 --cooldown-max 0 --sample-ms 20";

// baseline and lsh share no attention kernel, so kernels.csv shows any misattribution.
struct SharedBench {
  fs::path dir;
  int status = -1;
  std::string output;
  SharedBench() {
    fs::path parent = testing::fresh_test_dir("bench");
    status = testing::run_attnscope("bench --variants baseline,lsh --repeats 2 --steps 3 " +
                                        kQuickRun + " --tag test --out " + parent.string(),
                                    &output);
    dir = only_subdirectory(parent);
  }
};

const SharedBench& bench() {
  static SharedBench b;
  return b;
}

double number(const Row& row, const std::string& column) { return std::stod(row.at(column)); }

TEST(Bench, RunsAndWritesEveryFile) {
  ASSERT_EQ(bench().status, 0) << bench().output;
  for (const char* f : {"steps.csv", "summary.csv", "kernels.csv", "power.csv", "manifest.json"})
    EXPECT_TRUE(fs::exists(bench().dir / f)) << f;
  EXPECT_NE(bench().dir.filename().string().find("_test"), std::string::npos);
  EXPECT_NE(bench().output.find("results: " + bench().dir.string()), std::string::npos);
}

TEST(Bench, ColumnsAreTheOnesReadmeDocuments) {
  for (const char* f : {"steps.csv", "summary.csv", "kernels.csv", "power.csv"}) {
    const Csv csv = read_csv(bench().dir / f);
    const std::set<std::string> header(csv.columns.begin(), csv.columns.end());
    EXPECT_EQ(header, documented_columns(f)) << f;
  }
}

TEST(Bench, RowCountsAndRotatedOrder) {
  const Csv steps = read_csv(bench().dir / "steps.csv");
  EXPECT_EQ(steps.rows.size(), 2u * 2u * (1u + 3u));
  const Csv summary = read_csv(bench().dir / "summary.csv");
  ASSERT_EQ(summary.rows.size(), 4u);
  std::map<std::string, std::vector<std::string>> order_by_variant;
  for (const Row& r : summary.rows) {
    EXPECT_EQ(r.at("status"), "ok") << r.at("reason");
    EXPECT_EQ(r.at("steps_measured"), "3");
    order_by_variant[r.at("variant")].push_back(r.at("order"));
  }
  // Repeat 0 runs baseline first, repeat 1 runs lsh first.
  EXPECT_EQ(order_by_variant["baseline"], (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(order_by_variant["lsh"], (std::vector<std::string>{"1", "0"}));
}

TEST(Bench, SummaryMediansAreTheMeasuredStepsMedians) {
  const Csv steps = read_csv(bench().dir / "steps.csv");
  const Csv summary = read_csv(bench().dir / "summary.csv");
  for (const Row& s : summary.rows) {
    std::vector<double> step_ms, tokens_per_s;
    double train_time_ms = 0;
    for (const Row& r : steps.rows)
      if (r.at("variant") == s.at("variant") && r.at("repeat") == s.at("repeat") &&
          r.at("phase") == "measured") {
        step_ms.push_back(number(r, "step_ms"));
        tokens_per_s.push_back(number(r, "tokens_per_s"));
        train_time_ms += number(r, "step_ms");
      }
    ASSERT_EQ(step_ms.size(), 3u);
    EXPECT_NEAR(number(s, "step_ms_median"), *median(step_ms), 1e-4 * *median(step_ms));
    EXPECT_NEAR(number(s, "tokens_per_s_median"), *median(tokens_per_s), 1e-4 * *median(tokens_per_s));
    EXPECT_NEAR(number(s, "step_ms_iqr"), *iqr(step_ms), 1e-3 * *median(step_ms));
    EXPECT_NEAR(number(s, "train_time_s") * 1000, train_time_ms, 1e-4 * train_time_ms);
    EXPECT_GT(number(s, "peak_mem_allocated_bytes"), 0);
    EXPECT_NEAR(number(s, "planned_mem_bytes"), number(s, "peak_mem_allocated_bytes"),
                0.03 * number(s, "peak_mem_allocated_bytes"));
    EXPECT_GT(number(s, "model_flops_per_step"), 0);
  }
}

// Every run of the benchmark warms its learning rate up by default, over its first
// kBenchLrWarmupSteps steps (here all 4 of them), to bench's default peak kBenchDefaultLr,
// and steps.csv shows the rate of each step.
TEST(Bench, DefaultLearningRateWarmUpIsInTheManifestAndEachStepsRate) {
  const auto optimizer = read_json(bench().dir / "manifest.json").at("config").at("optimizer");
  EXPECT_EQ(optimizer.at("lr_warmup_steps"), kBenchLrWarmupSteps);
  EXPECT_FLOAT_EQ(optimizer.at("lr").get<float>(), 3e-4f);
  const LrSchedule schedule{kBenchLrWarmupSteps, LrDecay::kNone, 0.f};
  for (const Row& r : read_csv(bench().dir / "steps.csv").rows)
    EXPECT_FLOAT_EQ(float(number(r, "lr")),
                    scheduled_lr(kBenchDefaultLr, schedule, std::stoi(r.at("step")), 4));
}

TEST(Bench, KernelsBelongToTheirRun) {
  const Csv kernels = read_csv(bench().dir / "kernels.csv");
  std::set<std::string> runs_with_rows;
  for (const Row& r : kernels.rows) {
    runs_with_rows.insert(r.at("variant") + r.at("repeat"));
    const bool lsh_kernel = r.at("kernel").rfind("lsh_", 0) == 0;
    const bool baseline_kernel = r.at("kernel").rfind("causal_softmax", 0) == 0;
    if (r.at("variant") == "baseline") {
      EXPECT_FALSE(lsh_kernel) << r.at("kernel");
    } else {
      EXPECT_FALSE(baseline_kernel) << r.at("kernel");
    }
    EXPECT_GT(number(r, "calls"), 0);
  }
  EXPECT_EQ(runs_with_rows.size(), 4u);
}

TEST(Bench, ManifestIsCompleteAndNamesWhatIsUnavailable) {
  const auto m = read_json(bench().dir / "manifest.json");
  EXPECT_TRUE(m.at("completed").get<bool>());
  EXPECT_EQ(m.at("runs").size(), 4u);
  for (const auto& run : m.at("runs"))  // fp32 on PoCL: no tensor cores
    EXPECT_EQ(run.at("attention_kernels"), "fp32") << run.dump();
  // The default backward, resolved: PoCL has no vendor atomics, so split, and why.
  const auto& backward = m.at("attention_backward");
  EXPECT_EQ(backward.at("requested"), "auto");
  EXPECT_EQ(backward.at("used"), "split");
  EXPECT_NE(backward.at("atomics_probe").get<std::string>().find("not an NVIDIA GPU"),
            std::string::npos);
  EXPECT_EQ(m.at("config").at("model").at("preset"), "tiny");
  // A metric the machine cannot measure has an empty cell and a reason; PoCL has no GPU power.
  const Csv summary = read_csv(bench().dir / "summary.csv");
  for (const auto& [metric, reason] : m.at("unavailable").items()) {
    EXPECT_FALSE(reason.get<std::string>().empty()) << metric;
    for (const Row& r : summary.rows) {
      if (r.count(metric)) {
        EXPECT_EQ(r.at(metric), "") << metric;
      }
    }
  }
}

TEST(Merge, CombinesDirectoriesWithTheirSource) {
  const fs::path parent = testing::fresh_test_dir("merge");
  const fs::path out = parent / "merged", copy = parent / "other_machine";
  fs::copy(bench().dir, copy, fs::copy_options::recursive);
  std::string output;
  ASSERT_EQ(testing::run_attnscope("merge --out " + out.string() + " " + bench().dir.string() +
                                       " " + copy.string(), &output), 0) << output;
  const Csv merged = read_csv(out / "summary.csv");
  EXPECT_EQ(merged.rows.size(), 8u);
  ASSERT_EQ(merged.columns.front(), "source");
  EXPECT_EQ(merged.rows.front().at("source"), bench().dir.filename().string());
  EXPECT_EQ(merged.rows.back().at("source"), "other_machine");
  EXPECT_EQ(read_csv(out / "steps.csv").rows.size(), 2 * read_csv(bench().dir / "steps.csv").rows.size());
  EXPECT_NE(testing::run_attnscope("merge --out " + out.string() + " /no/such/dir", &output), 0);
}

TEST(Plots, ScriptWritesItsFigures) {
  const std::string cmd = std::string(ATTNSCOPE_SOURCE_DIR) +
                          "/tools/plot_results.py " + bench().dir.string() + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  int pngs = 0;
  for (const auto& e : fs::directory_iterator(bench().dir))
    if (e.path().extension() == ".png" && fs::file_size(e.path()) > 1000) ++pngs;
  EXPECT_GE(pngs, 6);
}

// SIGINT mid-run: the step in flight ends, the finished rows stay whole, the run is
// summarised as interrupted, the manifest says incomplete, and the exit status is 130.
TEST(Bench, InterruptKeepsFinishedRowsAndMarksTheManifestIncomplete) {
  const fs::path parent = testing::fresh_test_dir("interrupt");
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    freopen("/dev/null", "w", stdout);
    execl(ATTNSCOPE_BINARY, ATTNSCOPE_BINARY, "bench", "--variants", "baseline,flash",
          "--steps", "100000", "--warmup", "0", "--idle-seconds", "0.2", "--cooldown-max", "0",
          "--out", parent.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  size_t rows_seen = 0;
  for (int i = 0; i < 600 && rows_seen < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (const auto& e : fs::directory_iterator(parent))
      if (fs::exists(e.path() / "steps.csv")) rows_seen = read_csv(e.path() / "steps.csv").rows.size();
  }
  ASSERT_GE(rows_seen, 4u) << "the benchmark wrote no steps within a minute";
  kill(child, SIGINT);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);

  const fs::path dir = only_subdirectory(parent);
  const Csv steps = read_csv(dir / "steps.csv");
  EXPECT_GE(steps.rows.size(), rows_seen);
  for (const Row& r : steps.rows) EXPECT_EQ(r.at("variant"), "baseline");
  const Csv summary = read_csv(dir / "summary.csv");
  ASSERT_EQ(summary.rows.size(), 1u);
  EXPECT_EQ(summary.rows[0].at("status"), "interrupted");
  EXPECT_EQ(summary.rows[0].at("reason"), "Ctrl-C (SIGINT) during the run");
  EXPECT_EQ(summary.rows[0].at("steps_measured"), std::to_string(steps.rows.size()));
  const auto m = read_json(dir / "manifest.json");
  EXPECT_FALSE(m.at("completed").get<bool>());
  EXPECT_TRUE(m.at("interrupted").get<bool>());
}

// Runs whose rows the failure tests count: per variant, its summary row and step rows.
struct MatrixRows {
  std::map<std::string, Row> summary;
  std::map<std::string, int> steps;
};

MatrixRows matrix_rows(const fs::path& dir) {
  MatrixRows rows;
  for (const Row& r : read_csv(dir / "summary.csv").rows) rows.summary[r.at("variant")] = r;
  for (const Row& r : read_csv(dir / "steps.csv").rows) ++rows.steps[r.at("variant")];
  return rows;
}

// A run that fails inside a step (ATTNSCOPE_TEST_FAULT: the device runs out of memory in
// the middle of baseline's first measured step, its step and measured windows open) is
// recorded as failed, and every later run of the matrix starts clean: ok, with all its rows.
TEST(Bench, AFailureInsideAStepLeavesTheNextRunsClean) {
  const fs::path parent = testing::fresh_test_dir("fault");
  setenv("ATTNSCOPE_TEST_FAULT", "baseline:2", 1);  // the child reads it
  std::string output;
  const int status = testing::run_attnscope("bench --variants baseline,flash,lsh --repeats 1 "
                                            "--steps 2 " + kQuickRun + " --out " + parent.string(),
                                            &output);
  unsetenv("ATTNSCOPE_TEST_FAULT");
  ASSERT_EQ(status, 0) << output;
  const fs::path dir = only_subdirectory(parent);
  const MatrixRows rows = matrix_rows(dir);
  ASSERT_EQ(rows.summary.size(), 3u) << output;
  EXPECT_EQ(rows.summary.at("baseline").at("status"), "failed");
  EXPECT_NE(rows.summary.at("baseline").at("reason").find("injected fault"), std::string::npos);
  EXPECT_EQ(rows.steps.at("baseline"), 1);  // its warm-up step
  for (const char* variant : {"flash", "lsh"}) {
    EXPECT_EQ(rows.summary.at(variant).at("status"), "ok") << rows.summary.at(variant).at("reason");
    EXPECT_EQ(rows.summary.at(variant).at("steps_measured"), "2") << variant;
    EXPECT_EQ(rows.steps.at(variant), 3) << variant;
  }
  std::set<std::string> profiled;
  for (const Row& r : read_csv(dir / "kernels.csv").rows) profiled.insert(r.at("variant"));
  EXPECT_EQ(profiled, (std::set<std::string>{"flash", "lsh"}));
  // The backward form, where a variant has one: auto fuses only where the vendor's atomics
  // pass their probe.
  EXPECT_EQ(rows.summary.at("flash").at("attention_backward"),
            probe_atomic_add(testing::shared_runtime()).ptx() ? "fused" : "split");
  EXPECT_EQ(rows.summary.at("lsh").at("attention_backward"), "");
  EXPECT_EQ(rows.summary.at("baseline").at("attention_backward"), "");
}

// A run whose memory plan cannot fit the device is refused before it allocates, and the
// matrix goes on; T=32768 runs where it fits (linear on a one-layer model), and the plan
// is within 1% of the run's measured peak allocation (what it leaves out: GEMM scratch).
TEST(Bench, RunsThatCannotFitAreRefusedAndTheMatrixGoesOnToT32768) {
  const fs::path parent = testing::fresh_test_dir("plan");
  std::string output;
  ASSERT_EQ(testing::run_attnscope("bench --model tiny --n-layer 1 --n-embd 32 --n-head 2 "
                                   "--max-seq 32768 --seq 32768 --batch 1 --variants baseline,linear "
                                   "--repeats 1 --steps 1 --warmup 0 --idle-seconds 0.2 "
                                   "--cooldown-max 0 --out " + parent.string(), &output), 0)
      << output;
  const MatrixRows rows = matrix_rows(only_subdirectory(parent));
  ASSERT_EQ(rows.summary.size(), 2u) << output;
  const Row& baseline = rows.summary.at("baseline");
  EXPECT_EQ(baseline.at("status"), "refused");
  EXPECT_NE(baseline.at("reason").find("needs " + baseline.at("planned_mem_bytes") + " bytes"),
            std::string::npos) << baseline.at("reason");
  EXPECT_NE(baseline.at("reason").find("available"), std::string::npos) << baseline.at("reason");
  EXPECT_EQ(number(baseline, "peak_mem_allocated_bytes"), 0) << "refused before allocating";
  EXPECT_EQ(rows.steps.count("baseline"), 0u);
  for (const char* metric : {"gpu_energy_j", "gpu_energy_net_j", "cpu_energy_j", "cpu_energy_net_j"})
    EXPECT_EQ(baseline.at(metric), "") << metric << ": no measured step, not 0";
  const Row& linear = rows.summary.at("linear");
  EXPECT_EQ(linear.at("status"), "ok") << linear.at("reason");
  EXPECT_EQ(rows.steps.at("linear"), 1);
  EXPECT_NEAR(number(linear, "planned_mem_bytes"), number(linear, "peak_mem_allocated_bytes"),
              0.01 * number(linear, "peak_mem_allocated_bytes"));
}

// `train` refuses a run that cannot fit with exit status 4 and one line naming the bytes
// needed and available (ATTNSCOPE_DEVICE_LIMITS=global_mem lowers what the device has).
TEST(Train, ARunThatCannotFitExitsFourNamingTheBytes) {
  const fs::path csv = testing::fresh_test_dir("refused_train") / "steps.csv";
  std::string output;
  EXPECT_EQ(testing::run_attnscope("train --model tiny --steps 1 --steps-csv " + csv.string(), &output,
                                   "global_mem=1000000"),
            4)
      << output;
  EXPECT_FALSE(fs::exists(csv)) << "a refused run left a steps CSV";
  EXPECT_EQ(output.rfind("attnscope: error: the run needs ", 0), 0u) << output;
  EXPECT_NE(output.find("has 1000000 bytes"), std::string::npos) << output;
  EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << output;
}

// `train --steps-csv`: one row per step, the columns of the benchmark's steps.csv.
TEST(Train, StepsCsvHasARowPerStepWithTheBenchmarksColumns) {
  const fs::path path = testing::fresh_test_dir("train_csv") / "steps.csv";
  std::string output;
  ASSERT_EQ(testing::run_attnscope("train --model tiny --steps 4 --val-every 2 --warmup-steps 2 "
                                   "--lr-decay linear --min-lr-frac 0.5 --steps-csv " +
                                       path.string(), &output), 0) << output;
  const LrSchedule schedule{2, LrDecay::kLinear, 0.5f};
  const Csv csv = read_csv(path);
  const std::set<std::string> header(csv.columns.begin(), csv.columns.end());
  EXPECT_EQ(header, documented_columns("steps.csv"));
  ASSERT_EQ(csv.rows.size(), 4u);
  for (size_t i = 0; i < csv.rows.size(); ++i) {
    EXPECT_EQ(csv.rows[i].at("step"), std::to_string(i + 1));
    EXPECT_EQ(csv.rows[i].at("val_loss").empty(), i % 2 == 0) << i;
    EXPECT_GT(number(csv.rows[i], "device_mem_allocated_bytes"), 0);
    EXPECT_GT(number(csv.rows[i], "step_ms"), 0);
    EXPECT_FLOAT_EQ(float(number(csv.rows[i], "lr")), scheduled_lr(6e-4f, schedule, i + 1, 4)) << i;
  }
}

// Bad input: one line on stderr naming the problem, exit status 2, no results directory.
// `attnscope gemm`: the model's products on the CPU device, each checked (a wrong product
// exits 1), a CSV row per product; `--tune` within a small budget writes a table the
// planner can read, merged into an existing file.
TEST(GemmCommand, ChecksEveryProductAndTunes) {
  const fs::path dir = testing::fresh_test_dir("gemm");
  const fs::path csv_path = dir / "gemm.csv";
  std::string output;
  ASSERT_EQ(testing::run_attnscope("gemm --model tiny --batch 2 --seq 16 --repeats 2 --csv " +
                                   csv_path.string(), &output), 0) << output;
  const Csv csv = read_csv(csv_path);
  ASSERT_EQ(csv.rows.size(), 21u);  // 5 layers × 3 products, 6 attention products
  for (const auto& row : csv.rows) {
    EXPECT_LT(std::stod(row.at("relative_error")), 1e-4) << row.at("role");
    EXPECT_GT(std::stod(row.at("tflops")), 0) << row.at("role");
    EXPECT_EQ(row.at("fraction_of_peak"), "") << "no peak is known for a CPU: an empty cell";
  }
  EXPECT_NE(output.find("time-weighted all products"), std::string::npos) << output;

  const fs::path table = dir / "tuning.json";
  ASSERT_EQ(testing::run_attnscope("gemm --shape 40,24,16 --layout tn --tune --tune-seconds 3 "
                                   "--tune-out " + table.string(), &output), 0) << output;
  ASSERT_EQ(testing::run_attnscope("gemm --shape 40,24,16 --layout nt --tune --tune-seconds 3 "
                                   "--tune-out " + table.string(), &output), 0) << output;
  std::ifstream in(table);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const GemmTuningTable tuned = GemmTuningTable::parse(text, table.string());
  EXPECT_EQ(tuned.entries().size(), 2u) << text;  // both classes, merged
  setenv("ATTNSCOPE_GEMM_TUNING", table.string().c_str(), 1);  // the child reads it
  const int status = testing::run_attnscope("gemm --shape 40,24,16 --layout tn", &output);
  unsetenv("ATTNSCOPE_GEMM_TUNING");
  ASSERT_EQ(status, 0) << output;
  EXPECT_NE(output.find("tuned"), std::string::npos) << output;
}

TEST(CommandLine, BadInputIsOneLineAndExitTwo) {
  const fs::path parent = testing::fresh_test_dir("badinput");
  const std::string out = " --out " + parent.string();
  const std::vector<std::string> bad = {
      "train --steps -1",
      "train --model no_such_preset",
      "train --variant no_such_variant",
      "train --batch 0",
      "train --seq 100000",
      "train --data /no/such/file.bin",
      "train --load /no/such/checkpoint.bin",
      "train --device 7:7",
      "train --variant gqa --kv-heads 3",
      "train --frobnicate",
      "train --steps 1 --steps-csv /no/such/dir/steps.csv",
      "bench --variants baseline,nope" + out,
      "bench --seq 100000" + out,
      "bench --target-loss 2" + out,
      "bench --repeats 0" + out,
      "train --warmup-steps -1",
      "train --lr-decay exponential",
      "train --min-lr-frac 1.5",
      "train --min-lr-frac -0.1",
      "bench --lr-decay step" + out,
      "bench --warmup-steps -2" + out,
      "telemetry --seconds -1",
      "check --variant nope",
      "check --shape 1,64,100,12",
      "check --shape 1,64",
      "check --precision bf16",
      "gemm --shape 8,8",
      "gemm --layout xy --shape 8,8,8",
      "gemm --tune --precision tf32",
      // No tensor-core path on the CPU: refused with its reason before anything runs.
      "train --steps 1 --precision tf32",
      "check --precision tf32",
      "gemm --shape 8,8,8 --precision tf32",
      "bench --precision tf32" + out,
  };
  for (const std::string& args : bad) {
    std::string output;
    EXPECT_EQ(testing::run_attnscope(args, &output), 2) << args << "\n" << output;
    EXPECT_EQ(std::count(output.begin(), output.end(), '\n'), 1) << args << "\n" << output;
    EXPECT_EQ(output.rfind("attnscope: error: ", 0), 0u) << args << "\n" << output;
  }
  EXPECT_TRUE(fs::is_empty(parent));
  std::string output;
  testing::run_attnscope("check --precision tf32", &output);
  EXPECT_NE(output.find("compute capability"), std::string::npos) << output;
  // The device-limits override may only lower a limit, takes whole positive numbers (no
  // sign that would wrap to 2^64, no trailing text), and names what is wrong.
  for (const char* limits :
       {"local_mem=0", "nonsense=4", "local_mem=99999999999", "work_group", "local_mem=-1",
        "work_group=-1024", "work_group=12x", "local_mem=", "compute_units=-3", "compute_units=0",
        "compute_units=99999999999", "type=tpu", "type=", "tuning=",
        "local_mem=99999999999999999999999", "global_mem=999999999999999"}) {
    std::string output;
    EXPECT_EQ(testing::run_attnscope("devices", &output, limits), 2) << limits << "\n" << output;
    EXPECT_EQ(output.rfind("attnscope: error: ATTNSCOPE_DEVICE_LIMITS: ", 0), 0u) << output;
  }
  // type and compute_units may be set either way: PoCL then reports itself as the H200 would.
  EXPECT_EQ(testing::run_attnscope("devices", &output, testing::kH200Limits), 0) << output;
  EXPECT_NE(output.find("[GPU]"), std::string::npos) << output;
  EXPECT_NE(output.find("compute units: 132,"), std::string::npos) << output;
}

}  // namespace
}  // namespace attnscope
