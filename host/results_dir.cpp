#include "host/results_dir.hpp"

#include <cctype>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "host/runtime/error.hpp"
#include "telemetry/power_csv.hpp"

namespace attnscope {

const std::vector<std::string>& steps_columns() {
  static const std::vector<std::string> c = {
      "framework", "variant", "batch", "seq", "repeat", "step", "phase", "loss", "val_loss",
      "grad_norm", "lr", "step_ms", "tokens_per_s", "gpu_energy_j", "gpu_mean_w", "gpu_energy_method",
      "cpu_energy_j", "cpu_time_s", "cpu_util", "device_mem_allocated_bytes",
      "device_mem_used_bytes"};
  return c;
}

std::vector<CsvCell> step_row(const StepRowRun& run, const StepResult& r, const char* phase,
                              const std::optional<float>& val, const WindowResult& w,
                              size_t allocated_bytes) {
  const SourceEnergy* gpu = w.gpu();
  const SourceEnergy* cpu = w.cpu();
  const CsvCell empty;
  auto opt = [](const auto& v) { return v ? CsvCell(double(*v)) : CsvCell(); };
  return {std::string(kFramework), run.variant, (long long)run.batch, (long long)run.seq,
          (long long)run.repeat, (long long)r.step, std::string(phase), double(r.loss), opt(val), double(r.grad_norm),
          double(r.lr), r.step_ms, r.tokens_per_s, gpu ? opt(gpu->joules) : empty,
          gpu ? opt(gpu->mean_watts) : empty,
          gpu ? CsvCell(std::string(energy_method_name(gpu->method))) : empty,
          cpu ? opt(cpu->joules) : empty, w.cpu_seconds(), w.cpu_utilization(),
          (long long)allocated_bytes, gpu ? opt(gpu->peak_memory_used_bytes) : empty};
}

const std::vector<std::string>& summary_columns() {
  static const std::vector<std::string> c = {
      "framework", "variant", "batch", "seq", "repeat", "order", "status", "reason", "options",
      "precision", "attention_backward", "steps_measured", "train_time_s", "step_ms_median", "step_ms_iqr", "tokens_per_s_median",
      "tokens_per_s_iqr", "model_flops_per_step", "executed_flops_per_step",
      "achieved_tflops", "mfu", "planned_mem_bytes", "peak_mem_allocated_bytes", "peak_mem_used_bytes",
      "gpu_energy_j", "gpu_energy_net_j", "gpu_j_per_token", "gpu_mean_w", "gpu_peak_w",
      "gpu_idle_w", "gpu_energy_method", "gpu_counter_j", "gpu_sampled_j", "cpu_time_s",
      "cpu_util", "cpu_energy_j", "cpu_energy_net_j", "final_train_loss", "final_val_loss",
      "target_loss", "time_to_target_s", "energy_to_target_j"};
  return c;
}

const std::vector<std::string>& kernels_columns() {
  static const std::vector<std::string> c = {"variant", "batch", "seq", "repeat", "kernel",
                                             "calls", "total_ms", "share", "gflops_per_s",
                                             "gb_per_s"};
  return c;
}

std::string path_safe(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_')
      out += c;
    else if (!out.empty() && out.back() != '-')
      out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "device" : out;
}

std::string utc_timestamp(const char* format) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

ResultsDirectory::ResultsDirectory(const std::string& parent, const std::string& device_name,
                                   const std::string& tag) {
  namespace fs = std::filesystem;
  std::string base = (fs::path(parent) / (utc_timestamp("%Y%m%d-%H%M%S") + "_" +
                                          path_safe(device_name) + "_" + path_safe(tag)))
                         .string();
  path_ = base;
  for (int i = 2; fs::exists(path_); ++i) path_ = base + "-" + std::to_string(i);
  std::error_code ec;
  fs::create_directories(path_, ec);
  if (ec) throw Error("cannot create results directory " + path_ + ": " + ec.message());
  steps_ = std::make_unique<CsvWriter>(path_ + "/steps.csv", steps_columns());
  summary_ = std::make_unique<CsvWriter>(path_ + "/summary.csv", summary_columns());
  kernels_ = std::make_unique<CsvWriter>(path_ + "/kernels.csv", kernels_columns());
  std::ostringstream header;
  write_power_csv_header(header);
  power_ = std::make_unique<RowFile>("CSV file", path_ + "/power.csv", header.str());
}

void ResultsDirectory::append_power(const std::vector<PowerRow>& rows) {
  std::ostringstream text;
  write_power_csv_rows(text, rows);
  power_->append(text.str());
}

void ResultsDirectory::close_csv_files() {
  steps_->close();
  summary_->close();
  kernels_->close();
  power_->close();
}

void ResultsDirectory::save_manifest() {
  write_output_file("manifest", path_ + "/manifest.json", manifest_.dump(2) + "\n");
}

}  // namespace attnscope
