#include "host/bench.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <thread>

#include "host/device_peaks.hpp"
#include "host/interrupt.hpp"
#include "host/results_dir.hpp"
#include "host/runtime/error.hpp"
#include "host/stats.hpp"
#include "model/memory_plan.hpp"
#include "model/registry.hpp"
#include "telemetry/telemetry.hpp"
#include "telemetry/telemetry_json.hpp"

namespace attnscope {
namespace {

using Json = nlohmann::json;

// What the measured steps of one run add up to.
struct RunTotals {
  std::vector<double> step_ms, tokens_per_s;
  double train_time_s = 0;
  std::optional<double> gpu_j = 0.0, cpu_j = 0.0;  // absent once any step lacks them
  std::string gpu_method;
  double cpu_time_s = 0;
  std::optional<double> peak_mem_used;
  double gpu_peak_w = 0;
  bool gpu_peak_seen = false;
  float last_loss = 0;
  std::optional<float> val_loss;
  std::optional<double> time_to_target, energy_to_target;
};

struct Bench {
  BenchSettings& s;
  Runtime runtime;
  Ops ops;
  Telemetry telemetry;
  std::unique_ptr<ResultsDirectory> results;  // created once the matrix is validated
  SeriesCursor power_cursor;
  std::optional<PeakFlops> peak;
  std::optional<double> reference_idle_w;
  bool tty = isatty(STDOUT_FILENO);

  explicit Bench(BenchSettings& settings)
      : s(settings),
        runtime(settings.device),
        ops(runtime, settings.precision, settings.attention_backward),
        telemetry(telemetry_config(settings.telemetry, runtime.device().pci_bus_id)) {
    if (s.peak_tflops)
      peak = PeakFlops{*s.peak_tflops, "--peak-tflops"};
    else
      peak = precision_peak(s.precision, runtime.device().name);
  }
};

template <typename T>
CsvCell num(const std::optional<T>& v) {
  return v ? CsvCell(double(*v)) : CsvCell(std::monostate{});
}
CsvCell num(double v) { return CsvCell(v); }
CsvCell integer(long long v) { return CsvCell(v); }
CsvCell text(const std::string& v) { return CsvCell(v); }
const CsvCell kEmpty = CsvCell(std::monostate{});

void flush_power(Bench& b) {
  b.results->append_power(b.telemetry.samples_since(b.power_cursor));
}

// Waits (bounded) until the GPU's power is back within 10% + 5 W of the idle power
// measured before the first run, then measures this run's idle power.
WindowResult cool_down_and_measure_idle(Bench& b) {
  if (b.reference_idle_w) {
    auto start = std::chrono::steady_clock::now();
    while (!interrupted()) {
      WindowResult w = b.telemetry.measure_idle(0.5);
      const SourceEnergy* gpu = w.gpu();
      if (!gpu || !gpu->mean_watts || *gpu->mean_watts <= *b.reference_idle_w * 1.1 + 5) break;
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >
          b.s.cooldown_max_seconds)
        break;
    }
  }
  WindowResult idle = b.telemetry.measure_idle(b.s.idle_seconds);
  if (!b.reference_idle_w && idle.gpu() && idle.gpu()->mean_watts)
    b.reference_idle_w = idle.gpu()->mean_watts;
  return idle;
}

void write_step_row(Bench& b, const BenchCell& k, const StepResult& r, const char* phase,
                    const std::optional<float>& val, const WindowResult& w) {
  b.results->steps().write_row(step_row({k.variant, k.batch, k.seq, k.repeat}, r, phase, val,
                                        w, b.runtime.memory().current_bytes()));
}

void accumulate(RunTotals& t, const StepResult& r, const WindowResult& w) {
  t.step_ms.push_back(r.step_ms);
  t.tokens_per_s.push_back(r.tokens_per_s);
  t.train_time_s += r.step_ms / 1000.0;
  t.cpu_time_s += w.cpu_seconds();
  t.last_loss = r.loss;
  const SourceEnergy* gpu = w.gpu();
  if (gpu && gpu->joules && t.gpu_j) {
    *t.gpu_j += *gpu->joules;
    std::string m = energy_method_name(gpu->method);
    t.gpu_method = t.gpu_method.empty() || t.gpu_method == m ? m : "mixed";
  } else {
    t.gpu_j.reset();
  }
  const SourceEnergy* cpu = w.cpu();
  if (cpu && cpu->joules && t.cpu_j)
    *t.cpu_j += *cpu->joules;
  else
    t.cpu_j.reset();
  if (gpu && gpu->peak_memory_used_bytes)
    t.peak_mem_used = std::max(t.peak_mem_used.value_or(0.0), double(*gpu->peak_memory_used_bytes));
  if (gpu && gpu->peak_watts) {
    t.gpu_peak_w = std::max(t.gpu_peak_w, *gpu->peak_watts);
    t.gpu_peak_seen = true;
  }
}

std::string eta_text(double seconds) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%dm%02ds", int(seconds) / 60, int(seconds) % 60);
  return buf;
}

