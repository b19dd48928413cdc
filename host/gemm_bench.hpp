// The GEMM benchmark and tuner behind `attnscope gemm` (in the spirit of CLBlast's clients
// and tuner): the products of a GPT-2 step, or one shape of the user's, each checked
// against a double-precision reference on sampled elements and timed by the device's
// profiling events; the tuner sweeps matmul.cl's configurations per shape class and keeps
// the fastest as tuning-database entries.
#pragma once
#include <string>
#include <vector>

#include "host/runtime/runtime.hpp"
#include "model/config.hpp"
#include "model/gemm.hpp"
#include "model/gemm_tuning.hpp"

namespace attnscope {

struct GemmShape {
  std::string group;  // "projections" (the matmul layers and the classifier) or "attention"
  std::string role;   // "qkv forward", "fc dweight", "scores QK^T", ...
  Ops::GemmSpec spec;
  bool bias = false;  // forward products add a bias
  int per_step = 1;   // launches of this product per training step
  double flops() const { return 2.0 * spec.M * spec.N * spec.K * spec.batch; }
};

// Every matrix product of one training step of `config` at batch B, sequence T: the
// forward, dinp and dweight products of the qkv, attention-output, fc and fc-projection
// layers (per layer) and of the tied classifier, and the batched per-head products of the
// baseline attention (forward and backward).
std::vector<GemmShape> gpt2_gemm_shapes(const ModelConfig& config, int B, int T);

// One way to run a product: the fp32 kernel (matmul.cl) or the tf32 kernel
// (matmul_tf32.cl), each as planned.
struct GemmChoice {
  Precision precision = Precision::fp32;
  GemmPlan fp32;
  Tf32Plan tf32;
  std::string label() const;  // "128x128x16/8x8", "tf32 128x128x16/2x4w"
  int k_splits() const { return on_tensor_cores(precision) ? tf32.k_splits : fp32.k_splits; }
  const std::string& source() const {
    return on_tensor_cores(precision) ? tf32.source : fp32.source;
  }
};

// The planner's choice for a product at this precision (tuning database or defaults).
GemmChoice planned_choice(const DeviceInfo& device, const GemmShape& shape, Precision precision);

struct GemmMeasurement {
  GemmShape shape;
  GemmChoice choice;
  double ms = 0;              // device time of one launch (median of the timed repeats)
  double tflops = 0;
  double relative_error = 0;  // sampled elements against the double-precision reference
};

// Runs `shape` as `choice`: once checked (outputs poisoned first, `samples` elements against
// the reference), then `repeats` times timed.
GemmMeasurement measure_gemm(Runtime& rt, const GemmShape& shape, const GemmChoice& choice,
                             int repeats, int samples = 512);

struct GemmTuneResult {
  std::vector<GemmTuningEntry> winners;  // one per shape class
  struct Trial {
    std::string shape_class;
    GemmChoice choice;
    double ms = 0;  // summed over the class's shapes, weighted by launches per step
  };
  std::vector<Trial> trials;  // every configuration timed
  size_t skipped = 0;         // configurations left when the time ran out
};

// Times every configuration of the precision's kernel (gemm_tuning_space() for fp32,
// tf32_tuning_space() for tf32; and K splits where the product allows) on each shape class
// of `shapes`, each class within an equal share of about `seconds`; the fastest of each
// class that also passes the check becomes its entry.
GemmTuneResult tune_gemm(Runtime& rt, const std::vector<GemmShape>& shapes, double seconds,
                         Precision precision = Precision::fp32);

}  // namespace attnscope
