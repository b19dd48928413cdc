// `attnscope train`: trains one model with one attention variant and prints, per step,
// the loss, step time and throughput; validation loss every --val-every steps.
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>

#include "host/commands.hpp"
#include "host/interrupt.hpp"
#include "host/options.hpp"
#include "host/results_dir.hpp"
#include "host/runtime/error.hpp"
#include "host/runtime/output_file.hpp"
#include "host/stats.hpp"
#include "host/telemetry_options.hpp"
#include "model/registry.hpp"
#include "model/training.hpp"
#include "telemetry/telemetry.hpp"

namespace attnscope {
namespace {

struct TrainCommand {
  std::string device;
  ModelOptions model;
  TrainSettings settings;
  std::string save_path;
  std::string steps_csv;  // every step's row, columns as the benchmark's steps.csv
  TelemetryOptions telemetry;
  Precision precision = Precision::fp32;
  AttentionBackward attention_backward = AttentionBackward::automatic;
};

// "| 612 W 183.4 J counter", or nothing where the machine has no GPU power source.
std::string gpu_energy_text(const WindowResult& w) {
  const SourceEnergy* gpu = w.gpu();
  if (!gpu || !gpu->joules || !gpu->mean_watts) return "";
  char buf[96];
  std::snprintf(buf, sizeof buf, " | %4.0f W %8.2f J %s", *gpu->mean_watts, *gpu->joules,
                energy_method_name(gpu->method));
  return buf;
}

void print_step(const StepResult& r, int total, const WindowResult& w) {
  std::printf("step %5lld/%d | loss %.6f | grad norm %.4f | %8.2f ms | %9.0f tok/s%s\n",
              (long long)r.step, total, r.loss, r.grad_norm, r.step_ms, r.tokens_per_s,
              gpu_energy_text(w).c_str());
  std::fflush(stdout);
}

// The steps' GPU energy two ways: the sum of the per-step figures, and the one window
// around the training loop (counter and sampled; it includes any --val-every validation),
// with its Unix-time edges so that an independent reader of the same counter
// (tools/nvml_energy.py) can be held against it.
void print_energy_totals(const Telemetry& telemetry, double step_sum_j, bool every_step,
                         const WindowResult& run) {
  const SourceEnergy* gpu = run.gpu();
  if (!gpu) {
    std::printf("GPU energy: unavailable (no GPU power source; see `attnscope telemetry`)\n");
    return;
  }
  const double origin = telemetry.clock().origin_unix_seconds();
  auto joules = [](const std::optional<double>& j) { return j ? std::to_string(*j) : std::string("-"); };
  std::printf("GPU energy of the steps: %s J summed per step; window %.3f s (unix %.3f to %.3f): "
              "%s J by counter, %s J sampled\n",
              every_step ? std::to_string(step_sum_j).c_str() : "-", run.duration_s(),
              origin + run.begin_s, origin + run.end_s, joules(gpu->counter_joules).c_str(),
              joules(gpu->sampled_joules).c_str());
}

// The validation loss, or nullopt when a signal stopped the validation.
std::optional<float> print_validation(TrainingRun& run) {
  const std::optional<float> loss = run.validate(interrupted);
  if (!loss) return loss;
  std::printf("step %5lld | validation loss %.6f\n", (long long)run.steps_done(), *loss);
  std::fflush(stdout);
  return loss;
}

std::unique_ptr<CsvWriter> open_steps_csv(const std::string& path) {
  if (path.empty()) return nullptr;
  try {
    return std::make_unique<CsvWriter>(path, steps_columns());
  } catch (const UsageError& e) {
    throw UsageError(std::string("--steps-csv: ") + e.what());
  }
}

// An option naming a file to write must name one: `--save ""` would save nothing.
const CLI::Validator kFilePath(
    [](std::string& path) { return path.empty() ? std::string("an empty path names no file") : std::string(); },
    "PATH");

void run_train(TrainCommand& cmd) {
  install_interrupt_handler();
  // Every destination is checked before training, not found unwritable after it; the steps
  // CSV is created once the model is built, so a run refused by its memory plan leaves none.
  if (!cmd.steps_csv.empty()) check_output_path("--steps-csv", cmd.steps_csv);
  if (!cmd.save_path.empty()) check_output_path("--save", cmd.save_path);
  Runtime runtime(cmd.device);
  Ops ops(runtime, cmd.precision, cmd.attention_backward);
  cmd.settings.model = cmd.model.resolve(runtime.device());
  TrainingRun run(ops, cmd.settings);
  std::unique_ptr<CsvWriter> steps_csv = open_steps_csv(cmd.steps_csv);
  Telemetry telemetry(telemetry_config(cmd.telemetry, runtime.device().pci_bus_id));
  const StepRowRun row_run{cmd.settings.variant, cmd.settings.batch, cmd.settings.seq, 0};
  std::cout << run.banner() << std::flush;
  std::vector<double> step_ms;
  double step_sum_j = 0;
  bool every_step = true;
  const int total = cmd.settings.steps;
  std::function<void(const std::optional<float>&)> write_last_row;
  telemetry.begin_window("run");
  for (int i = 0; i < total && !interrupted(); ++i) {
    telemetry.begin_window("step");
    StepResult r = run.step();
    WindowResult w = telemetry.end_window("step");
    const SourceEnergy* gpu = w.gpu();
    if (gpu && gpu->joules)
      step_sum_j += *gpu->joules;
    else
      every_step = false;
    print_step(r, total, w);
    if (i > 0) step_ms.push_back(r.step_ms);  // the first step includes one-time setup
    const int every = cmd.settings.val_every;
    std::optional<float> val;
    if (every > 0 && r.step % every == 0) val = print_validation(run);
    if (!steps_csv) continue;
    auto write_row = [&steps_csv, row_run, r, w, bytes = runtime.memory().current_bytes()](
                         const std::optional<float>& val_loss) {
      steps_csv->write_row(step_row(row_run, r, "measured", val_loss, w, bytes));
    };
    // The last step's row waits for the final validation below, to carry its loss.
    if (!val && (i == total - 1 || interrupted()))
      write_last_row = write_row;
    else
      write_row(val);
  }
  WindowResult run_window = telemetry.end_window("run");
  print_energy_totals(telemetry, step_sum_j, every_step && run.steps_done() > 0, run_window);
  std::optional<float> final_val;
  if (!interrupted() && (cmd.settings.val_every <= 0 || run.steps_done() % cmd.settings.val_every != 0))
    final_val = print_validation(run);
  if (write_last_row) write_last_row(final_val);
  if (auto ms = median(step_ms)) {
    const double tokens = double(cmd.settings.batch) * cmd.settings.seq;
    std::printf("median step %.2f ms (%.0f tok/s) over %zu steps after the first; peak device "
                "memory allocated %.1f MiB\n",
                *ms, tokens / (*ms / 1000.0), step_ms.size(),
                double(runtime.memory().peak_bytes()) / (1 << 20));
  }
  if (!cmd.save_path.empty()) {
    run.save_checkpoint(cmd.save_path);
    std::printf("saved %s\n", cmd.save_path.c_str());
  }
  if (steps_csv) steps_csv->close();
  if (interrupted())
    throw Error("stopped by " + interrupt_reason() + " after step " + std::to_string(run.steps_done()) +
                    (cmd.save_path.empty() ? "" : "; the checkpoint is saved"),
                interrupt_exit_code());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto state = std::make_shared<TrainCommand>();
  auto* cmd = app.add_subcommand("train", "Train GPT-2 with one attention variant");
  TrainSettings& s = state->settings;
  cmd->add_option("--device", state->device, "OpenCL device: P:D index or name substring "
                  "(default: first GPU, else first CPU)");
  add_model_options(cmd, state->model);
  cmd->add_option("--variant", s.variant, "Attention variant (see `attnscope variants`)")
      ->capture_default_str();
  add_attention_options(cmd, s.attention);
  cmd->add_option("--batch,-B", s.batch, "Batch size B")->capture_default_str()->check(kSize);
  cmd->add_option("--seq,-T", s.seq, "Sequence length T")->capture_default_str()->check(kSize);
  cmd->add_option("--steps", s.steps, "Training steps")->capture_default_str()->check(kNonNegative);
  cmd->add_option("--seed", s.seed, "Seed of the initial weights and the built-in data")
      ->capture_default_str();
  add_optimizer_options(cmd, s.optimizer);
  add_precision_option(cmd, state->precision);
  add_attention_backward_option(cmd, state->attention_backward);
  cmd->add_option("--data", s.data.path, "Training data: a text file (bytes) or an llm.c token "
                  "shard (default: the built-in synthetic corpus)");
  cmd->add_option("--val-data", s.data.val_path, "Held-out data (default: see README)");
  cmd->add_option("--val-every", s.val_every, "Validation loss every N steps (0: at the end)")
      ->capture_default_str()
      ->check(kNonNegative);
  cmd->add_option("--val-batches", s.val_batches, "Batches per validation")
      ->capture_default_str()
      ->check(kPositive);
  cmd->add_option("--load", s.load_path, "Start from this checkpoint (llm.c GPT-2 format)");
  cmd->add_option("--save", state->save_path, "Write a checkpoint here at the end")->check(kFilePath);
  cmd->add_option("--steps-csv", state->steps_csv, "Write every step's row here (the columns "
                  "of the benchmark's steps.csv: loss, time, GPU/CPU energy, CPU time, memory)")
      ->check(kFilePath);
  add_telemetry_options(*cmd, state->telemetry);
  cmd->callback([state] {
    make_variant(state->settings.variant, state->settings.attention);  // early, clear error
    run_train(*state);
  });
}

}  // namespace attnscope