void print_progress(Bench& b, const BenchCell& k, int step, int total, const StepResult& r,
                    const WindowResult& w, double eta_s) {
  const SourceEnergy* gpu = w.gpu();
  char watts[32] = "-";
  if (gpu && gpu->mean_watts) std::snprintf(watts, sizeof watts, "%.0f W", *gpu->mean_watts);
  std::printf("%s%-14s B=%d T=%d rep %d | step %3d/%d | ETA %s | loss %.4f | %8.0f tok/s | %s%s",
              b.tty ? "\r" : "", k.variant.c_str(), k.batch, k.seq, k.repeat, step, total,
              eta_text(eta_s).c_str(), r.loss, r.tokens_per_s, watts, b.tty ? "   " : "\n");
  std::fflush(stdout);
}

struct RunOutcome {
  std::string status = "ok", reason;
  std::string options;
  std::string attention_kernels;   // AttentionVariant::attention_kernels, once built
  std::string attention_backward;  // AttentionVariant::attention_backward, likewise
  std::optional<size_t> planned_mem_bytes;
  double begin_s = 0, end_s = 0;
};

void write_kernels(Bench& b, const BenchCell& k) {
  auto stats = b.runtime.profiler().stats();
  double total_ns = 0;
  for (const auto& st : stats) total_ns += st.total_ns;
  for (const auto& st : stats) {
    const double seconds = st.total_ns * 1e-9;
    b.results->kernels().write_row(
        {text(k.variant), integer(k.batch), integer(k.seq), integer(k.repeat), text(st.name),
         integer((long long)st.calls), num(st.total_ns * 1e-6),
         total_ns > 0 ? num(st.total_ns / total_ns) : kEmpty,
         seconds > 0 && st.flops > 0 ? num(st.flops / seconds * 1e-9) : kEmpty,
         seconds > 0 && st.bytes > 0 ? num(st.bytes / seconds * 1e-9) : kEmpty});
  }
}

void write_summary(Bench& b, const BenchCell& k, const RunOutcome& o, const RunTotals& t,
                   const std::optional<StepFlops>& flops, const WindowResult* idle,
                   const WindowResult* measured, size_t peak_alloc) {
  const auto step_ms = median(t.step_ms);
  const double tokens = double(k.batch) * k.seq * double(t.step_ms.size());
  std::optional<double> achieved, mfu;
  if (flops && step_ms) achieved = flops->model / (*step_ms / 1000.0) / 1e12;
  if (achieved && b.peak) mfu = *achieved / b.peak->tflops;
  const SourceEnergy* idle_gpu = idle ? idle->gpu() : nullptr;
  const SourceEnergy* idle_cpu = idle ? idle->cpu() : nullptr;
  std::optional<double> idle_w;
  if (idle_gpu) idle_w = idle_gpu->mean_watts;
  std::optional<double> net, per_token, mean_w, cpu_net;
  if (t.gpu_j && idle_w) net = *t.gpu_j - *idle_w * t.train_time_s;
  if (t.gpu_j && tokens > 0) per_token = *t.gpu_j / tokens;
  if (t.gpu_j && t.train_time_s > 0) mean_w = *t.gpu_j / t.train_time_s;
  if (t.cpu_j && idle_cpu && idle_cpu->mean_watts)
    cpu_net = *t.cpu_j - *idle_cpu->mean_watts * t.train_time_s;
  const SourceEnergy* run_gpu = measured ? measured->gpu() : nullptr;
  b.results->summary().write_row(
      {text(kFramework), text(k.variant), integer(k.batch), integer(k.seq), integer(k.repeat),
       integer(k.order),
       text(o.status), text(o.reason), text(o.options), text(precision_name(b.s.precision)),
       text(o.attention_backward),
       integer((long long)t.step_ms.size()),
       num(t.train_time_s), num(step_ms), num(iqr(t.step_ms)), num(median(t.tokens_per_s)),
       num(iqr(t.tokens_per_s)), flops ? num(flops->model) : kEmpty,
       flops ? num(flops->executed) : kEmpty, num(achieved), num(mfu),
       o.planned_mem_bytes ? integer((long long)*o.planned_mem_bytes) : kEmpty,
       integer((long long)peak_alloc), num(t.peak_mem_used), num(t.gpu_j), num(net),
       num(per_token), num(mean_w), t.gpu_peak_seen ? num(t.gpu_peak_w) : kEmpty, num(idle_w),
       t.gpu_j ? text(t.gpu_method) : kEmpty, run_gpu ? num(run_gpu->counter_joules) : kEmpty,
       run_gpu ? num(run_gpu->sampled_joules) : kEmpty, num(t.cpu_time_s),
       t.train_time_s > 0 ? num(t.cpu_time_s / t.train_time_s) : kEmpty, num(t.cpu_j),
       num(cpu_net), t.step_ms.empty() ? kEmpty : num(double(t.last_loss)), num(t.val_loss),
       num(b.s.target_loss), num(t.time_to_target), num(t.energy_to_target)});
}

