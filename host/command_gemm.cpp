// `attnscope gemm`: the SGEMM on this device, like CLBlast's clients — the products of a
// GPT-2 step (or --shape M,N,K), each checked against a double-precision reference and
// timed, as a table and CSV against the device's peak; `--tune` sweeps the kernel's
// configurations per shape class and writes the winners as a tuning table.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>

#include "host/commands.hpp"
#include "host/csv_writer.hpp"
#include "host/device_peaks.hpp"
#include "host/runtime/error.hpp"
#include "host/runtime/output_file.hpp"
#include "host/gemm_bench.hpp"
#include "host/options.hpp"
#include "model/variant_check.hpp"  // check_tolerance

namespace attnscope {

namespace {

struct GemmOptions {
  std::string device;
  ModelOptions model;
  int batch = 0, seq = 0;  // 0: 16 × 512 on a GPU, 4 × 64 on a CPU
  std::vector<int> shape;  // M,N,K: one product instead of the model's
  std::string layout = "nt";
  int repeats = 10;
  double peak_tflops = 0;
  std::string csv;
  bool tune = false;
  double tune_seconds = 300;
  std::string tune_out = "gemm_tuning.json";
  std::string tune_csv;
  Precision precision = Precision::fp32;
};

std::vector<GemmShape> shapes_to_run(const GemmOptions& o, const DeviceInfo& device) {
  if (!o.shape.empty()) {
    Ops::GemmSpec s;
    s.M = o.shape[0], s.N = o.shape[1], s.K = o.shape[2];
    s.trans_a = o.layout[0] == 't', s.trans_b = o.layout[1] == 't';
    return {{"shape", "--shape", s, false, 1}};
  }
  const ModelConfig config = o.model.resolve(device);
  const int B = o.batch ? o.batch : device.is_gpu ? 16 : 4;
  const int T = o.seq ? o.seq : device.is_gpu ? 512 : 64;
  if (T > config.max_seq_len)
    throw UsageError("--seq " + std::to_string(T) + " exceeds the model's max sequence length " +
                     std::to_string(config.max_seq_len));
  return gpt2_gemm_shapes(config, B, T);
}

std::optional<PeakFlops> peak_of(const GemmOptions& o, const DeviceInfo& device) {
  if (o.peak_tflops > 0) return PeakFlops{o.peak_tflops, "--peak-tflops"};
  return precision_peak(o.precision, device.name);
}

void print_row(const GemmMeasurement& m, const std::optional<PeakFlops>& peak, bool passed) {
  const auto& s = m.shape.spec;
  char line[320];
  std::snprintf(line, sizeof line,
                "%-12s %-20s %-3s %6d %6d %6d %5d %3d  %-24s %2d %-7s %9.3f %8.2f %6s %9.1e %s",
                m.shape.group.c_str(), m.shape.role.c_str(), gemm_layout(s).c_str(), s.M, s.N,
                s.K, s.batch, m.shape.per_step, m.choice.label().c_str(), m.choice.k_splits(),
                m.choice.source().c_str(), m.ms, m.tflops,
                peak ? (std::to_string(int(100 * m.tflops / peak->tflops + 0.5)) + "%").c_str() : "",
                m.relative_error, passed ? "ok" : "FAIL");
  std::cout << line << std::endl;
}

// Σ flops / Σ time over the products of `group` ("" = all), each weighted by its launches
// per step: the rate a training step sees.
double time_weighted_tflops(const std::vector<GemmMeasurement>& all, const std::string& group) {
  double flops = 0, seconds = 0;
  for (const auto& m : all)
    if (group.empty() || m.shape.group == group) {
      flops += m.shape.per_step * m.shape.flops();
      seconds += m.shape.per_step * m.ms * 1e-3;
    }
  return seconds > 0 ? flops / seconds * 1e-12 : 0;
}

void write_csv(const std::string& path, const std::vector<GemmMeasurement>& all,
               const std::optional<PeakFlops>& peak, const DeviceInfo& device) {
  CsvWriter csv(path, {"device", "group", "role", "layout", "M", "N", "K", "batch", "per_step",
                       "config", "k_splits", "plan_source", "ms", "tflops", "fraction_of_peak",
                       "relative_error"});
  for (const auto& m : all) {
    const auto& s = m.shape.spec;
    csv.write_row({device.name, m.shape.group, m.shape.role, gemm_layout(s), (long long)s.M,
                   (long long)s.N, (long long)s.K, (long long)s.batch, (long long)m.shape.per_step,
                   m.choice.label(), (long long)m.choice.k_splits(), m.choice.source(), m.ms,
                   m.tflops, peak ? CsvCell(m.tflops / peak->tflops) : CsvCell(std::monostate{}),
                   m.relative_error});
  }
  csv.close();
}

void run_tune(Runtime& rt, const GemmOptions& o, const std::vector<GemmShape>& shapes) {
  const size_t space = on_tensor_cores(o.precision)
                           ? tf32_tuning_space(rt.device(), o.precision == Precision::tf32x3).size()
                           : gemm_tuning_space(rt.device()).size();
  std::cout << "tuning " << precision_name(o.precision) << ": " << space
            << " configurations per shape class (and K splits where allowed), about "
            << o.tune_seconds << " s" << std::endl;
  GemmTuneResult tuned = tune_gemm(rt, shapes, o.tune_seconds, o.precision);
  std::cout << tuned.trials.size() << " plans timed, " << tuned.skipped
            << " left when the time ran out" << std::endl;
  for (const auto& e : tuned.winners)
    std::cout << "  " << e.shape_class << "  "
              << (e.on_tensor_cores() ? e.tf32.label() : e.config.label()) << " split "
              << e.k_splits
              << "  " << e.tflops << " TFLOP/s on " << e.shape << std::endl;
  if (!o.tune_csv.empty()) {
    CsvWriter csv(o.tune_csv, {"shape_class", "config", "k_splits", "weighted_ms"});
    for (const auto& t : tuned.trials)
      csv.write_row({t.shape_class, t.choice.label(), (long long)t.choice.k_splits(), t.ms});
    csv.close();
  }
  if (tuned.winners.empty())
    throw Error("no configuration was timed and checked within --tune-seconds " +
                std::to_string(o.tune_seconds));
  // Merge into an existing table at --tune-out, so several devices share one file.
  GemmTuningTable table;
  if (std::ifstream in(o.tune_out); in) {
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    table = GemmTuningTable::parse(text, o.tune_out);
  }
  table.merge(tuned.winners);
  write_output_file("tuning table", o.tune_out, table.to_json());
  std::cout << "tuning table written to " << o.tune_out
            << " (use it with ATTNSCOPE_GEMM_TUNING=" << o.tune_out
            << ", or copy it to model/gemm_tuning.json and rebuild)" << std::endl;
}

void run_gemm_command(const GemmOptions& o) {
  if (!o.csv.empty()) check_output_path("--csv", o.csv);
  if (o.tune && !o.tune_csv.empty()) check_output_path("--tune-csv", o.tune_csv);
  if (o.tune) check_output_path("--tune-out", o.tune_out);
  Runtime rt(o.device, /*profiling=*/true);
  const std::vector<GemmShape> shapes = shapes_to_run(o, rt.device());
  const Ops probed(rt, o.precision);  // tf32: the probe, or a one-line reason
  if (o.tune) return run_tune(rt, o, shapes);
  const auto peak = peak_of(o, rt.device());
  const double tolerance = check_tolerance(o.precision);
  std::cout << "gemm on " << rt.device().short_label() << ", " << precision_name(o.precision)
            << ", checked against a double reference on 512 sampled elements (tolerance "
            << tolerance << "); peak "
            << (peak ? std::to_string(peak->tflops) + " TFLOP/s (" + peak->source + ")"
                     : std::string("unknown (--peak-tflops)"))
            << std::endl;
  std::cout << "group        role                 lay      M      N      K batch /st  config  "
               "                ks source         ms  TFLOP/s   peak   rel.err"
            << std::endl;
  std::vector<GemmMeasurement> all;
  size_t failed = 0;
  for (const auto& shape : shapes) {
    all.push_back(measure_gemm(rt, shape, planned_choice(rt.device(), shape, o.precision), o.repeats));
    const bool passed = all.back().relative_error < tolerance;
    failed += !passed;
    print_row(all.back(), peak, passed);
  }
  for (const char* group : {"projections", "attention", ""}) {
    const double tflops = time_weighted_tflops(all, group);
    if (tflops <= 0) continue;
    std::cout << "time-weighted " << (*group ? group : "all products") << ": " << tflops
              << " TFLOP/s";
    if (peak) std::cout << " (" << 100 * tflops / peak->tflops << "% of peak)";
    std::cout << std::endl;
  }
  if (!o.csv.empty()) write_csv(o.csv, all, peak, rt.device());
  if (failed)
    throw Error(std::to_string(failed) + " of " + std::to_string(all.size()) +
                " products failed the check on " + rt.device().short_label());
}

}  // namespace

void add_gemm_command(CLI::App& app) {
  auto o = std::make_shared<GemmOptions>();
  auto* cmd = app.add_subcommand(
      "gemm", "Benchmark (and tune) the GEMM on this device: GPT-2's products or --shape");
  cmd->add_option("--device", o->device, "OpenCL device: P:D index or name substring");
  add_model_options(cmd, o->model);
  cmd->add_option("--batch,-B", o->batch, "Batch size of the model's products (default 16 on "
                  "a GPU, 4 on a CPU)")->check(kSize);
  cmd->add_option("--seq,-T", o->seq, "Sequence length (default 512 on a GPU, 64 on a CPU)")
      ->check(kSize);
  cmd->add_option("--shape", o->shape, "M,N,K: one product instead of the model's")
      ->delimiter(',')->expected(3)->check(kSize);
  cmd->add_option("--layout", o->layout, "With --shape: nn, nt, tn or tt (op(A), op(B) "
                  "transposed)")->capture_default_str()
      ->check(CLI::IsMember({"nn", "nt", "tn", "tt"}));
  cmd->add_option("--repeats", o->repeats, "Timed launches per product (median)")
      ->capture_default_str()->check(kPositive);
  cmd->add_option("--peak-tflops", o->peak_tflops, "The device's peak, for the % column "
                  "(default: the datasheet table)")->check(kPositive);
  cmd->add_option("--csv", o->csv, "Also write the table as CSV to this file");
  cmd->add_flag("--tune", o->tune, "Sweep the kernel's configurations per shape class and "
                "write the fastest as a tuning table (--tune-out)");
  cmd->add_option("--tune-seconds", o->tune_seconds, "Time budget of the sweep")
      ->capture_default_str()->check(kPositive);
  cmd->add_option("--tune-out", o->tune_out, "Tuning table to write (merged into it if it "
                  "exists)")->capture_default_str();
  cmd->add_option("--tune-csv", o->tune_csv, "Every timed configuration, as CSV");
  add_precision_option(cmd, o->precision);
  cmd->callback([o] { run_gemm_command(*o); });
}

}  // namespace attnscope
