#include "model/config.hpp"

#include "host/runtime/error.hpp"

namespace attnscope {

int padded_vocab(int vocab_size) { return (vocab_size + 127) / 128 * 128; }

ModelConfig preset_config(const std::string& name) {
  ModelConfig c;
  c.preset = name;
  if (name == "tiny") {
    // Small enough for PoCL in CI; byte-level vocabulary like the built-in corpus.
    c.max_seq_len = 256;
    c.vocab_size = 256;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_embd = 64;
  } else if (name == "gpt2") {
    c.n_layer = 12, c.n_head = 12, c.n_embd = 768;
  } else if (name == "gpt2-medium") {
    c.n_layer = 24, c.n_head = 16, c.n_embd = 1024;
  } else if (name == "gpt2-large") {
    c.n_layer = 36, c.n_head = 20, c.n_embd = 1280;
  } else if (name == "gpt2-xl") {
    c.n_layer = 48, c.n_head = 25, c.n_embd = 1600;
  } else {
    throw UsageError("unknown model preset '" + name + "' (choose tiny, gpt2, gpt2-medium, "
                     "gpt2-large, gpt2-xl)");
  }
  c.padded_vocab_size = padded_vocab(c.vocab_size);
  return c;
}

void ModelConfig::validate() const {
  auto positive = [](int v, const char* what) {
    if (v <= 0) throw UsageError(std::string(what) + " must be positive, got " + std::to_string(v));
    if (v > kMaxSize)
      throw UsageError(std::string(what) + " must be at most " + std::to_string(kMaxSize) + ", got " +
                       std::to_string(v));
  };
  positive(max_seq_len, "max sequence length");
  positive(vocab_size, "vocab size");
  positive(n_layer, "n_layer");
  positive(n_head, "n_head");
  positive(n_embd, "n_embd");
  if (n_embd % n_head != 0)
    throw UsageError("n_embd (" + std::to_string(n_embd) + ") must be a multiple of n_head (" +
                     std::to_string(n_head) + ")");
  if (padded_vocab_size < vocab_size)
    throw UsageError("padded vocab size is smaller than the vocab size");
}

}  // namespace attnscope
