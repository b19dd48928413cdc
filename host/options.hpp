// Command-line options shared by train, bench and check: model, attention variant,
// optimizer. Each add_* attaches the options to a subcommand; resolve() turns them into
// validated configuration (UsageError on bad values).
#pragma once
#include <string>

#include <CLI/CLI.hpp>

#include "host/runtime/device_info.hpp"
#include "model/attention_variant.hpp"
#include "model/config.hpp"
#include "model/gpt2.hpp"

namespace attnscope {

struct ModelOptions {
  std::string preset = "auto";  // auto: gpt2 on a GPU, tiny otherwise
  int n_layer = 0, n_head = 0, n_embd = 0, max_seq_len = 0, vocab_size = 0;  // 0: preset's
  ModelConfig resolve(const DeviceInfo& device) const;
};

// Option checks with a plain message ("--steps: must be >= 0, got -1"); CLI11's
// PositiveNumber prints its whole double range instead.
extern const CLI::Validator kPositive;
extern const CLI::Validator kNonNegative;
// A size (a model dimension, batch, sequence length, shape): > 0 and at most kMaxSize, so
// that products of sizes are computed in 64 bits without overflow.
extern const CLI::Validator kSize;

// The rules for numbers on the command line: every floating-point option of app and of
// its subcommands refuses inf, -inf and nan (none of them means anything as a learning
// rate, a duration, a peak or a target); every unsigned one (--seed) refuses a negative
// value. Call once all commands are added.
void apply_number_rules(CLI::App& app);

void add_model_options(CLI::App* cmd, ModelOptions& options);
void add_attention_options(CLI::App* cmd, AttentionOptions& options);
void add_optimizer_options(CLI::App* cmd, OptimizerConfig& options);
// --precision fp32|tf32 (model/ops.hpp).
void add_precision_option(CLI::App* cmd, Precision& precision);
// --attention-backward auto|split|fused (model/ops.hpp).
void add_attention_backward_option(CLI::App* cmd, AttentionBackward& backward);

}  // namespace attnscope
