#include "model/data.hpp"

#include <algorithm>

#include "host/runtime/error.hpp"
#include "model/binary_file.hpp"
#include "model/synthetic_corpus.hpp"

namespace attnscope {

DataLoader::DataLoader(int B, int T) : window_(size_t(B) * T + 1) {
  batch_.B = B;
  batch_.T = T;
  batch_.inputs.resize(size_t(B) * T);
  batch_.targets.resize(size_t(B) * T);
}

const Batch& DataLoader::next_batch() {
  next_window(window_);
  std::copy(window_.begin(), window_.end() - 1, batch_.inputs.begin());
  std::copy(window_.begin() + 1, window_.end(), batch_.targets.begin());
  return batch_;
}

namespace {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;
constexpr const char* kShard = "shard";
constexpr const char* kTextFile = "text file";

// One data file's tokens, whole.
struct TokenFile {
  std::string kind;  // kShard or kTextFile
  std::string path;
  std::vector<uint16_t> tokens;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

TokenFile read_shard(std::ifstream& in, const std::string& path, uint64_t size) {
  auto fail = [&](const std::string& problem) { return UsageError(file_message(kShard, path, problem)); };
  if (size < kLlmcHeaderBytes)
    throw fail("truncated header: the file has " + std::to_string(size) + " bytes, the header alone is " +
               std::to_string(kLlmcHeaderBytes));
  int32_t header[kLlmcHeaderInts];
  read_bytes(in, header, kLlmcHeaderBytes, kShard, path);
  if (header[0] != kShardMagic)
    throw fail("not an llm.c token shard (magic " + std::to_string(header[0]) + ", expected " +
               std::to_string(kShardMagic) + ")");
  if (header[1] != kShardVersion)
    throw fail("unsupported shard version " + std::to_string(header[1]) + " (expected " +
               std::to_string(kShardVersion) + ")");
  if (header[2] < 0) throw fail("negative token count " + std::to_string(header[2]) + " in the header");
  const uint64_t count = uint64_t(header[2]);
  const uint64_t body = size - kLlmcHeaderBytes;
  if (body < count * sizeof(uint16_t))
    throw fail("truncated: the header says " + std::to_string(count) + " tokens, the file holds " +
               std::to_string(body / sizeof(uint16_t)));
  if (body > count * sizeof(uint16_t))
    throw fail(std::to_string(body - count * sizeof(uint16_t)) + " trailing bytes after the " +
               std::to_string(count) + " tokens the header announces");
  TokenFile file{kShard, path, std::vector<uint16_t>(count)};
  read_bytes(in, file.tokens.data(), body, kShard, path);
  return file;
}

TokenFile read_text(std::ifstream& in, const std::string& path, uint64_t size) {
  std::vector<uint8_t> bytes(size);
  read_bytes(in, bytes.data(), size, kTextFile, path);
  return TokenFile{kTextFile, path, std::vector<uint16_t>(bytes.begin(), bytes.end())};
}

TokenFile read_token_file(const std::string& path) {
  uint64_t size = 0;
  std::ifstream in = open_binary_input("data file", path, &size);
  int32_t magic = 0;
  if (size >= sizeof(magic)) {
    read_bytes(in, &magic, sizeof(magic), "data file", path);
    in.seekg(0);
  }
  if (magic == kShardMagic || ends_with(path, ".bin")) return read_shard(in, path, size);
  return read_text(in, path, size);
}

void check_vocabulary(const TokenFile& file, int vocab_size) {
  const auto bad = std::find_if(file.tokens.begin(), file.tokens.end(),
                                [&](uint16_t t) { return int(t) >= vocab_size; });
  if (bad != file.tokens.end())
    throw UsageError(file_message(file.kind, file.path,
                                  "token " + std::to_string(*bad) + " at position " +
                                      std::to_string(bad - file.tokens.begin()) +
                                      " is outside the model's vocabulary (" +
                                      std::to_string(vocab_size) + " tokens)"));
}

// Reads a token array in order, wrapping at its end.
class TokenArrayLoader final : public DataLoader {
 public:
  TokenArrayLoader(int B, int T, std::vector<uint16_t> tokens, std::string description)
      : DataLoader(B, T), tokens_(std::move(tokens)), description_(std::move(description)) {}
  void reset() override {
    position_ = 0;
    epoch_ = 0;
  }
  std::string describe() const override { return description_; }

 protected:
  void next_window(std::vector<int32_t>& window) override {
    if (position_ + window.size() > tokens_.size()) {
      position_ = 0;
      ++epoch_;
    }
    std::copy_n(tokens_.begin() + position_, window.size(), window.begin());
    position_ += window.size() - 1;  // consecutive batches share one token, as in llm.c
  }

