// GPT-2 model configuration and presets.
#pragma once
#include <string>

namespace attnscope {

struct ModelConfig {
  std::string preset;
  int max_seq_len = 1024;
  int vocab_size = 50257;
  int padded_vocab_size = 50304;  // vocab rounded up to a multiple of 128, as llm.c does
  int n_layer = 12;
  int n_head = 12;
  int n_embd = 768;

  int head_size() const { return n_embd / n_head; }
  // Throws UsageError naming the offending field.
  void validate() const;
};

// "tiny", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl". Throws UsageError otherwise.
ModelConfig preset_config(const std::string& name);
// Vocabulary padded up to a multiple of 128.
int padded_vocab(int vocab_size);

// The largest model dimension, batch or sequence length accepted (2^20): products of up to
// three of them fit in 64 bits, and vocab_size rounds up to padded_vocab without overflow.
constexpr int kMaxSize = 1 << 20;

}  // namespace attnscope
