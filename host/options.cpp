#include "host/options.hpp"

#include <cmath>

#include "host/runtime/error.hpp"
#include "model/registry.hpp"

namespace attnscope {

namespace {

// "" for a finite number (or text that is no number: the option's own parser says so),
// else "must be a finite number, got inf".
std::string non_finite_problem(const std::string& text) {
  double value = 0;
  if (!CLI::detail::lexical_cast(text, value) || std::isfinite(value)) return "";
  return "must be a finite number, got " + text;
}

// "must be > 0" (POSITIVE), "must be >= 0" (NONNEGATIVE), "must be > 3" (>3).
CLI::Validator lower_bound(int bound, bool inclusive) {
  const std::string rule = (inclusive ? "must be >= " : "must be > ") + std::to_string(bound);
  const std::string name = bound != 0 ? (inclusive ? ">=" : ">") + std::to_string(bound)
                                      : inclusive ? "NONNEGATIVE" : "POSITIVE";
  return CLI::Validator(
      [bound, inclusive, rule](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value)) return "'" + text + "' is not a number";
        if (std::string problem = non_finite_problem(text); !problem.empty()) return problem;
        const bool ok = inclusive ? value >= bound : value > bound;
        return ok ? "" : rule + ", got " + text;
      },
      name);
}

// "gqa: K/V heads (default n_head/4)"; "linear: chunk length; lsh: keys per chunk c".
std::string option_help(const SharedOption& shared) {
  std::string help;
  for (const auto& [variant, text] : shared.uses)
    help += (help.empty() ? "" : "; ") + variant + ": " + text;
  if (shared.spec.default_value == 0 && !shared.spec.default_text.empty())
    help += " (default " + shared.spec.default_text + ")";
  return help;
}

}  // namespace

const CLI::Validator kPositive = lower_bound(0, false);
const CLI::Validator kNonNegative = lower_bound(0, true);
const CLI::Validator kSize = lower_bound(0, false) & CLI::Validator(
    [](std::string& text) -> std::string {
      double value = 0;
      if (!CLI::detail::lexical_cast(text, value) || value <= kMaxSize) return "";
      return "must be at most " + std::to_string(kMaxSize) + " (2^20), got " + text;
    },
    "");

void apply_number_rules(CLI::App& app) {
  // No description: the help keeps showing "FLOAT" rather than "FLOAT:FINITE" everywhere.
  const CLI::Validator finite([](std::string& text) { return non_finite_problem(text); }, "");
  // CLI11 reads "-1" into an unsigned option as 2^64-1.
  const CLI::Validator unsigned_number(
      [](std::string& text) {
        return text.find('-') == std::string::npos ? std::string() : "must be >= 0, got " + text;
      },
      "");
  for (CLI::Option* option : app.get_options()) {
    const std::string type = option->get_type_name();
    if (type.rfind("FLOAT", 0) == 0) option->check(finite);
    if (type.rfind("UINT", 0) == 0) option->check(unsigned_number);
  }
  for (CLI::App* command : app.get_subcommands(std::function<bool(CLI::App*)>{}))
    apply_number_rules(*command);
}

ModelConfig ModelOptions::resolve(const DeviceInfo& device) const {
  ModelConfig c = preset_config(preset == "auto" ? (device.is_gpu ? "gpt2" : "tiny") : preset);
  if (n_layer) c.n_layer = n_layer;
  if (n_head) c.n_head = n_head;
  if (n_embd) c.n_embd = n_embd;
  if (max_seq_len) c.max_seq_len = max_seq_len;
  if (vocab_size) {
    c.vocab_size = vocab_size;
    c.padded_vocab_size = padded_vocab(vocab_size);
  }
  c.validate();
  return c;
}

