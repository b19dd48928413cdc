// Training data: batches of token ids, (B,T) inputs and (B,T) targets, from one of three
// sources (DataSpec.path):
//
// 1. "" — the built-in synthetic corpus (synthetic_corpus.hpp): ASCII bytes, so any model
//    with vocab ≥ 128 can read it. Train and validation are two streams of the same
//    language, drawn from different stream seeds. Endless: it never wraps.
// 2. A text file: its bytes are the tokens (vocab 256). Validation is the last 10% of the
//    bytes (from byte n − ⌊n/10⌋; the cut may split a UTF-8 character, which a byte-level
//    model does not mind), training the first 90%.
// 3. An llm.c token shard: int32[256] header (magic 20240520, version 1, [2] = token count),
//    then that many uint16 tokens, little-endian. Validation is DataSpec.val_path if given,
//    else the last 10% of the tokens.
// Shard or text is decided by the magic number in the first 4 bytes; a file named *.bin (llm.c's
// naming) must be a shard, so a wrong magic there is an error rather than silently text.
// DataSpec.val_path, when given, must be of the same kind as DataSpec.path.
//
// Files are read whole into memory, in order, without shuffling (llm.c's loader without
// shuffle): batch k of an epoch is tokens [k·B·T, (k+1)·B·T + 1); row b of the inputs is
// tokens [k·B·T + b·T, +T) and the targets are the same tokens shifted by one. When the next
// batch would run past the end, reading restarts at token 0 and epoch() counts the wrap
// (a tail shorter than one batch is skipped). The synthetic streams are read the same way.
//
// Errors are one line naming the file, UsageError (bad input, exit 2) for a missing or
// unreadable file, a split smaller than one batch, a token outside the model's vocabulary
// and a malformed shard (wrong magic or version, truncated, trailing bytes); Error only
// for a read that fails part-way.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace attnscope {

struct DataSpec {
  std::string path;      // "" = built-in synthetic corpus; else a text file or llm.c shard
  std::string val_path;  // optional held-out file of the same kind as path
  uint64_t seed = 1;     // the synthetic corpus's language and streams
};

struct Batch {
  int B = 0, T = 0;
  std::vector<int32_t> inputs;   // (B,T) row-major
  std::vector<int32_t> targets;  // (B,T): the token that follows each input
};

class DataLoader {
 public:
  DataLoader(int B, int T);
  virtual ~DataLoader() = default;

  // The next batch; the reference stays valid until the next call.
  const Batch& next_batch();
  // Back to batch 0 and epoch 0, so that each evaluation sees the same validation batches.
  virtual void reset() = 0;
  // How many times reading wrapped back to the start of the data.
  int64_t epoch() const { return epoch_; }
  // For the startup banner, e.g. "built-in synthetic corpus (seed 1)".
  virtual std::string describe() const = 0;

 protected:
  // Fills `window` (B·T + 1 tokens) with the next batch's tokens.
  virtual void next_window(std::vector<int32_t>& window) = 0;
  int64_t epoch_ = 0;

 private:
  Batch batch_;
  std::vector<int32_t> window_;
};

struct DataLoaders {
  std::unique_ptr<DataLoader> train;
  std::unique_ptr<DataLoader> val;
};

// Opens the training and validation data for batches of B×T tokens and a model of vocab_size.
DataLoaders make_data(const DataSpec& spec, int B, int T, int vocab_size);

// The first n tokens of the built-in corpus's training or validation stream for `seed`:
// what the synthetic loaders read, so a shard of them replays a run token for token.
std::vector<uint16_t> synthetic_tokens(uint64_t seed, bool validation, size_t n);

// Writes tokens as an llm.c shard (the format above), atomically; UsageError when there are
// more than the header's int32 count can hold.
void write_shard(const std::string& path, const std::vector<uint16_t>& tokens);

}  // namespace attnscope
