// `attnscope train`: trains one model with one attention variant and prints, per step,
// the loss, step time and throughput; validation loss every --val-every steps.
#include <cstdio>
#include <iostream>

#include "host/commands.hpp"
#include "host/error.hpp"
#include "host/interrupt.hpp"
#include "host/options.hpp"
#include "host/stats.hpp"
#include "host/training.hpp"
#include "model/registry.hpp"

namespace attnscope {
namespace {

struct TrainCommand {
  std::string device;
  ModelOptions model;
  TrainSettings settings;
  std::string save_path;
};

void print_step(const StepResult& r, int total) {
  std::printf("step %5lld/%d | loss %.6f | grad norm %.4f | %8.2f ms | %9.0f tok/s\n",
              (long long)r.step, total, r.loss, r.grad_norm, r.step_ms, r.tokens_per_s);
  std::fflush(stdout);
}

void print_validation(TrainingRun& run) {
  std::printf("step %5lld | validation loss %.6f\n", (long long)run.steps_done(), run.validate());
  std::fflush(stdout);
}

void run_train(TrainCommand& cmd) {
  install_interrupt_handler();
  Runtime runtime(cmd.device);
  Ops ops(runtime);
  cmd.settings.model = cmd.model.resolve(runtime.device());
  TrainingRun run(ops, cmd.settings);
  std::cout << run.banner() << std::flush;
  std::vector<double> step_ms;
  const int total = cmd.settings.steps;
  for (int i = 0; i < total && !interrupted(); ++i) {
    StepResult r = run.step();
    print_step(r, total);
    if (i > 0) step_ms.push_back(r.step_ms);  // the first step includes one-time setup
    const int every = cmd.settings.val_every;
    if (every > 0 && r.step % every == 0) print_validation(run);
  }
  if (cmd.settings.val_every <= 0 || run.steps_done() % cmd.settings.val_every != 0)
    print_validation(run);
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
  if (interrupted()) throw Error("interrupted after step " + std::to_string(run.steps_done()),
                                 ExitCode::kInterrupted);
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
  cmd->add_option("--batch,-B", s.batch, "Batch size B")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--seq,-T", s.seq, "Sequence length T")->capture_default_str()->check(CLI::PositiveNumber);
  cmd->add_option("--steps", s.steps, "Training steps")->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", s.seed, "Seed of the initial weights and the built-in data")
      ->capture_default_str();
  add_optimizer_options(cmd, s.optimizer);
  cmd->add_option("--data", s.data.path, "Training data: a text file (bytes) or an llm.c token "
                  "shard (default: the built-in synthetic corpus)");
  cmd->add_option("--val-data", s.data.val_path, "Held-out data (default: see README)");
  cmd->add_option("--val-every", s.val_every, "Validation loss every N steps (0: at the end)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--val-batches", s.val_batches, "Batches per validation")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--load", s.load_path, "Start from this checkpoint (llm.c GPT-2 format)");
  cmd->add_option("--save", state->save_path, "Write a checkpoint here at the end");
  cmd->callback([state] {
    make_variant(state->settings.variant, state->settings.attention);  // early, clear error
    run_train(*state);
  });
}

}  // namespace attnscope
