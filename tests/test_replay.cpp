// Replaying runs elsewhere: `attnscope data --export` (the built-in corpus as llm.c shards,
// which any trainer can read) run as a user runs it, the binary with the tiny model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;

namespace attnscope {
namespace {

// The cells of `column` in a CSV without quoted cells (steps.csv's numbers), row by row.
std::vector<std::string> csv_column(const fs::path& path, const std::string& column) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::vector<std::string> cells;
  std::string line;
  std::getline(in, line);
  std::stringstream header(line);
  size_t index = 0;
  for (std::string name; std::getline(header, name, ',') && name != column;) ++index;
  while (std::getline(in, line)) {
    std::stringstream row(line);
    std::string cell;
    for (size_t i = 0; i <= index; ++i) std::getline(row, cell, ',');
    cells.push_back(cell);
  }
  return cells;
}

const std::string kTrain = "train --model tiny --batch 2 --seq 32 --steps 6 --val-every 3 --seed 7 ";

// Training on the exported shards gives the built-in corpus's losses, bit for bit (%.9g
// of a float is its exact value), validation included; another seed's shards do not.
TEST(DataExport, TrainingOnTheExportedShardsGivesTheBuiltInCorpusLosses) {
  const fs::path dir = testing::fresh_test_dir("data_export");
  const std::string prefix = (dir / "corpus").string(), other = (dir / "other").string();
  std::string output;
  ASSERT_EQ(testing::run_attnscope("data --export " + prefix + " --tokens 4096 --seed 7", &output), 0)
      << output;
  ASSERT_EQ(fs::file_size(prefix + "_train.bin"), 1024u + 2 * 4096u);
  ASSERT_EQ(fs::file_size(prefix + "_val.bin"), 1024u + 2 * 4096u);
  ASSERT_EQ(testing::run_attnscope("data --export " + other + " --tokens 4096 --seed 8", &output), 0)
      << output;
  const auto train = [&](const std::string& data, const std::string& csv) {
    std::string out;
    EXPECT_EQ(testing::run_attnscope(kTrain + data + " --steps-csv " + (dir / csv).string(), &out), 0)
        << out;
  };
  train("", "built_in.csv");
  train("--data " + prefix + "_train.bin --val-data " + prefix + "_val.bin", "exported.csv");
  train("--data " + other + "_train.bin --val-data " + other + "_val.bin", "other.csv");
  for (const char* column : {"loss", "val_loss", "grad_norm"}) {
    const auto built_in = csv_column(dir / "built_in.csv", column);
    ASSERT_EQ(built_in.size(), 6u) << column;
    EXPECT_EQ(csv_column(dir / "exported.csv", column), built_in) << column;
  }
  EXPECT_NE(csv_column(dir / "other.csv", "loss"), csv_column(dir / "built_in.csv", "loss"));
  fs::remove_all(dir);
}

TEST(DataExport, BadArgumentsAreUsageErrorsAndWriteNothing) {
  const fs::path dir = testing::fresh_test_dir("data_export_bad");
  for (const std::string& args : {"data --export " + (dir / "x").string() + " --tokens 1",
                                 "data --export " + (dir / "x").string(),
                                 std::string("data --tokens 100"),
                                 "data --export " + (dir / "no/such/dir/x").string() + " --tokens 100"}) {
    std::string output;
    const int status = testing::run_attnscope(args, &output);
    EXPECT_NE(status, 0) << args;
    EXPECT_NE(output.find("attnscope: error: "), std::string::npos) << args << "\n" << output;
  }
  EXPECT_TRUE(fs::is_empty(dir));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace attnscope
