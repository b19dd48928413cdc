// `attnscope bench`: the benchmark, attnscope's main job (see host/bench.hpp).
#include <cstdio>

#include "host/bench.hpp"
#include "host/commands.hpp"
#include "host/interrupt.hpp"
#include "host/runtime/error.hpp"
#include "model/registry.hpp"

namespace attnscope {
namespace {

// One line per cell: "K variant batch seq repeat"; a size left to the device is "auto".
void list_cells(const std::vector<BenchCell>& cells) {
  auto size = [](int n) { return n ? std::to_string(n) : std::string("auto"); };
  for (size_t k = 0; k < cells.size(); ++k)
    std::printf("%zu %s %s %s %d\n", k, cells[k].variant.c_str(), size(cells[k].batch).c_str(),
                size(cells[k].seq).c_str(), cells[k].repeat);
}

}  // namespace

void add_bench_command(CLI::App& app, const std::string& command_line) {
  auto s = std::make_shared<BenchSettings>();
  s->command_line = command_line;
  auto variants = std::make_shared<std::string>("all");
  auto target = std::make_shared<float>(0.f);
  auto peak = std::make_shared<double>(0.0);
  auto list = std::make_shared<bool>(false);
  auto cell = std::make_shared<int>(0);
  auto* cmd = app.add_subcommand(
      "bench", "Benchmark attention variants: time, throughput, memory, FLOPs, power, energy");
  cmd->add_option("--device", s->device, "OpenCL device: P:D index or name substring");
  cmd->add_option("--variants", *variants, "all, or a comma-separated list")->capture_default_str();
  add_model_options(cmd, s->model);
  add_attention_options(cmd, s->train.attention);
  cmd->add_option("--batch,-B", s->batches, "Batch sizes, comma-separated (default 16 on a "
                  "GPU, 4 on a CPU)")->delimiter(',')->check(kSize);
  cmd->add_option("--seq,-T", s->seqs, "Sequence lengths, comma-separated (default 512 on a "
                  "GPU, 64 on a CPU)")->delimiter(',')->check(kSize);
  cmd->add_option("--repeats", s->repeats, "Repeats of the whole matrix")
      ->capture_default_str()->check(kPositive);
  cmd->add_option("--warmup", s->warmup, "Warm-up steps per run (not measured)")
      ->capture_default_str()->check(kNonNegative);
  cmd->add_option("--steps", s->steps, "Measured steps per run")
      ->capture_default_str()->check(kPositive);
  cmd->add_option("--seed", s->train.seed, "Seed of weights and data (same for every variant)")
      ->capture_default_str();
  s->train.optimizer.adamw.lr = kBenchDefaultLr;  // before registering: --help shows it
  add_optimizer_options(cmd, s->train.optimizer);
  add_precision_option(cmd, s->precision);
  add_attention_backward_option(cmd, s->attention_backward);
  cmd->add_option("--data", s->train.data.path, "Training data file (default: built-in corpus)");
  cmd->add_option("--val-data", s->train.data.val_path, "Held-out data file");
  cmd->add_option("--val-every", s->train.val_every, "Validation every N measured steps "
                  "(0: once at the end)")->capture_default_str()->check(kNonNegative);
  cmd->add_option("--val-batches", s->train.val_batches, "Batches per validation")
      ->capture_default_str()->check(kPositive);
  auto* target_opt = cmd->add_option("--target-loss", *target,
                                     "Record time and energy to reach this validation loss");
  cmd->add_option("--out", s->out_dir, "Parent directory of the results directory")
      ->capture_default_str();
  cmd->add_option("--tag", s->tag, "Tag in the results directory name")->capture_default_str();
  cmd->add_option("--idle-seconds", s->idle_seconds, "Idle-power window before each run")
      ->capture_default_str()->check(kPositive);
  cmd->add_option("--cooldown-max", s->cooldown_max_seconds,
                  "Longest wait for the GPU to return near idle power between runs, seconds")
      ->capture_default_str()->check(kNonNegative);
  auto* peak_opt = cmd->add_option("--peak-tflops", *peak, "Device FP32 peak for MFU (default: "
                                   "built-in table by device name)")->check(kPositive);
  cmd->add_flag("--list-cells", *list, "Print the matrix's cells (runs) in their fixed order, "
               "one line each: K variant batch seq repeat; run nothing");
  auto* cell_opt = cmd->add_option("--cell", *cell, "Run only cell K of the matrix (see "
                                   "--list-cells), into a results directory of its own (a Slurm "
                                   "array task)")->check(kNonNegative);
  add_telemetry_options(*cmd, s->telemetry);
  cmd->callback([s, variants, target, peak, target_opt, peak_opt, list, cell, cell_opt, cmd] {
    s->variants = parse_variant_list(*variants);
    const std::vector<BenchCell> cells = bench_cells(*s);
    if (*list) return list_cells(cells);
    if (cell_opt->count()) {
      if (*cell >= int(cells.size()))
        throw UsageError("--cell " + std::to_string(*cell) + ": the matrix has " +
                         std::to_string(cells.size()) + " cells (0 to " +
                         std::to_string(cells.size() - 1) + "; see --list-cells)");
      s->cell = *cell;
    }
    if (target_opt->count()) s->target_loss = *target;
    if (peak_opt->count()) s->peak_tflops = *peak;
    if (cmd->get_option("--warmup-steps")->count() == 0)  // bench's default: README, "Commands"
      s->train.optimizer.schedule.warmup_steps = kBenchLrWarmupSteps;
    if (s->target_loss && s->train.val_every == 0)
      throw UsageError("--target-loss needs --val-every N to find when the target is reached");
    int code = run_bench(*s);
    if (code != 0)
      throw Error("benchmark stopped: " + interrupt_reason() + "; finished runs are saved", ExitCode(code));
  });
}

}  // namespace attnscope