Json run_json(const BenchCell& k, const RunOutcome& o) {
  return {{"variant", k.variant}, {"batch", k.batch}, {"seq", k.seq}, {"repeat", k.repeat},
          {"order", k.order},     {"status", o.status}, {"reason", o.reason},
          {"options", o.options},
          {"attention_kernels", o.attention_kernels.empty() ? Json(nullptr) : Json(o.attention_kernels)},
          {"begin_s", o.begin_s}, {"end_s", o.end_s}};
}

void check_target(Bench& b, RunTotals& t, float val) {
  if (b.s.target_loss && !t.time_to_target && val <= *b.s.target_loss) {
    t.time_to_target = t.train_time_s;
    if (t.gpu_j) t.energy_to_target = *t.gpu_j;
  }
}

// A run that threw is recorded with the first line of the message as its reason — refused
// when its memory plan exceeds the device (before it allocated anything), else failed — and
// the benchmark goes on with the next run.
void record_failure(const Bench& b, const BenchCell& k, RunOutcome& o, const std::string& message,
                    const std::string& status) {
  o.status = status;
  o.reason = message.substr(0, message.find('\n'));
  std::printf("%s%s: run %s: %s\n", b.tty ? "\n" : "", k.variant.c_str(), status.c_str(),
              message.c_str());
}

// What the run will allocate on the device (model/memory_plan.hpp), for summary.csv.
size_t planned_bytes(const Bench& b, const TrainSettings& ts) {
  AttentionOptions attention = ts.attention;
  attention.seed = ts.seed;
  return plan_training_memory(ts.model, *make_variant(ts.variant, attention), ts.batch, ts.seq,
                              b.runtime.device())
      .total_bytes();
}

// One step inside its telemetry window, profiled when measured. The guards close the
// window and stop profiling however the step ends, so a step that throws leaves nothing
// open for the next run.
std::pair<StepResult, WindowResult> timed_step(Bench& b, TrainingRun& run, bool measuring) {
  ScopedProfiling profiling(b.runtime.profiler(), measuring);
  ScopedWindow window(b.telemetry, "step");
  StepResult r = run.step();
  WindowResult w = window.end();
  if (measuring) b.runtime.profiler().collect();
  return {r, w};
}

