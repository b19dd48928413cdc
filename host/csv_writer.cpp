#include "host/csv_writer.hpp"

#include <cmath>
#include <cstdio>

#include "host/runtime/error.hpp"

namespace attnscope {

std::string csv_escape(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

CsvWriter::CsvWriter(const std::string& path, std::vector<std::string> columns)
    : path_(path), columns_(std::move(columns)), out_(path) {
  if (!out_) throw Error("cannot write " + path);
  for (size_t i = 0; i < columns_.size(); ++i) out_ << (i ? "," : "") << csv_escape(columns_[i]);
  out_ << "\n" << std::flush;
}

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
  for (size_t i = 0; i < cells.size(); ++i) out_ << (i ? "," : "") << format_cell(cells[i]);
  out_ << "\n" << std::flush;
  if (!out_) throw Error("writing " + path_ + " failed (disk full?)");
}

}  // namespace attnscope
