// The device memory a training run will allocate, computed before it allocates anything:
// parameters, gradients and AdamW's two moments (llm.c's four flat buffers), GPT-2's
// activations and scratch (model/gpt2.cpp), and the attention variant's own buffers
// (AttentionVariant::device_buffers). A run whose plan does not fit the device is refused
// up front with the bytes it needs and the bytes the device has, instead of failing
// midway with an out-of-memory error. Not in the plan: the GEMM's split-K partials and
// the layer kernels' small reduction scratch, which Ops keeps across runs
// (model/ops.hpp); a test holds the plan within a few % of the run's measured peak.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "host/runtime/device_info.hpp"
#include "model/attention_variant.hpp"
#include "model/config.hpp"
#include "model/parameters.hpp"

namespace attnscope {

struct PlannedBuffer {
  std::string label;
  size_t bytes = 0;   // one allocation
  size_t copies = 1;  // e.g. one per layer
};

struct MemoryPlan {
  std::vector<PlannedBuffer> buffers;
  size_t total_bytes() const;
  // The largest single allocation (what CL_DEVICE_MAX_MEM_ALLOC_SIZE limits).
  const PlannedBuffer& largest() const;
};

// The plan of a GPT2 of this config and layout at (B, T), with `attention` resolved for
// these dims.
MemoryPlan plan_training_memory(const ModelConfig& config, const ParameterLayout& layout,
                                const AttentionVariant& attention, int B, int T);
// The same, for a caller that has no model yet: resolves `attention` for (B, T) and lays
// the parameters out as the device would.
MemoryPlan plan_training_memory(const ModelConfig& config, AttentionVariant& attention, int B,
                                int T, const DeviceInfo& device);

// Throws PlanExceedsDeviceMemory (exit status 4) naming the bytes needed and available
// when the plan exceeds the device's global memory less `in_use` (what this process has
// allocated already), or when its largest buffer exceeds the device's largest allocation.
void check_plan_fits(const MemoryPlan& plan, const DeviceInfo& device, size_t in_use);

}  // namespace attnscope