 private:
  std::vector<uint16_t> tokens_;
  std::string description_;
  size_t position_ = 0;
};

// Tokens [begin, end) of a file as a loader; `part` names the split ("" for the whole file).
std::unique_ptr<DataLoader> token_loader(const TokenFile& file, size_t begin, size_t end,
                                         const std::string& part, int B, int T) {
  const size_t count = end - begin, needed = size_t(B) * T + 1;
  const std::string what = part.empty() ? std::string("it") : "its " + part;
  if (count < needed)
    throw UsageError(file_message(file.kind, file.path,
                                  what + " has " + std::to_string(count) +
                                      " tokens, fewer than one batch needs (B·T+1 = " +
                                      std::to_string(needed) + ")"));
  std::string description = file.kind + " " + file.path + ": " + std::to_string(count) + " tokens";
  if (!part.empty()) description += " (" + part + " of " + std::to_string(file.tokens.size()) + ")";
  std::vector<uint16_t> tokens(file.tokens.begin() + begin, file.tokens.begin() + end);
  return std::make_unique<TokenArrayLoader>(B, T, std::move(tokens), std::move(description));
}

// Train and validation: the same language, different text.
uint64_t synthetic_stream_seed(uint64_t seed, bool validation) { return 2 * seed + (validation ? 1 : 0); }

// One endless stream of the built-in corpus, generated a document at a time.
class SyntheticLoader final : public DataLoader {
 public:
  SyntheticLoader(int B, int T, uint64_t seed, bool validation)
      : DataLoader(B, T), seed_(seed), validation_(validation),
        corpus_(seed, synthetic_stream_seed(seed, validation)) {}
  void reset() override {
    corpus_ = SyntheticCorpus(seed_, synthetic_stream_seed(seed_, validation_));
    buffer_.clear();
    position_ = 0;
    epoch_ = 0;
  }
  std::string describe() const override {
    return "built-in synthetic corpus (seed " + std::to_string(seed_) +
           (validation_ ? ", validation stream)" : ")");
  }

 protected:
  void next_window(std::vector<int32_t>& window) override {
    if (position_ + window.size() > buffer_.size()) {
      buffer_.erase(buffer_.begin(), buffer_.begin() + position_);
      position_ = 0;
      while (buffer_.size() < window.size()) corpus_.append_document(buffer_);
    }
    std::copy_n(buffer_.begin() + position_, window.size(), window.begin());
    position_ += window.size() - 1;
  }

 private:
  uint64_t seed_;
  bool validation_;
  SyntheticCorpus corpus_;
  std::vector<uint8_t> buffer_;
  size_t position_ = 0;
};

DataLoaders synthetic_data(const DataSpec& spec, int B, int T, int vocab_size) {
  if (!spec.val_path.empty())
    throw UsageError("validation file " + spec.val_path +
                     " given without a training data file (the built-in corpus has its own validation stream)");
  if (vocab_size <= SyntheticCorpus::kMaxToken)
    throw UsageError("the built-in synthetic corpus needs a vocabulary of at least " +
                     std::to_string(SyntheticCorpus::kMaxToken + 1) + " tokens, the model has " +
                     std::to_string(vocab_size));
  return {std::make_unique<SyntheticLoader>(B, T, spec.seed, false),
          std::make_unique<SyntheticLoader>(B, T, spec.seed, true)};
}

DataLoaders file_data(const DataSpec& spec, int B, int T, int vocab_size) {
  const TokenFile train = read_token_file(spec.path);
  check_vocabulary(train, vocab_size);
  const size_t n = train.tokens.size();
  if (spec.val_path.empty()) {
    const size_t split = n - n / 10;
    return {token_loader(train, 0, split, "first 90%", B, T),
            token_loader(train, split, n, "last 10%", B, T)};
  }
  const TokenFile val = read_token_file(spec.val_path);
  if (val.kind != train.kind)
    throw UsageError(file_message("validation data", val.path,
                                  "is a " + val.kind + " but the training data " + train.path +
                                      " is a " + train.kind));
  check_vocabulary(val, vocab_size);
  return {token_loader(train, 0, n, "", B, T), token_loader(val, 0, val.tokens.size(), "", B, T)};
}

}  // namespace

std::vector<uint16_t> synthetic_tokens(uint64_t seed, bool validation, size_t n) {
  SyntheticCorpus corpus(seed, synthetic_stream_seed(seed, validation));
  std::vector<uint8_t> bytes;
  while (bytes.size() < n) corpus.append_document(bytes);
  return std::vector<uint16_t>(bytes.begin(), bytes.begin() + n);
}

void write_shard(const std::string& path, const std::vector<uint16_t>& tokens) {
  if (tokens.size() > uint64_t(INT32_MAX))
    throw UsageError(file_message(kShard, path, std::to_string(tokens.size()) +
                                                    " tokens, more than a shard's header can count"));
  int32_t header[kLlmcHeaderInts] = {kShardMagic, kShardVersion, int32_t(tokens.size())};
  write_file_atomically(kShard, path, header, kLlmcHeaderBytes, tokens.data(),
                        tokens.size() * sizeof(uint16_t));
}

DataLoaders make_data(const DataSpec& spec, int B, int T, int vocab_size) {
  if (B < 1 || T < 1)
    throw UsageError("batch size and sequence length must be positive, got B=" + std::to_string(B) +
                     " T=" + std::to_string(T));
  return spec.path.empty() ? synthetic_data(spec, B, T, vocab_size)
                           : file_data(spec, B, T, vocab_size);
}

}  // namespace attnscope
