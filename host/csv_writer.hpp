// CSV files written row by row, each row handed to the system whole (host/runtime/
// output_file.hpp, RowFile), so an interrupted run or a full disk keeps every finished row
// and never a torn one. A missing value is an empty cell, never 0.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace attnscope {

using CsvCell = std::variant<std::monostate, std::string, double, long long>;

class RowFile;

class CsvWriter {
 public:
  // UsageError for a destination that cannot be written (see check_output_path).
  CsvWriter(const std::string& path, std::vector<std::string> columns);
  ~CsvWriter();
  // cells in column order; throws Error if the count differs from the header.
  void write_row(const std::vector<CsvCell>& cells);
  // The last rows on disk and the file closed, checked (Error naming the cause).
  void close();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> columns_;
  std::unique_ptr<RowFile> file_;
};

// One CSV record (cells escaped, joined by commas, ending in a newline).
std::string csv_record(const std::vector<std::string>& cells);

inline CsvCell cell(const std::optional<double>& v) {
  return v ? CsvCell(*v) : CsvCell(std::monostate{});
}

std::string csv_escape(const std::string& s);

}  // namespace attnscope
