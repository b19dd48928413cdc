#include "model/memory_plan.hpp"

#include <algorithm>
#include <cstdio>

#include "host/runtime/error.hpp"

namespace attnscope {
namespace {

PlannedBuffer floats(std::string label, size_t count, size_t copies = 1) {
  return {std::move(label), count * sizeof(float), copies};
}

// GPT2::allocate_parameters and GPT2::allocate_activations, buffer for buffer.
std::vector<PlannedBuffer> model_buffers(const ModelConfig& c, const ParameterLayout& layout,
                                         int B, int T) {
  const size_t BT = size_t(B) * T, C = c.n_embd, L = c.n_layer, n = layout.device_floats();
  return {floats("parameters", n), floats("gradients", n), floats("AdamW first moments", n),
          floats("AdamW second moments", n), {"input tokens", BT * sizeof(int)},
          {"target tokens", BT * sizeof(int)}, floats("embeddings", BT * C),
          floats("ln1, ln2, residual2, residual3", BT * C, 4 * L),
          floats("ln1/ln2 mean and rstd", BT, 4 * L), floats("fc, fc gelu", BT * 4 * C, 2 * L),
          floats("final layernorm", BT * C), floats("lnf mean and rstd", BT, 2),
          floats("logits", BT * c.padded_vocab_size), floats("losses", BT),
          floats("attention and mlp outputs", BT * C, 2),
          floats("residual and activation gradients", BT * C, 2),
          floats("fc and fc gelu gradients", BT * 4 * C, 2),
          floats("gradient norm and scale", 1, 2)};
}

std::string bytes_text(double bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f bytes (%.2f GiB)", bytes, bytes / (1ull << 30));
  return buf;
}

}  // namespace

size_t MemoryPlan::total_bytes() const {
  size_t total = 0;
  for (const PlannedBuffer& b : buffers) total += b.bytes * b.copies;
  return total;
}

const PlannedBuffer& MemoryPlan::largest() const {
  return *std::max_element(buffers.begin(), buffers.end(),
                           [](const PlannedBuffer& a, const PlannedBuffer& b) { return a.bytes < b.bytes; });
}

MemoryPlan plan_training_memory(const ModelConfig& config, const ParameterLayout& layout,
                                const AttentionVariant& attention, int B, int T) {
  MemoryPlan plan;
  plan.buffers = model_buffers(config, layout, B, T);
  for (const DeviceBufferSpec& b : attention.device_buffers({B, T, config.n_embd, config.n_head}))
    plan.buffers.push_back({b.label, b.bytes, b.per_layer ? size_t(config.n_layer) : 1});
  return plan;
}

MemoryPlan plan_training_memory(const ModelConfig& config, AttentionVariant& attention, int B,
                                int T, const DeviceInfo& device) {
  const AttentionDims dims{B, T, config.n_embd, config.n_head};
  attention.resolve(dims);
  const ParameterLayout layout(config, attention.parameters(dims),
                               std::max<size_t>(1, device.base_addr_align_bytes / sizeof(float)));
  return plan_training_memory(config, layout, attention, B, T);
}

void check_plan_fits(const MemoryPlan& plan, const DeviceInfo& device, size_t in_use) {
  const double needed = double(plan.total_bytes());
  const double available = double(device.global_mem_bytes) - double(in_use);
  if (needed > available)
    throw InsufficientDeviceMemory("the run needs " + bytes_text(needed) + " of device memory; " +
                                   device.name + " has " + bytes_text(std::max(0.0, available)) +
                                   " available");
  const PlannedBuffer& largest = plan.largest();
  if (largest.bytes > device.max_alloc_bytes)
    throw InsufficientDeviceMemory("the run's largest buffer (" + largest.label + ") needs " +
                                   bytes_text(double(largest.bytes)) + "; " + device.name +
                                   " allows at most " + bytes_text(double(device.max_alloc_bytes)) +
                                   " in one allocation");
}

}  // namespace attnscope
