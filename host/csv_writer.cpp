#include "host/csv_writer.hpp"

#include <cmath>
#include <cstdio>

#include "host/runtime/error.hpp"
#include "host/runtime/output_file.hpp"

namespace attnscope {

std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string csv_record(const std::vector<std::string>& cells) {
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) line += (i ? "," : "") + csv_escape(cells[i]);
  return line + "\n";
}

CsvWriter::CsvWriter(const std::string& path, std::vector<std::string> columns)
    : path_(path),
      columns_(std::move(columns)),
      file_(std::make_unique<RowFile>("CSV file", path, csv_record(columns_))) {}

CsvWriter::~CsvWriter() = default;

void CsvWriter::close() { file_->close(); }

namespace {

std::string format_cell(const CsvCell& c) {
  if (std::holds_alternative<std::string>(c)) return csv_escape(std::get<std::string>(c));
  if (std::holds_alternative<long long>(c)) return std::to_string(std::get<long long>(c));
  if (std::holds_alternative<double>(c)) {
    double v = std::get<double>(c);
    if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
    return buf;
  }
  return "";
}

}  // namespace

void CsvWriter::write_row(const std::vector<CsvCell>& cells) {
  if (cells.size() != columns_.size())
    throw Error(path_ + ": row has " + std::to_string(cells.size()) + " cells, header has " +
                std::to_string(columns_.size()));
  std::string line;
  for (size_t i = 0; i < cells.size(); ++i) line += (i ? "," : "") + format_cell(cells[i]);
  file_->append(line + "\n");
}

}  // namespace attnscope
