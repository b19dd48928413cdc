// `attnscope bench`: the variant matrix (variants × batch × seq × repeats), run fairly:
// same seed, initial weights (where shapes agree) and data order for every variant;
// variant order rotated across repeats; idle power measured before each run after a
// bounded wait for the GPU to return near idle; medians over measured steps.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "host/options.hpp"
#include "host/telemetry_options.hpp"
#include "model/training.hpp"

namespace attnscope {

struct BenchSettings {
  std::string device;
  ModelOptions model;
  TrainSettings train;  // variant, batch and seq are overridden per run
  std::vector<std::string> variants;
  std::vector<int> batches, seqs;  // empty: sized to the device (see README)
  int repeats = 3;
  int warmup = 3;
  int steps = 20;
  std::optional<float> target_loss;
  std::string out_dir = "results";
  std::string tag = "bench";
  TelemetryOptions telemetry;
  double idle_seconds = 2.0;
  double cooldown_max_seconds = 30.0;
  std::optional<double> peak_tflops;
  Precision precision = Precision::fp32;
  AttentionBackward attention_backward = AttentionBackward::automatic;
  std::string command_line;
  std::optional<int> cell;  // --cell K: run only the matrix's cell K (Slurm array task)
};

// One run of the matrix. batch or seq 0: sized to the device when the run starts.
struct BenchCell {
  std::string variant;
  int batch = 0, seq = 0, repeat = 0, order = 0;
};

// The matrix's cells in the order bench runs them (fixed: `--list-cells` numbers them from
// 0 and `--cell K` picks one): for each batch, seq and repeat, the variants rotated by the
// repeat, so that no variant always runs first (cold GPU) or after the same neighbour.
std::vector<BenchCell> bench_cells(const BenchSettings& settings);

// The learning-rate warm-up of every benchmark run unless --warmup-steps says otherwise: a
// fixed number of steps, so that step k has the same rate whatever --steps is (a share of
// the run would not).
constexpr int kBenchLrWarmupSteps = 10;

// The peak learning rate of every benchmark run unless --lr says otherwise: half of train's
// (llm.c's 6e-4, chosen for 524,288 tokens a step). A benchmark step holds a few thousand
// tokens, and at 6e-4 the built-in corpus spikes there even after the warm-up (gqa and lsh at
// B=1, T=4096 on the H200: README, "Long sequences"); at 3e-4 neither did.
constexpr float kBenchDefaultLr = 3e-4f;

// Runs the matrix and writes the results directory; returns the process exit code
// (0, or 128 + the signal when stopped: host/interrupt.hpp). A failed run (out of memory, NaN loss) is recorded and
// the benchmark goes on.
int run_bench(BenchSettings& settings);

}  // namespace attnscope