// One (variant, batch, seq, repeat): warm-up steps, then measured steps in energy windows.
RunOutcome run_one(Bench& b, const BenchCell& k, double* eta_runs_left_s) {
  RunOutcome o;
  RunTotals t;
  std::optional<StepFlops> flops;
  std::optional<WindowResult> idle, measured;
  std::optional<ScopedWindow> measured_window;  // outlives a failure: its steps still count
  b.runtime.memory().reset_peak();
  // Only this run's measured steps may reach kernels.csv: not the model's initialisation,
  // not its warm-up, not validation, and nothing left over from the previous run.
  b.runtime.profiler().set_enabled(false);
  b.runtime.profiler().reset();
  o.begin_s = b.telemetry.clock().now();
  std::function<void(const std::optional<float>&)> write_last_row;
  try {
    idle = cool_down_and_measure_idle(b);
    TrainSettings ts = b.s.train;
    ts.variant = k.variant;
    ts.batch = k.batch;
    ts.seq = k.seq;
    ts.steps = b.s.warmup + b.s.steps;  // the learning-rate schedule spans the whole run
    o.planned_mem_bytes = planned_bytes(b, ts);
    TrainingRun run(b.ops, ts);  // refused (failed) where the plan does not fit the device
    o.options = run.model().attention().describe_options();
    o.attention_kernels = run.model().attention().attention_kernels();
    o.attention_backward = run.model().attention().attention_backward();
    flops = run.model().step_flops();
    const int total = b.s.warmup + b.s.steps;
    for (int i = 0; i < total && !interrupted(); ++i) {
      const bool measuring = i >= b.s.warmup;
      if (i == b.s.warmup) measured_window.emplace(b.telemetry, "measured");
      const auto [r, w] = timed_step(b, run, measuring);
      std::optional<float> val;
      const int every = b.s.train.val_every;
      if (measuring && every > 0 && (i + 1 - b.s.warmup) % every == 0) val = run.validate(interrupted);
      if (measuring) accumulate(t, r, w);
      if (val) {
        t.val_loss = val;
        check_target(b, t, *val);
      }
      // The last step's row waits for the final validation below, to carry its loss.
      if (measuring && !val && i == total - 1)
        write_last_row = [&b, k, r, w](const std::optional<float>& v) { write_step_row(b, k, r, "measured", v, w); };
      else
        write_step_row(b, k, r, measuring ? "measured" : "warmup", val, w);
      flush_power(b);
      const double per_step = r.step_ms / 1000.0;
      print_progress(b, k, i + 1, total, r, w, per_step * (total - i - 1) + *eta_runs_left_s);
    }
    if (measured_window && t.step_ms.size() > 0) measured = measured_window->end();
    std::optional<float> final_val;
    if (!interrupted() && (b.s.train.val_every <= 0 || b.s.steps % b.s.train.val_every != 0)) {
      final_val = t.val_loss = run.validate(interrupted);
      if (t.val_loss) check_target(b, t, *t.val_loss);
    }
    if (write_last_row) std::exchange(write_last_row, nullptr)(final_val);
    if (interrupted()) o.status = "interrupted", o.reason = interrupt_reason() + " during the run";
    *eta_runs_left_s = std::max(0.0, *eta_runs_left_s);
  } catch (const InsufficientDeviceMemory& e) {
    record_failure(b, k, o, e.what(), "refused");
  } catch (const std::exception& e) {
    record_failure(b, k, o, e.what(), "failed");
  }
  if (write_last_row) write_last_row(std::nullopt);  // the final validation failed
  if (measured_window && measured_window->open() && t.step_ms.size() > 0) measured = measured_window->end();
  measured_window.reset();
  if (t.step_ms.empty()) t.gpu_j.reset(), t.cpu_j.reset();  // no measured step: not measured, not 0
  if (b.tty) std::printf("\n");
  o.end_s = b.telemetry.clock().now();
  write_kernels(b, k);
  write_summary(b, k, o, t, flops, idle ? &*idle : nullptr, measured ? &*measured : nullptr,
                b.runtime.memory().peak_bytes());
  flush_power(b);
  return o;
}

Json host_json() {
  char hostname[256] = "";
  gethostname(hostname, sizeof hostname - 1);
  std::string cpu_model;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0) {
      cpu_model = line.substr(line.find(':') + 2);
      break;
    }
  return {{"hostname", hostname},
          {"cpu_model", cpu_model},
          {"logical_cpus", std::thread::hardware_concurrency()}};
}

Json device_json(const DeviceInfo& d) {
  return {{"name", d.name},           {"vendor", d.vendor},
          {"platform", d.platform_name}, {"opencl_version", d.version},
          {"driver_version", d.driver_version}, {"type", d.type_name()},
          {"compute_units", d.compute_units}, {"clock_mhz", d.clock_mhz},
          {"global_mem_bytes", d.global_mem_bytes}, {"local_mem_bytes", d.local_mem_bytes},
          {"pci_bus_id", d.pci_bus_id}};
}

