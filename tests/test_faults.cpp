// Faults a careless or unlucky user meets, run against the binary: signals and a closed
// standard output during training and validation, destinations that cannot be written,
// full disks (a tiny tmpfs in a user and mount namespace, where the system allows one) and
// damaged results directories given to `merge`.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "test_support.hpp"

namespace fs = std::filesystem;

namespace attnscope {
namespace {

std::string read(const fs::path& file) {
  std::ifstream in(file);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool contains(const std::string& text, const std::string& piece) { return text.find(piece) != std::string::npos; }

int lines(const std::string& text) { return int(std::count(text.begin(), text.end(), '\n')); }

// Names under dir (recursively) that end in ".tmp" or hold ".partial-".
int leftovers(const fs::path& dir) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    n += e.path().extension() == ".tmp" || contains(name, ".partial-");
  }
  return n;
}

// Every line of a CSV has the header's number of commas (the files here quote nothing).
void expect_whole_rows(const std::string& csv) {
  ASSERT_FALSE(csv.empty());
  EXPECT_EQ(csv.back(), '\n') << "a torn last row";
  std::istringstream in(csv);
  std::string header, row;
  std::getline(in, header);
  const auto commas = std::count(header.begin(), header.end(), ',');
  for (int i = 1; std::getline(in, row); ++i) EXPECT_EQ(std::count(row.begin(), row.end(), ','), commas) << i << ": " << row;
}

struct Child {
  pid_t pid = -1;
  int status = 0;
  double seconds_after_signal = 0;
  int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }
};

// Starts the binary with stdout and stderr to files.
pid_t start(const std::vector<std::string>& args, const fs::path& out, const fs::path& err) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(out.c_str(), "w", stdout) || !freopen(err.c_str(), "w", stderr)) _exit(126);
    std::vector<char*> argv = {const_cast<char*>(ATTNSCOPE_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(ATTNSCOPE_BINARY, argv.data());
    _exit(127);
  }
  return pid;
}

