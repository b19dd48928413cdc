// A results directory, results/<timestamp>_<device>_<tag>/: steps.csv, summary.csv,
// kernels.csv, power.csv and manifest.json, written as the run goes (every CSV row is
// flushed; the manifest is rewritten atomically after every run), so an interrupted
// benchmark keeps everything it measured. README.md documents every column.
#pragma once
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/csv_writer.hpp"

namespace attnscope {

const std::vector<std::string>& steps_columns();
const std::vector<std::string>& summary_columns();
const std::vector<std::string>& kernels_columns();

class ResultsDirectory {
 public:
  // Creates <parent>/<timestamp>_<device>_<tag>/ (a suffix is added if it exists).
  ResultsDirectory(const std::string& parent, const std::string& device_name,
                   const std::string& tag);

  const std::string& path() const { return path_; }
  CsvWriter& steps() { return *steps_; }
  CsvWriter& summary() { return *summary_; }
  CsvWriter& kernels() { return *kernels_; }
  std::ofstream& power() { return power_; }
  nlohmann::json& manifest() { return manifest_; }
  // Writes manifest.json via a temporary file and rename.
  void save_manifest();

 private:
  std::string path_;
  std::unique_ptr<CsvWriter> steps_, summary_, kernels_;
  std::ofstream power_;
  nlohmann::json manifest_;
};

// "NVIDIA H100 80GB HBM3" → "NVIDIA-H100-80GB-HBM3".
std::string path_safe(const std::string& text);
std::string utc_timestamp(const char* format);  // strftime format, UTC

}  // namespace attnscope
