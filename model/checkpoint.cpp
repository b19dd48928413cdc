#include "model/checkpoint.hpp"

#include <climits>

#include "host/runtime/error.hpp"
#include "model/binary_file.hpp"
#include "model/parameters.hpp"

namespace attnscope {

namespace {

constexpr const char* kCheckpoint = "checkpoint";
constexpr int32_t kMagic = 20240326;
constexpr int32_t kVersionFp32 = 3;
// Header slots of the attnscope extension (all zero in llm.c's own files).
constexpr int32_t kExtensionMarker = 0x63737461;  // the bytes "atsc" in a hex dump
constexpr int32_t kExtensionVersion = 1;
constexpr int kSlotMarker = 8;
constexpr int kSlotExtensionVersion = 9;
constexpr int kSlotAttentionFloats = 10;  // attention floats per layer
constexpr int kSlotNameLength = 11;
constexpr int kSlotOptionCount = 12;
constexpr int kSlotName = 16;     // one character per slot, up to kMaxName
constexpr int kMaxName = 64;
constexpr int kSlotOptions = 80;  // one option per slot, up to kMaxOptions
constexpr int kMaxOptions = 32;
// Bounds a header's dimensions so the sizes computed from a damaged one cannot overflow.
constexpr int kMaxDimension = 1 << 20;

size_t llmc_attention_floats(const ModelConfig& c) {
  const size_t C = size_t(c.n_embd);
  return 3 * C * C + 3 * C + C * C + C;
}

// Parameters of a model with this config and attention_floats per layer, by the layout itself.
size_t packed_floats(const ModelConfig& config, size_t attention_floats) {
  return ParameterLayout(config, {TensorSpec{"attention", {attention_floats}}}, 1).packed_floats();
}

Error checkpoint_error(const std::string& path, const std::string& problem) {
  return Error(file_message(kCheckpoint, path, problem));
}

// A file given to --load that is not a well-formed checkpoint: bad input (exit 2).
UsageError bad_checkpoint(const std::string& path, const std::string& problem) {
  return UsageError(file_message(kCheckpoint, path, problem));
}

// Attention floats per layer implied by packed's size; Error when it does not fit.
size_t attention_floats_of(const std::string& path, const ModelConfig& config, size_t packed) {
  const size_t rest = packed_floats(config, 0), layers = size_t(config.n_layer);
  if (packed <= rest || (packed - rest) % layers != 0 || (packed - rest) / layers > INT32_MAX)
    throw checkpoint_error(path, std::to_string(packed) + " parameters do not fit the config (" +
                                     std::to_string(rest) + " outside attention, " +
                                     std::to_string(layers) + " layers)");
  return (packed - rest) / layers;
}

void encode_extension(const std::string& path, const CheckpointHeader& h, size_t packed,
                      int32_t* slots) {
  if (h.variant.size() > size_t(kMaxName))
    throw checkpoint_error(path, "variant name '" + h.variant + "' is longer than " + std::to_string(kMaxName));
  if (h.variant_options.size() > size_t(kMaxOptions))
    throw checkpoint_error(path, std::to_string(h.variant_options.size()) + " variant options, at most " +
                                     std::to_string(kMaxOptions) + " fit the header");
  slots[kSlotMarker] = kExtensionMarker;
  slots[kSlotExtensionVersion] = kExtensionVersion;
  slots[kSlotAttentionFloats] = int32_t(attention_floats_of(path, h.config, packed));
  slots[kSlotNameLength] = int32_t(h.variant.size());
  slots[kSlotOptionCount] = int32_t(h.variant_options.size());
  for (size_t i = 0; i < h.variant.size(); ++i) slots[kSlotName + i] = static_cast<unsigned char>(h.variant[i]);
  for (size_t i = 0; i < h.variant_options.size(); ++i) slots[kSlotOptions + i] = h.variant_options[i];
}

std::vector<int32_t> encode_header(const std::string& path, const CheckpointHeader& h, size_t packed) {
  const ModelConfig& c = h.config;
  std::vector<int32_t> slots(kLlmcHeaderInts, 0);
  slots[0] = kMagic;
  slots[1] = kVersionFp32;
  slots[2] = c.max_seq_len;
  slots[3] = c.vocab_size;
  slots[4] = c.n_layer;
  slots[5] = c.n_head;
  slots[6] = c.n_embd;
  slots[7] = c.padded_vocab_size;
  if (!h.variant.empty()) {
    encode_extension(path, h, packed, slots.data());
  } else if (!h.variant_options.empty()) {
    throw checkpoint_error(path, "variant options given without a variant name");
  } else if (packed != packed_floats(c, llmc_attention_floats(c))) {
    throw checkpoint_error(path, std::to_string(packed) + " parameters, but llm.c's layout for this config has " +
                                     std::to_string(packed_floats(c, llmc_attention_floats(c))));
  }
  return slots;
}

ModelConfig decode_config(const std::string& path, const int32_t* slots) {
  ModelConfig c;
  c.preset = "";
  c.max_seq_len = slots[2];
  c.vocab_size = slots[3];
  c.n_layer = slots[4];
  c.n_head = slots[5];
  c.n_embd = slots[6];
  c.padded_vocab_size = slots[7];
  try {
    c.validate();
  } catch (const UsageError& e) {
    throw bad_checkpoint(path, std::string("implausible header: ") + e.what());
  }
  for (int i = 2; i <= 7; ++i)
    if (slots[i] > kMaxDimension)
      throw bad_checkpoint(path, "implausible header: slot " + std::to_string(i) + " holds " +
                                       std::to_string(slots[i]));
  return c;
}

// Fills variant and options from the extension; returns the attention floats per layer.
size_t decode_extension(const std::string& path, const int32_t* slots, CheckpointHeader& h) {
  if (slots[kSlotMarker] == 0) return llmc_attention_floats(h.config);
  if (slots[kSlotMarker] != kExtensionMarker)
    throw bad_checkpoint(path, "header slot 8 holds " + std::to_string(slots[kSlotMarker]) +
                                     ", neither 0 (llm.c) nor the attnscope extension marker");
  if (slots[kSlotExtensionVersion] != kExtensionVersion)
    throw bad_checkpoint(path, "unsupported attnscope extension version " +
                                     std::to_string(slots[kSlotExtensionVersion]));
  const int name_length = slots[kSlotNameLength], option_count = slots[kSlotOptionCount];
  if (name_length < 1 || name_length > kMaxName || option_count < 0 || option_count > kMaxOptions ||
      slots[kSlotAttentionFloats] < 1)
    throw bad_checkpoint(path, "damaged attnscope extension header");
  for (int i = 0; i < name_length; ++i) {
    const int32_t ch = slots[kSlotName + i];
    if (ch < 1 || ch > 127) throw bad_checkpoint(path, "damaged variant name in the header");
    h.variant += char(ch);
  }
  h.variant_options.assign(slots + kSlotOptions, slots + kSlotOptions + option_count);
  return size_t(slots[kSlotAttentionFloats]);
}

std::string describe_variant(const std::string& variant) {
  return variant.empty() ? "llm.c's (qkvw, attprojw)" : "'" + variant + "'";
}

std::string describe_options(const std::vector<int>& options) {
  std::string s = "[";
  for (size_t i = 0; i < options.size(); ++i) s += (i ? ", " : "") + std::to_string(options[i]);
  return s + "]";
}

}  // namespace

bool has_llmc_attention(const ModelConfig& config, const std::vector<TensorSpec>& specs) {
  const size_t C = size_t(config.n_embd);
  const std::vector<std::pair<std::string, std::vector<size_t>>> llmc = {
      {"qkvw", {3 * C, C}}, {"qkvb", {3 * C}}, {"attprojw", {C, C}}, {"attprojb", {C}}};
  if (specs.size() != llmc.size()) return false;
  for (size_t i = 0; i < llmc.size(); ++i)
    if (specs[i].name != llmc[i].first || specs[i].shape != llmc[i].second) return false;
  return true;
}

CheckpointHeader checkpoint_header(const ModelConfig& config, const std::string& variant,
                                   const std::vector<TensorSpec>& attention_specs,
                                   const std::vector<int>& variant_options) {
  if (has_llmc_attention(config, attention_specs)) return {config, "", {}};
  return {config, variant, variant_options};
}

void save_checkpoint(const std::string& path, const CheckpointHeader& header,
                     const std::vector<float>& packed) {
  const std::vector<int32_t> slots = encode_header(path, header, packed.size());
  write_file_atomically(kCheckpoint, path, slots.data(), kLlmcHeaderBytes, packed.data(),
                        packed.size() * sizeof(float));
}

LoadedCheckpoint load_checkpoint(const std::string& path) {
  uint64_t size = 0;
  std::ifstream in = open_binary_input(kCheckpoint, path, &size);
  if (size < kLlmcHeaderBytes)
    throw bad_checkpoint(path, "truncated header: the file has " + std::to_string(size) +
                                     " bytes, the header alone is " + std::to_string(kLlmcHeaderBytes));
  int32_t slots[kLlmcHeaderInts];
  read_bytes(in, slots, kLlmcHeaderBytes, kCheckpoint, path);
  if (slots[0] != kMagic)
    throw bad_checkpoint(path, "not an llm.c GPT-2 checkpoint (magic " + std::to_string(slots[0]) +
                                     ", expected " + std::to_string(kMagic) + ")");
  if (slots[1] != kVersionFp32)
    throw bad_checkpoint(path, "unsupported version " + std::to_string(slots[1]) +
                                     " (attnscope reads version 3: fp32, padded vocab)");
  LoadedCheckpoint loaded;
  loaded.header.config = decode_config(path, slots);
  const size_t floats = packed_floats(loaded.header.config, decode_extension(path, slots, loaded.header));
  const uint64_t body = size - kLlmcHeaderBytes, expected = floats * sizeof(float);
  if (body < expected)
    throw bad_checkpoint(path, "truncated: the header implies " + std::to_string(floats) +
                                     " parameters, the file holds " + std::to_string(body / sizeof(float)));
  if (body > expected)
    throw bad_checkpoint(path, std::to_string(body - expected) + " trailing bytes after the " +
                                     std::to_string(floats) + " parameters the header implies");
  loaded.packed.resize(floats);
  read_bytes(in, loaded.packed.data(), expected, kCheckpoint, path);
  return loaded;
}

void check_checkpoint_matches(const std::string& path, const LoadedCheckpoint& checkpoint,
                              const CheckpointHeader& model, size_t model_floats) {
  auto mismatch = [&](const std::string& what, const std::string& file, const std::string& ours) {
    return UsageError(file_message(kCheckpoint, path, what + " is " + file + ", the model's is " + ours));
  };
  const ModelConfig &a = checkpoint.header.config, &b = model.config;
  const std::pair<const char*, std::pair<int, int>> fields[] = {
      {"max_seq_len", {a.max_seq_len, b.max_seq_len}}, {"vocab_size", {a.vocab_size, b.vocab_size}},
      {"n_layer", {a.n_layer, b.n_layer}},             {"n_head", {a.n_head, b.n_head}},
      {"n_embd", {a.n_embd, b.n_embd}},                {"padded_vocab_size", {a.padded_vocab_size, b.padded_vocab_size}}};
  for (const auto& [name, values] : fields)
    if (values.first != values.second)
      throw mismatch(name, std::to_string(values.first), std::to_string(values.second));
  if (checkpoint.header.variant != model.variant)
    throw mismatch("attention", describe_variant(checkpoint.header.variant), describe_variant(model.variant));
  if (checkpoint.header.variant_options != model.variant_options)
    throw mismatch("the variant's options", describe_options(checkpoint.header.variant_options),
                   describe_options(model.variant_options));
  if (checkpoint.packed.size() != model_floats)
    throw mismatch("the parameter count", std::to_string(checkpoint.packed.size()), std::to_string(model_floats));
}

}  // namespace attnscope
