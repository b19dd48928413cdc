// CSV files written row by row and flushed after each row, so an interrupted run keeps
// every finished row. A missing value is an empty cell, never 0.
#pragma once
#include <fstream>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace attnscope {

using CsvCell = std::variant<std::monostate, std::string, double, long long>;

class CsvWriter {
 public:
  CsvWriter(const std::string& path, std::vector<std::string> columns);
  // cells in column order; throws Error if the count differs from the header.
  void write_row(const std::vector<CsvCell>& cells);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::vector<std::string> columns_;
  std::ofstream out_;
};

inline CsvCell cell(const std::optional<double>& v) {
  return v ? CsvCell(*v) : CsvCell(std::monostate{});
}

std::string csv_escape(const std::string& s);

}  // namespace attnscope
