// host/runtime/output_file: the one way attnscope writes a file. A planted symlink is never
// written through, a target that is not a regular file is refused untouched, a failed write
// names its cause and leaves neither a temporary nor a torn row, and nothing appears at the
// target before it is complete.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "host/runtime/error.hpp"
#include "host/runtime/output_file.hpp"
#include "tests/test_support.hpp"

namespace attnscope {
namespace {

namespace fs = std::filesystem;
using testing::expect_error;

class OutputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("attnscope_output_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static std::string read(const std::string& file) {
    std::ifstream in(file);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  // Names in the directory that end in ".tmp".
  int temporaries() const {
    int n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) n += e.path().extension() == ".tmp";
    return n;
  }
  fs::path dir_;
};

TEST_F(OutputFileTest, TargetAppearsOnlyWhenCommittedAndWhole) {
  {
    OutputFile file("test file", path("a.txt"));
    file.write("first ");
    file.write("second");
    EXPECT_FALSE(fs::exists(path("a.txt")));
    EXPECT_EQ(temporaries(), 1);
    file.commit();
  }
  EXPECT_EQ(read(path("a.txt")), "first second");
  EXPECT_EQ(temporaries(), 0);
  {
    OutputFile abandoned("test file", path("a.txt"));
    abandoned.write("never committed");
  }
  EXPECT_EQ(read(path("a.txt")), "first second");
  EXPECT_EQ(temporaries(), 0);
}

// Symlinks planted at the old fixed name and at the first unique name point at a victim:
// neither is followed, the victim keeps its contents, the target gets the new ones.
TEST_F(OutputFileTest, SymlinkAtATemporaryNameIsNotFollowed) {
  std::ofstream(path("victim")) << "precious";
  const std::string target = path("model.bin");
  fs::create_symlink(path("victim"), target + ".tmp");
  fs::create_symlink(path("victim"), target + "." + std::to_string(getpid()) + ".0.tmp");
  write_output_file("test file", target, "new contents");
  EXPECT_EQ(read(path("victim")), "precious");
  EXPECT_EQ(read(target), "new contents");
  EXPECT_TRUE(fs::is_symlink(target + "." + std::to_string(getpid()) + ".0.tmp"));
}

// A symlink at the target itself is replaced by the new file, never written through.
TEST_F(OutputFileTest, SymlinkAtTheTargetIsReplacedNotWrittenThrough) {
  std::ofstream(path("victim")) << "precious";
  fs::create_symlink(path("victim"), path("out.csv"));
  write_output_file("test file", path("out.csv"), "rows");
  EXPECT_EQ(read(path("victim")), "precious");
  EXPECT_FALSE(fs::is_symlink(path("out.csv")));
  EXPECT_EQ(read(path("out.csv")), "rows");
}

// A device node to offer as a target: as root (who could replace /dev's nodes, were the
// check broken) a null device made here, otherwise /dev/null.
std::string device_node(const std::string& here) {
  if (geteuid() != 0) return "/dev/null";
  return mknod(here.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0 ? here : "";
}

TEST_F(OutputFileTest, TargetsThatAreNotRegularFilesAreRefusedUntouched) {
  ASSERT_EQ(mkfifo(path("fifo").c_str(), 0644), 0);
  fs::create_directory(path("dir"));
  fs::create_symlink(path("fifo"), path("link_to_fifo"));
  std::vector<std::pair<std::string, std::string>> refused = {
      {path("fifo"), "a FIFO"}, {path("dir"), "a directory"}, {path("link_to_fifo"), "a FIFO"}};
  const std::string device = device_node(path("device"));
  if (!device.empty()) refused.push_back({device, "a device"});
  for (const auto& [target, kind] : refused) {
    expect_error<UsageError>([&] { write_output_file("--save", target, "x"); }, {"--save", target, kind});
    expect_error<UsageError>([&] { check_output_path("--save", target); }, {target, kind});
    expect_error<UsageError>([&] { RowFile("CSV file", target, "a,b\n"); }, {target, kind});
  }
  EXPECT_EQ(fs::status(path("fifo")).type(), fs::file_type::fifo);
  if (!device.empty()) {
    EXPECT_TRUE(fs::is_character_file(device));
  }
  EXPECT_EQ(temporaries(), 0);
}

TEST_F(OutputFileTest, EmptyOrUnreachableDestinationsAreUsageErrors) {
  expect_error<UsageError>([&] { check_output_path("--save", ""); }, {"--save", "empty path"});
  const std::string nowhere = path("no/such/dir/model.bin");
  expect_error<UsageError>([&] { check_output_path("--save", nowhere); }, {nowhere, "does not exist"});
  check_output_path("--save", path("fine.bin"));
  EXPECT_FALSE(fs::exists(path("fine.bin")));
  EXPECT_EQ(temporaries(), 0);
}

// A dump directory: made with its parents when missing; a regular file in the way is refused.
TEST_F(OutputFileTest, OutputDirectoriesAreMadeOrRefused) {
  prepare_output_directory("--dump", path("a/b/c"));
  EXPECT_TRUE(fs::is_directory(path("a/b/c")));
  prepare_output_directory("--dump", path("a/b/c"));  // already there: fine
  std::ofstream(path("file")) << "x";
  expect_error<UsageError>([&] { prepare_output_directory("--dump", path("file/d")); },
                           {"--dump", "cannot create the directory"});
  expect_error<UsageError>([&] { prepare_output_directory("--dump", path("file")); },
                           {"--dump", "cannot create the directory"});
}

// A file size limit stands in for a full disk: writes stop part-way as they would there.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &old_);
    previous_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = old_;
    limit.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, previous_);
  }

 private:
  rlimit old_{};
  void (*previous_)(int) = nullptr;
};

TEST_F(OutputFileTest, FailedWriteNamesItsCauseAndLeavesNoTemporary) {
  write_output_file("test file", path("manifest.json"), "old");
  {
    FileSizeLimit limit(100);
    expect_error<Error>([&] { write_output_file("manifest", path("manifest.json"), std::string(1000, 'x')); },
                        {"manifest", path("manifest.json"), "write failed", "File too large"});
  }
  EXPECT_EQ(read(path("manifest.json")), "old");
  EXPECT_EQ(temporaries(), 0);
}

// Rows that do not fit are cut back: the file ends with the last whole row.
TEST_F(OutputFileTest, RowsNeverTearWhenTheDiskFills) {
  const std::string row = "1,2,3,4,5,6,7,8,9\n";  // 18 bytes
  RowFile file("CSV file", path("steps.csv"), "a,b,c,d,e,f,g,h,i\n");
  EXPECT_EQ(read(path("steps.csv")), "a,b,c,d,e,f,g,h,i\n");
  {
    FileSizeLimit limit(100);  // header + 4 rows = 90 bytes; the 5th row would end at 108
    int written = 0;
    try {
      for (; written < 10; ++written) file.append(row);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("File too large"), std::string::npos) << e.what();
    }
    EXPECT_EQ(written, 4);
  }
  const std::string text = read(path("steps.csv"));
  EXPECT_EQ(text.size(), 18u * 5) << text;
  EXPECT_EQ(text.back(), '\n');
  file.append(row);  // space again: the rows go on after the last whole one
  file.close();
  EXPECT_EQ(read(path("steps.csv")).size(), 18u * 6);
  EXPECT_EQ(temporaries(), 0);
  expect_error<Error>([&] { file.append(row); }, {path("steps.csv"), "closed"});
}

}  // namespace
}  // namespace attnscope