void add_model_options(CLI::App* cmd, ModelOptions& o) {
  cmd->add_option("--model", o.preset,
                  "Preset: tiny, gpt2, gpt2-medium, gpt2-large, gpt2-xl, or auto (gpt2 on a GPU, "
                  "tiny on a CPU)")
      ->capture_default_str();
  cmd->add_option("--n-layer", o.n_layer, "Override the preset's number of layers")
      ->check(kSize);
  cmd->add_option("--n-head", o.n_head, "Override the preset's number of heads")
      ->check(kSize);
  cmd->add_option("--n-embd", o.n_embd, "Override the preset's embedding width")
      ->check(kSize);
  cmd->add_option("--max-seq", o.max_seq_len, "Override the preset's max sequence length")
      ->check(kSize);
  cmd->add_option("--vocab-size", o.vocab_size, "Override the preset's vocabulary size")
      ->check(kSize);
}

void add_attention_options(CLI::App* cmd, AttentionOptions& o) {
  for (const SharedOption& shared : variant_options()) {
    const VariantOption& spec = shared.spec;
    int& value = o.values[spec.name];  // a std::map's elements stay put: CLI11 writes here
    value = spec.default_value;
    CLI::Option* option = cmd->add_option(spec.flag(), value, option_help(shared))
                              ->check(lower_bound(spec.minimum - 1, false));
    if (spec.default_value != 0) option->capture_default_str();
  }
}

void add_precision_option(CLI::App* cmd, Precision& precision) {
  cmd->add_option_function<std::string>(
         "--precision", [&precision](const std::string& name) { precision = parse_precision(name); },
         "Matrix products: fp32 (portable, default), tf32 (tensor cores on NVIDIA compute "
         "capability >= 8.0, proven by a probe at start; fp32 accumulation) or 3xtf32 (the "
         "same tensor cores, each product split into three TF32 ones: fp32-accurate)")
      ->check(CLI::IsMember({"fp32", "tf32", "3xtf32"}));
}

void add_attention_backward_option(CLI::App* cmd, AttentionBackward& backward) {
  cmd->add_option_function<std::string>(
         "--attention-backward",
         [&backward](const std::string& name) { backward = parse_attention_backward(name); },
         "dQ of the exact tiled attention's backward (flash, gqa, mla, sliding_window), in "
         "every precision: "
         "split (its own kernel, bitwise reproducible), fused (added by the dK/dV kernel with "
         "float atomics: five products a tile pair instead of seven, not bitwise "
         "reproducible), or auto (default: fused where the device's own atomics pass a probe "
         "at start, i.e. NVIDIA's red.global.add.f32; else split)")
      ->check(CLI::IsMember({"auto", "split", "fused"}));
}

namespace {

// The learning-rate schedule (model/lr_schedule.hpp).
void add_schedule_options(CLI::App* cmd, LrSchedule& s) {
  cmd->add_option("--warmup-steps", s.warmup_steps, "Linear learning-rate warm-up over the first N "
                  "steps (llm.c: lr·(step+1)/N)")->capture_default_str()->check(kNonNegative);
  cmd->add_option_function<std::string>(
         "--lr-decay", [&s](const std::string& name) { s.decay = parse_lr_decay(name); },
         "Learning-rate decay after the warm-up, over the run's steps: cosine, linear or none "
         "(default)")
      ->check(CLI::IsMember({"cosine", "linear", "none"}));
  cmd->add_option("--min-lr-frac", s.min_lr_frac, "Where the decay ends, as a fraction of --lr")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
}

}  // namespace

void add_optimizer_options(CLI::App* cmd, OptimizerConfig& o) {
  cmd->add_option("--lr", o.adamw.lr, "AdamW learning rate")->capture_default_str()->check(kPositive);
  cmd->add_option("--beta1", o.adamw.beta1, "AdamW beta1")->capture_default_str()->check(CLI::Range(0.0, 0.999999));
  cmd->add_option("--beta2", o.adamw.beta2, "AdamW beta2")->capture_default_str()->check(CLI::Range(0.0, 0.999999));
  cmd->add_option("--eps", o.adamw.eps, "AdamW epsilon")->capture_default_str()->check(kPositive);
  cmd->add_option("--weight-decay", o.adamw.weight_decay, "AdamW weight decay (matrices only)")
      ->capture_default_str()
      ->check(kNonNegative);
  cmd->add_option("--grad-clip", o.grad_clip, "Global gradient-norm clip (0 disables)")
      ->capture_default_str()
      ->check(kNonNegative);
  add_schedule_options(cmd, o.schedule);
}

}  // namespace attnscope