Json config_json(const BenchSettings& s, const ModelConfig& m) {
  const auto& o = s.train.optimizer;
  return {{"model",
           {{"preset", m.preset}, {"n_layer", m.n_layer}, {"n_head", m.n_head},
            {"n_embd", m.n_embd}, {"vocab_size", m.vocab_size},
            {"padded_vocab_size", m.padded_vocab_size}, {"max_seq_len", m.max_seq_len}}},
          {"variants", s.variants}, {"batches", s.batches}, {"seqs", s.seqs},
          {"repeats", s.repeats}, {"warmup_steps", s.warmup}, {"measured_steps", s.steps},
          {"seed", s.train.seed}, {"data", s.train.data.path.empty() ? "built-in" : s.train.data.path},
          {"val_every", s.train.val_every}, {"val_batches", s.train.val_batches},
          {"target_loss", s.target_loss ? Json(*s.target_loss) : Json(nullptr)},
          {"optimizer",
           {{"lr", o.adamw.lr}, {"beta1", o.adamw.beta1}, {"beta2", o.adamw.beta2},
            {"eps", o.adamw.eps}, {"weight_decay", o.adamw.weight_decay},
            {"grad_clip", o.grad_clip}, {"lr_warmup_steps", o.schedule.warmup_steps},
            {"lr_decay", lr_decay_name(o.schedule.decay)}, {"min_lr_frac", o.schedule.min_lr_frac}}},
          {"idle_seconds", s.idle_seconds}, {"cooldown_max_seconds", s.cooldown_max_seconds},
          {"sample_ms", s.telemetry.sample_ms}};
}

// Metrics that cannot be measured on this machine, with the reason (docs/DESIGN.md,
// "Metrics": an empty cell plus a reason in the manifest, never 0).
Json unavailable_json(Bench& b) {
  Json u = Json::object();
  std::string gpu_reason, cpu_reason;
  bool gpu = false, cpu = false;
  for (const auto& src : b.telemetry.sources()) {
    bool is_gpu = src.device == DeviceKind::kGpu;
    (is_gpu ? gpu : cpu) |= src.available;
    (is_gpu ? gpu_reason : cpu_reason) += src.name + ": " + src.detail + "; ";
  }
  if (!gpu)
    for (const char* m : {"gpu_energy_j", "gpu_energy_net_j", "gpu_j_per_token", "gpu_mean_w",
                          "gpu_peak_w", "gpu_idle_w", "peak_mem_used_bytes"})
      u[m] = "no GPU power source: " + gpu_reason;
  if (!cpu)
    for (const char* m : {"cpu_energy_j", "cpu_energy_net_j"}) u[m] = "no CPU energy source: " + cpu_reason;
  if (!b.peak) u["mfu"] = "device '" + b.runtime.device().name +
                          "' is not in the FP32 peak table; pass --peak-tflops";
  if (!b.s.target_loss)
    for (const char* m : {"time_to_target_s", "energy_to_target_j"}) u[m] = "no --target-loss given";
  return u;
}

void resolve_matrix(Bench& b, ModelConfig& model) {
  BenchSettings& s = b.s;
  const bool gpu = b.runtime.device().is_gpu;
  model = s.model.resolve(b.runtime.device());
  s.train.model = model;
  if (s.batches.empty()) s.batches = {gpu ? 16 : 4};
  if (s.seqs.empty()) s.seqs = {gpu ? 512 : 64};
  // Reject bad variant options before anything runs (exit 2), not mid-benchmark.
  for (const auto& v : s.variants)
    for (int seq : s.seqs) {
      if (seq > model.max_seq_len)
        throw UsageError("--seq " + std::to_string(seq) + " exceeds the model's max sequence "
                         "length " + std::to_string(model.max_seq_len));
      make_variant(v, s.train.attention)->resolve({1, seq, model.n_embd, model.n_head});
    }
}