// Waits (at most two minutes) until the file holds `text`.
bool wait_for(const fs::path& file, const std::string& text) {
  for (int i = 0; i < 1200; ++i) {
    if (contains(read(file), text)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

// Sends the signal and waits for the exit; a process still running a minute later is
// killed (its status then says SIGKILL).
Child finish_after_signal(pid_t pid, int signal) {
  Child c{pid};
  const auto sent = std::chrono::steady_clock::now();
  kill(pid, signal);
  for (int i = 0; i < 600 && waitpid(pid, &c.status, WNOHANG) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  c.seconds_after_signal = std::chrono::duration<double>(std::chrono::steady_clock::now() - sent).count();
  if (c.seconds_after_signal >= 60) {
    kill(pid, SIGKILL);
    waitpid(pid, &c.status, 0);
  }
  return c;
}

// A validation of a million batches ends within seconds of SIGTERM, the checkpoint and the
// finished rows are saved, and the status and message name SIGTERM; Ctrl-C stays 130.
TEST(Signals, TermDuringValidationStopsSavesAndSaysSigterm) {
  for (const auto& [signal, code, name] : {std::tuple{SIGTERM, 143, "SIGTERM"}, std::tuple{SIGINT, 130, "Ctrl-C (SIGINT)"}}) {
    const fs::path dir = testing::fresh_test_dir("signal");
    const pid_t pid = start({"train", "--model", "tiny", "--steps", "3", "--val-every", "1", "--val-batches",
                             "1000000", "--save", (dir / "model.bin").string(), "--steps-csv",
                             (dir / "steps.csv").string()},
                            dir / "out", dir / "err");
    ASSERT_TRUE(wait_for(dir / "out", "step     1/3")) << read(dir / "err");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // well into the validation
    const Child c = finish_after_signal(pid, signal);
    EXPECT_EQ(c.exit_code(), code) << read(dir / "err");
    EXPECT_LT(c.seconds_after_signal, 30) << "validation did not stop";
    const std::string err = read(dir / "err");
    EXPECT_EQ(lines(err), 1) << err;
    EXPECT_TRUE(contains(err, std::string("stopped by ") + name + " after step 1")) << err;
    EXPECT_TRUE(fs::is_regular_file(dir / "model.bin"));
    expect_whole_rows(read(dir / "steps.csv"));
    EXPECT_EQ(lines(read(dir / "steps.csv")), 2);  // the header and step 1
    EXPECT_EQ(leftovers(dir), 0);
  }
}

// `train | head -1`: SIGPIPE is ignored, the closed pipe stops the run, the checkpoint is
// saved and stderr says why; 141 as a shell reports a SIGPIPE death.
TEST(Signals, ClosedStdoutStopsAndSaves) {
  const fs::path dir = testing::fresh_test_dir("pipe");
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], 1);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    if (!freopen((dir / "err").c_str(), "w", stderr)) _exit(126);
    execl(ATTNSCOPE_BINARY, ATTNSCOPE_BINARY, "train", "--model", "tiny", "--steps", "100000", "--save",
          (dir / "model.bin").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[1]);
  std::string seen;
  char c;
  while (!contains(seen, "step ") && ::read(pipe_fds[0], &c, 1) == 1) seen += c;
  close(pipe_fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 141);
  const std::string err = read(dir / "err");
  EXPECT_EQ(lines(err), 1) << err;
  EXPECT_TRUE(contains(err, "standard output closed")) << err;
  EXPECT_TRUE(fs::is_regular_file(dir / "model.bin"));
}

// `bench | head -1`: the benchmark stops at the closed pipe, summarises the run as
// interrupted with the reason, marks the manifest incomplete and exits 141 with a line.
TEST(Signals, ClosedStdoutStopsTheBenchmarkAndSavesItsResults) {
  const fs::path dir = testing::fresh_test_dir("bench_pipe");
  const std::string command = "bash -c '" + std::string(ATTNSCOPE_BINARY) +
                              " bench --variants baseline,flash --steps 100000 --warmup 0 --idle-seconds 0.1"
                              " --cooldown-max 0 --out " + (dir / "out").string() + " 2>" + (dir / "err").string() +
                              " | head -1 >/dev/null; echo ${PIPESTATUS[0]} >" + (dir / "status").string() + "'";
  ASSERT_EQ(std::system(command.c_str()), 0);
  EXPECT_EQ(read(dir / "status"), "141\n");
  const std::string err = read(dir / "err");
  EXPECT_EQ(lines(err), 1) << err;
  EXPECT_TRUE(contains(err, "standard output closed")) << err;
  const fs::path results = fs::directory_iterator(dir / "out")->path();
  const std::string summary = read(results / "summary.csv");
  EXPECT_TRUE(contains(summary, "interrupted,standard output closed during the run")) << summary;
  EXPECT_EQ(lines(summary), 2) << "one run, then the benchmark stopped";
  EXPECT_TRUE(contains(read(results / "manifest.json"), "\"completed\": false"));
}

// Any other command whose standard output is closed (`telemetry | true`: the reader is gone
// before the summary is printed) finishes, then says so with 141 instead of dying silently
// of SIGPIPE.
TEST(Signals, ClosedStdoutOfAnyCommandIsOneLineAnd141) {
  const fs::path dir = testing::fresh_test_dir("telemetry_pipe");
  const std::string command = "bash -c '" + std::string(ATTNSCOPE_BINARY) + " telemetry --seconds 0.5 2>" +
                              (dir / "err").string() + " | true; echo ${PIPESTATUS[0]} >" +
                              (dir / "status").string() + "'";
  ASSERT_EQ(std::system(command.c_str()), 0);
  EXPECT_EQ(read(dir / "status"), "141\n");
  const std::string err = read(dir / "err");
  EXPECT_EQ(lines(err), 1) << err;
  EXPECT_TRUE(contains(err, "standard output was closed")) << err;
}

// Destinations are checked before training: nothing runs, one line, status 2, and a FIFO
// stays a FIFO.
TEST(Destinations, UnwritableSaveIsRefusedBeforeTraining) {
  const fs::path dir = testing::fresh_test_dir("save");
  ASSERT_EQ(mkfifo((dir / "fifo").c_str(), 0644), 0);
  for (const std::string& save : {std::string("\"\""), (dir / "no/such/model.bin").string(),
                                  (dir / "fifo").string(), dir.string()}) {
    std::string output;
    EXPECT_EQ(testing::run_attnscope("train --model tiny --steps 1000000 --save " + save, &output), 2) << save;
    EXPECT_EQ(lines(output), 1) << save << "\n" << output;
    EXPECT_EQ(output.rfind("attnscope: error: ", 0), 0u) << output;
  }
  std::string output;
  EXPECT_EQ(testing::run_attnscope("train --model tiny --steps 1 --steps-csv \"\"", &output), 2) << output;
  EXPECT_EQ(fs::status(dir / "fifo").type(), fs::file_type::fifo);
  EXPECT_EQ(leftovers(dir), 0);
}

// Runs `script` as root of a user and mount namespace in which `mount` is a 16 KiB tmpfs;
// false where the system allows no such namespace.
bool run_on_full_disk(const fs::path& mount, const std::string& script) {
  if (std::system("unshare -rm true 2>/dev/null") != 0) return false;
  fs::create_directories(mount);
  const std::string command = "unshare -rm sh -c 'mount -t tmpfs -o size=16k tmpfs " + mount.string() +
                              " && " + script + "'";
  std::system(command.c_str());
  return true;
}

// A full disk: the run stops with the cause named, every row whole, no temporary left.
TEST(FullDisk, StepsCsvKeepsWholeRowsAndTheCauseIsNamed) {
  const fs::path dir = testing::fresh_test_dir("full_train");
  const fs::path mount = dir / "mnt";
  const std::string copy_out = "cp -r " + mount.string() + " " + (dir / "copy").string();
  if (!run_on_full_disk(mount, std::string(ATTNSCOPE_BINARY) + " train --model tiny --steps 400 --steps-csv " +
                                   (mount / "steps.csv").string() + " >/dev/null 2>" + (dir / "err").string() +
                                   "; echo $? > " + (dir / "status").string() + "; " + copy_out))
    GTEST_SKIP() << "no user namespaces here (unshare -rm)";
  EXPECT_EQ(read(dir / "status"), "1\n");
  EXPECT_TRUE(contains(read(dir / "err"), "No space left on device")) << read(dir / "err");
  expect_whole_rows(read(dir / "copy/steps.csv"));
  EXPECT_GT(lines(read(dir / "copy/steps.csv")), 10);
  EXPECT_EQ(leftovers(dir / "copy"), 0);
}

TEST(FullDisk, BenchNamesTheCauseAndLeavesNoTemporary) {
  const fs::path dir = testing::fresh_test_dir("full_bench");
  const fs::path mount = dir / "mnt";
  if (!run_on_full_disk(mount, std::string(ATTNSCOPE_BINARY) + " bench --variants baseline --steps 200 --warmup 0 "
                                   "--idle-seconds 0.1 --cooldown-max 0 --out " + mount.string() + " >/dev/null 2>" +
                                   (dir / "err").string() + "; echo $? > " + (dir / "status").string() +
                                   "; cp -r " + mount.string() + " " + (dir / "copy").string()))
    GTEST_SKIP() << "no user namespaces here (unshare -rm)";
  EXPECT_EQ(read(dir / "status"), "1\n");
  EXPECT_TRUE(contains(read(dir / "err"), "No space left on device")) << read(dir / "err");
  EXPECT_EQ(leftovers(dir / "copy"), 0);
}

// A hand-made results directory: a completed manifest and the four CSVs.
fs::path results_dir(const fs::path& parent, const std::string& name, bool completed = true) {
  const fs::path dir = parent / name;
  fs::create_directories(dir);
  std::ofstream(dir / "manifest.json") << "{\"tool\": \"attnscope\", \"completed\": " << (completed ? "true" : "false")
                                       << "}\n";
  for (const char* csv : {"steps.csv", "summary.csv", "kernels.csv", "power.csv"})
    std::ofstream(dir / csv) << "variant,batch,value\nbaseline,4,1.5\nflash,4,2.5\n";
  return dir;
}

void expect_refused(const std::string& args, const std::string& piece, const fs::path& out) {
  std::string output;
  EXPECT_EQ(testing::run_attnscope("merge --out " + out.string() + " " + args, &output), 2) << args << "\n" << output;
  EXPECT_EQ(lines(output), 1) << output;
  EXPECT_TRUE(contains(output, piece)) << args << "\n" << output;
  EXPECT_FALSE(fs::exists(out)) << args;
}

TEST(Merge, DamagedOrRepeatedSourcesAreRefusedAndLeaveNoOutput) {
  const fs::path dir = testing::fresh_test_dir("merge");
  const fs::path out = dir / "merged";
  const std::string good = results_dir(dir, "good").string();
  const fs::path truncated = results_dir(dir, "truncated");
  std::ofstream(truncated / "manifest.json") << "{\"tool\": \"attn";
  const fs::path no_summary = results_dir(dir, "no_summary");
  fs::remove(no_summary / "summary.csv");
  const fs::path short_row = results_dir(dir, "short_row");
  std::ofstream(short_row / "steps.csv", std::ios::app) << "lsh,4\n";
  const fs::path other_columns = results_dir(dir, "other_columns");
  std::ofstream(other_columns / "kernels.csv") << "variant,kernel\nbaseline,gemm\n";
  const fs::path incomplete = results_dir(dir, "incomplete", false);

  expect_refused(good + " " + truncated.string(), "not valid JSON", out);
  expect_refused(good + " " + no_summary.string(), "summary.csv", out);
  expect_refused(good + " " + short_row.string(), "row 3 has 2 cells", out);
  expect_refused(good + " " + good + "/", "given twice", out);
  expect_refused(good + " " + incomplete.string(), "--include-incomplete", out);
  expect_refused(good + " " + other_columns.string(), "different columns", out);
  EXPECT_EQ(leftovers(dir), 0);

  std::string output;
  ASSERT_EQ(testing::run_attnscope("merge --include-incomplete --out " + out.string() + " " + good + " " +
                                       incomplete.string(), &output), 0) << output;
  EXPECT_EQ(read(out / "steps.csv"),
            "source,variant,batch,value\ngood,baseline,4,1.5\ngood,flash,4,2.5\n"
            "incomplete,baseline,4,1.5\nincomplete,flash,4,2.5\n");
  EXPECT_TRUE(contains(read(out / "manifest.json"), "\"completed\": false"));
}

TEST(FullDisk, MergeNamesTheCauseAndLeavesNoOutput) {
  const fs::path dir = testing::fresh_test_dir("full_merge");
  const fs::path source = results_dir(dir, "big");
  std::ofstream steps(source / "steps.csv", std::ios::app);
  for (int i = 0; i < 2000; ++i) steps << "baseline,4," << i << "\n";
  steps.close();
  const fs::path mount = dir / "mnt";
  if (!run_on_full_disk(mount, std::string(ATTNSCOPE_BINARY) + " merge --out " + (mount / "merged").string() + " " +
                                   source.string() + " 2>" + (dir / "err").string() + "; echo $? > " +
                                   (dir / "status").string() + "; ls -A " + mount.string() + " > " +
                                   (dir / "listing").string()))
    GTEST_SKIP() << "no user namespaces here (unshare -rm)";
  EXPECT_EQ(read(dir / "status"), "1\n");
  EXPECT_TRUE(contains(read(dir / "err"), "No space left on device")) << read(dir / "err");
  EXPECT_EQ(read(dir / "listing"), "") << "a half-written --out or its staging directory is left";
}

}  // namespace
}  // namespace attnscope
