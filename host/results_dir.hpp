// A results directory, results/<timestamp>_<device>_<tag>/: steps.csv, summary.csv,
// kernels.csv, power.csv and manifest.json, written as the run goes (every CSV row is
// flushed; the manifest is rewritten atomically after every run), so an interrupted
// benchmark keeps everything it measured. README.md documents every column.
#pragma once
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "host/csv_writer.hpp"
#include "model/training.hpp"
#include "telemetry/energy_window.hpp"

namespace attnscope {

// steps.csv and summary.csv open with a `framework` column: this, or tools/torch_twin.py's
// name for its PyTorch path, so that merged directories hold both side by side.
constexpr const char* kFramework = "attnscope";
const std::vector<std::string>& steps_columns();
const std::vector<std::string>& summary_columns();
const std::vector<std::string>& kernels_columns();

// One steps.csv row, as the benchmark and `attnscope train --steps-csv` write it: the run,
// the step's result, its phase ("warmup"/"measured"), the validation loss where one was
// computed, the step's energy window, and attnscope's allocated device bytes.
struct StepRowRun {
  std::string variant;
  int batch = 0, seq = 0, repeat = 0;
};
std::vector<CsvCell> step_row(const StepRowRun& run, const StepResult& r, const char* phase,
                              const std::optional<float>& val, const WindowResult& w,
                              size_t allocated_bytes);

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