void print_table(const std::vector<std::pair<BenchCell, Json>>& rows, const std::string& path) {
  std::printf("\n%-16s %6s %6s %8s %s\n", "variant", "B", "T", "status", "(medians per run in summary.csv)");
  for (const auto& [k, j] : rows)
    std::printf("%-16s %6d %6d %8s %s\n", k.variant.c_str(), k.batch, k.seq,
                j["status"].get<std::string>().c_str(), j["reason"].get<std::string>().c_str());
  std::printf("\nresults: %s\n", path.c_str());
}

}  // namespace

std::vector<BenchCell> bench_cells(const BenchSettings& s) {
  std::vector<BenchCell> cells;
  const std::vector<int> batches = s.batches.empty() ? std::vector<int>{0} : s.batches;
  const std::vector<int> seqs = s.seqs.empty() ? std::vector<int>{0} : s.seqs;
  for (int batch : batches)
    for (int seq : seqs)
      for (int r = 0; r < s.repeats; ++r)
        for (size_t i = 0; i < s.variants.size(); ++i)
          cells.push_back({s.variants[(i + r) % s.variants.size()], batch, seq, r, int(i)});
  return cells;
}

int run_bench(BenchSettings& s) {
  install_interrupt_handler();
  Bench b(s);
  ModelConfig model;
  resolve_matrix(b, model);
  const std::string tag = s.cell ? s.tag + "-cell" + std::to_string(*s.cell) : s.tag;
  b.results = std::make_unique<ResultsDirectory>(s.out_dir, b.runtime.device().name, tag);
  Json& m = b.results->manifest();
  m = {{"tool", "attnscope"},
       {"git_commit", ATTNSCOPE_GIT_COMMIT},
       {"command_line", s.command_line},
       {"started_utc", utc_timestamp("%Y-%m-%dT%H:%M:%SZ")},
       {"completed", false},
       {"device", device_json(b.runtime.device())},
       {"host", host_json()},
       {"config", config_json(s, model)},
       {"telemetry", telemetry_manifest_json(b.telemetry)},
       {"precision", precision_name(s.precision)},
       // As asked (auto, split, fused) and as resolved on this device; per run,
       // `attention_kernels` says which kernels the variant ran.
       {"attention_backward", {{"requested", attention_backward_name(s.attention_backward)},
                               {"used", b.ops.attention_backward_label()},
                               {"atomics_probe", atomics_probe_result(b.ops.atomic_add())}}},
       // The peak MFU is taken against: FP32, TF32 dense under --precision tf32, a third
       // of that under 3xtf32.
       {"peak_tflops", b.peak ? Json{{"value", b.peak->tflops}, {"source", b.peak->source},
                                     {"precision", precision_name(s.precision)}}
                              : Json(nullptr)},
       {"profiling", "every kernel launch carries an OpenCL profiling event during measured steps"},
       {"unavailable", unavailable_json(b)},
       {"cell", s.cell ? Json(*s.cell) : Json(nullptr)},
       {"runs", Json::array()}};
  b.results->save_manifest();
  std::cout << "attnscope bench on " << b.runtime.device().short_label() << " -> "
            << b.results->path() << "\n";
  std::vector<std::pair<BenchCell, Json>> done;
  const std::vector<BenchCell> cells = bench_cells(s);
  const int total_runs = s.cell ? 1 : int(cells.size());
  double last_run_s = 0;
  for (size_t c = 0; c < cells.size() && !interrupted(); ++c) {
    if (s.cell && *s.cell != int(c)) continue;
    const BenchCell& k = cells[c];
    double eta = last_run_s * double(total_runs - int(done.size()) - 1);
    RunOutcome o = run_one(b, k, &eta);
    last_run_s = o.end_s - o.begin_s;
    Json j = run_json(k, o);
    m["runs"].push_back(j);
    done.emplace_back(k, j);
    b.results->save_manifest();
  }
  m["completed"] = !interrupted();
  m["interrupted"] = interrupted();
  m["finished_utc"] = utc_timestamp("%Y-%m-%dT%H:%M:%SZ");
  m["sampler"] = {{"cpu_share", b.telemetry.sampler_stats().cpu_share()},
                  {"missed_ticks", b.telemetry.sampler_stats().missed_ticks}};
  b.results->close_csv_files();
  b.results->save_manifest();
  print_table(done, b.results->path());
  return interrupted() ? int(interrupt_exit_code()) : 0;
}

}  // namespace attnscope
