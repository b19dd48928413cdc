// Checkpoints in llm.c's GPT-2 format (docs/checkpoint-format.md): an int32[256] header —
// [0] 20240326, [1] 3 (fp32), [2] max_seq_len, [3] vocab_size, [4] n_layer, [5] n_head,
// [6] n_embd, [7] padded_vocab_size — then the packed fp32 parameters in llm.c's order
// (ParameterLayout::packed_floats()), little-endian.
//
// A model whose attention tensors are llm.c's (qkvw, qkvb, attprojw, attprojb: baseline,
// and every variant that shares them) writes a pure llm.c file, which llm.c and its PyTorch
// script load, and which any such variant loads back; its CheckpointHeader::variant is "".
// Other variants put an extension in header slots llm.c leaves zero: a marker, the variant
// name, the attention floats per layer (so the file's size can be checked on its own) and
// the variant's options, so a checkpoint is refused by a model of another variant or shape.
//
// load_checkpoint checks the file against its own header (size implied by the header, no
// trailing bytes); check_checkpoint_matches then checks it against the model being loaded.
#pragma once
#include <string>
#include <vector>

#include "model/attention_variant.hpp"
#include "model/config.hpp"

namespace attnscope {

struct CheckpointHeader {
  ModelConfig config;              // preset is not stored (empty after loading)
  std::string variant;             // "" = llm.c's attention tensors, no extension
  std::vector<int> variant_options;  // as the variant resolved them; only with a variant
};

// True when a layer's attention tensors are exactly llm.c's: qkvw (3C,C), qkvb (3C),
// attprojw (C,C), attprojb (C).
bool has_llmc_attention(const ModelConfig& config, const std::vector<TensorSpec>& attention_specs);

// The header for a model: variant and options are dropped (pure llm.c) when its attention
// tensors are llm.c's.
CheckpointHeader checkpoint_header(const ModelConfig& config, const std::string& variant,
                                   const std::vector<TensorSpec>& attention_specs,
                                   const std::vector<int>& variant_options);

// Writes path + ".tmp", then renames it over path. Error when packed does not fit the
// header's config (and llm.c's attention, for a header without variant) or the write fails.
void save_checkpoint(const std::string& path, const CheckpointHeader& header,
                     const std::vector<float>& packed);

struct LoadedCheckpoint {
  CheckpointHeader header;
  std::vector<float> packed;
};

// UsageError (bad input, exit 2) when the file is missing or unreadable, for a wrong magic,
// a version other than 3, an implausible header, a truncated file or trailing bytes.
LoadedCheckpoint load_checkpoint(const std::string& path);

// UsageError naming the file and the first difference between the checkpoint and the
// model (config field, variant, options, parameter count: model_floats is its
// ParameterLayout::packed_floats()).
void check_checkpoint_matches(const std::string& path, const LoadedCheckpoint& checkpoint,
                              const CheckpointHeader& model, size_t model_floats);

}  // namespace attnscope
