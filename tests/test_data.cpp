// Training data: the synthetic corpus, text files and llm.c shards, batch order, wrap-around,
// and one-line errors naming the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "host/runtime/error.hpp"
#include "model/data.hpp"
#include "model/synthetic_corpus.hpp"
#include "tests/test_support.hpp"

namespace fs = std::filesystem;
using namespace attnscope;
using namespace attnscope::testing;

namespace {

class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("attnscope_test_data_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write_file(const std::string& name, const std::string& bytes) const {
    std::ofstream(path(name), std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
    return path(name);
  }

  // An llm.c shard; header fields and the body can be damaged on purpose.
  std::string write_shard(const std::string& name, const std::vector<uint16_t>& tokens,
                          int32_t magic = 20240520, int32_t version = 1, int64_t header_count = -1,
                          size_t extra_bytes = 0) const {
    std::vector<int32_t> header(256, 0);
    header[0] = magic;
    header[1] = version;
    header[2] = int32_t(header_count < 0 ? int64_t(tokens.size()) : header_count);
    std::string bytes(reinterpret_cast<const char*>(header.data()), 1024);
    bytes.append(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 2);
    bytes.append(extra_bytes, '\0');
    return write_file(name, bytes);
  }

  fs::path dir_;
};

std::vector<uint16_t> distinct_tokens(size_t n, int vocab) {
  std::vector<uint16_t> tokens(n);
  for (size_t i = 0; i < n; ++i) tokens[i] = uint16_t((i * 7919 + 13) % size_t(vocab));
  return tokens;
}

std::vector<std::vector<int32_t>> take_inputs(DataLoader& loader, int batches) {
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < batches; ++i) out.push_back(loader.next_batch().inputs);
  return out;
}

// Checks batch k = tokens [k·B·T, (k+1)·B·T + 1) of `tokens` starting at `first`.
void expect_batch(const Batch& batch, const std::vector<uint16_t>& tokens, size_t first) {
  const size_t n = size_t(batch.B) * batch.T;
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(batch.inputs[i], tokens[first + i]) << "input " << i;
    ASSERT_EQ(batch.targets[i], tokens[first + i + 1]) << "target " << i;
  }
}

double entropy(const std::map<int, double>& counts) {
  double total = 0, h = 0;
  for (const auto& [k, c] : counts) total += c;
  for (const auto& [k, c] : counts) h -= c / total * std::log(c / total);
  return h;
}

}  // namespace

TEST_F(DataTest, SyntheticCorpusIsDeterministicPerSeedAndDiffersAcrossSeeds) {
  auto a = make_data({"", "", 1}, 4, 64, 256), b = make_data({"", "", 1}, 4, 64, 256);
  auto c = make_data({"", "", 2}, 4, 64, 256);
  const auto first = take_inputs(*a.train, 5);
  EXPECT_EQ(first, take_inputs(*b.train, 5));
  EXPECT_NE(first, take_inputs(*c.train, 5));
  a.train->reset();
  EXPECT_EQ(first, take_inputs(*a.train, 5));
  EXPECT_EQ(a.train->describe(), "built-in synthetic corpus (seed 1)");
}

TEST_F(DataTest, SyntheticTrainAndValidationStreamsDiffer) {
  auto data = make_data({"", "", 1}, 4, 64, 256);
  EXPECT_NE(take_inputs(*data.train, 3), take_inputs(*data.val, 3));
  EXPECT_NE(data.train->describe(), data.val->describe());
}

TEST_F(DataTest, SyntheticTargetsAreInputsShiftedAcrossBatches) {
  auto data = make_data({"", "", 3}, 2, 32, 256);
  std::vector<int32_t> stream;  // inputs of consecutive batches, plus the last target
  Batch last;
  for (int k = 0; k < 200; ++k) {  // far enough to cross many document boundaries
    last = data.train->next_batch();
    stream.insert(stream.end(), last.inputs.begin(), last.inputs.end());
    for (int32_t t : last.inputs) ASSERT_TRUE(t > 0 && t <= SyntheticCorpus::kMaxToken);
  }
  stream.push_back(last.targets.back());
  const size_t offset = stream.size() - 1 - last.inputs.size();
  for (size_t i = 0; i < last.targets.size(); ++i) ASSERT_EQ(last.targets[i], stream[offset + i + 1]);
  EXPECT_EQ(data.train->epoch(), 0);
}

TEST_F(DataTest, SyntheticCorpusHasLowEntropyAndLongRangeStructure) {
  SyntheticCorpus corpus(1, 2);
  std::vector<uint8_t> text;
  while (text.size() < (1u << 20)) corpus.append_document(text);
  std::map<int, double> unigram, pairs, previous;
  for (size_t i = 1; i < text.size(); ++i) {
    unigram[text[i]] += 1;
    pairs[text[i - 1] * 256 + text[i]] += 1;
    previous[text[i - 1]] += 1;
  }
  const double h1 = entropy(unigram), h_next_given_previous = entropy(pairs) - entropy(previous);
  const double source_rate = corpus.source_nats() / double(text.size());
  EXPECT_LT(h1, std::log(256.0) - 1);
  EXPECT_LT(h_next_given_previous, h1 - 0.5);
  // The source is far more predictable than its bigram statistics: context pays.
  EXPECT_LT(source_rate, h_next_given_previous - 0.5);
  EXPECT_GT(source_rate, 0.1);
}

TEST_F(DataTest, TextFileBatchesItsBytesExactly) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text += char(32 + (i * 37) % 95);
  const std::string file = write_file("book.txt", text);
  const std::vector<uint16_t> bytes(text.begin(), text.end());
  auto data = make_data({file, "", 1}, 2, 16, 256);
  for (size_t k = 0; k < 3; ++k) expect_batch(data.train->next_batch(), bytes, k * 32);
  expect_batch(data.val->next_batch(), bytes, 900);  // the last 10%
  EXPECT_EQ(data.train->describe(), "text file " + file + ": 900 tokens (first 90% of 1000)");
}

TEST_F(DataTest, ShardIsReadInOrderAndWrapsCountingEpochs) {
  const auto tokens = distinct_tokens(30, 50257);
  const std::string train = write_shard("train.bin", tokens);
  const std::string val = write_shard("val.bin", distinct_tokens(20, 50000));
  auto data = make_data({train, val, 1}, 2, 4, 50257);  // 8 tokens a batch: 3 per epoch
  for (size_t k = 0; k < 3; ++k) {
    expect_batch(data.train->next_batch(), tokens, k * 8);
    EXPECT_EQ(data.train->epoch(), 0);
  }
  expect_batch(data.train->next_batch(), tokens, 0);
  EXPECT_EQ(data.train->epoch(), 1);
  data.train->reset();
  EXPECT_EQ(data.train->epoch(), 0);
  expect_batch(data.train->next_batch(), tokens, 0);
  expect_batch(data.val->next_batch(), distinct_tokens(20, 50000), 0);
  EXPECT_EQ(data.train->describe(), "shard " + train + ": 30 tokens");
}

TEST_F(DataTest, ShardWithoutValidationFileHoldsOutItsLastTenthAndIsDetectedByMagic) {
  const auto tokens = distinct_tokens(200, 50257);
  const std::string shard = write_shard("tokens.dat", tokens);  // not *.bin: found by magic
  auto data = make_data({shard, "", 1}, 2, 8, 50257);
  expect_batch(data.train->next_batch(), tokens, 0);
  expect_batch(data.val->next_batch(), tokens, 180);
  EXPECT_EQ(data.val->describe(), "shard " + shard + ": 20 tokens (last 10% of 200)");
}

TEST_F(DataTest, FileErrorsNameTheFileAndTheProblem) {
  const std::string missing = path("missing.bin");
  expect_error<UsageError>([&] { make_data({missing, "", 1}, 1, 4, 256); }, {missing, "no such file"});
  expect_error<UsageError>([&] { make_data({dir_.string(), "", 1}, 1, 4, 256); },
                           {dir_.string(), "not a regular file"});
  const std::string text_as_bin = write_file("text.bin", std::string(2000, 'a'));
  expect_error<Error>([&] { make_data({text_as_bin, "", 1}, 1, 4, 256); }, {text_as_bin, "magic"});
  const auto tokens = distinct_tokens(100, 256);
  const std::string v2 = write_shard("v2.bin", tokens, 20240520, 2);
  expect_error<Error>([&] { make_data({v2, "", 1}, 1, 4, 256); }, {v2, "version 2"});
  const std::string truncated = write_shard("short.bin", tokens, 20240520, 1, 150);
  expect_error<Error>([&] { make_data({truncated, "", 1}, 1, 4, 256); },
                      {truncated, "truncated", "150", "100"});
  const std::string trailing = write_shard("long.bin", tokens, 20240520, 1, -1, 3);
  expect_error<Error>([&] { make_data({trailing, "", 1}, 1, 4, 256); }, {trailing, "3 trailing bytes"});
  const std::string stub = write_file("stub.bin", std::string(100, '\0'));
  expect_error<Error>([&] { make_data({stub, "", 1}, 1, 4, 256); }, {stub, "truncated header"});
}

TEST_F(DataTest, DataThatDoesNotFitTheRunIsAUsageError) {
  const std::string small = write_file("small.txt", std::string(100, 'x'));  // val: 10 bytes
  expect_error<UsageError>([&] { make_data({small, "", 1}, 1, 16, 256); },
                           {small, "last 10%", "fewer than one batch", "17"});
  auto tokens = distinct_tokens(100, 256);
  tokens[42] = 300;
  const std::string big_token = write_shard("vocab.bin", tokens);
  expect_error<UsageError>([&] { make_data({big_token, "", 1}, 1, 4, 256); },
                           {big_token, "token 300 at position 42", "256"});
  const std::string text = write_file("bytes.txt", std::string(50, 'a') + "\xff" + std::string(50, 'a'));
  expect_error<UsageError>([&] { make_data({text, "", 1}, 1, 4, 128); }, {text, "token 255 at position 50"});
  const std::string shard = write_shard("ok.bin", distinct_tokens(100, 256));
  expect_error<UsageError>([&] { make_data({shard, text, 1}, 1, 4, 256); }, {text, "text file", "shard"});
  expect_error<UsageError>([&] { make_data({"", "", 1}, 1, 4, 100); }, {"synthetic", "128"});
  expect_error<UsageError>([&] { make_data({"", "", 1}, 0, 4, 256); }, {"B=0"});
}

// `attnscope data --export`: shards of the synthetic streams feed the same batches (train
// and validation, before and after a reset) as the built-in corpus itself.
TEST_F(DataTest, ExportedShardsReplayTheSyntheticStreams) {
  const int B = 3, T = 17, batches = 40;
  const size_t n = size_t(batches) * B * T + 1;
  const std::string train = path("export_train.bin"), val = path("export_val.bin");
  attnscope::write_shard(train, synthetic_tokens(5, false, n));
  attnscope::write_shard(val, synthetic_tokens(5, true, n));
  DataLoaders built_in = make_data(DataSpec{"", "", 5}, B, T, 256);
  DataLoaders exported = make_data(DataSpec{train, val, 5}, B, T, 256);
  for (auto [a, b] : {std::pair{built_in.train.get(), exported.train.get()},
                      std::pair{built_in.val.get(), exported.val.get()}}) {
    for (int pass = 0; pass < 2; ++pass) {
      for (int k = 0; k < batches; ++k) {
        const Batch &x = a->next_batch(), &y = b->next_batch();
        ASSERT_EQ(x.inputs, y.inputs) << "batch " << k;
        ASSERT_EQ(x.targets, y.targets) << "batch " << k;
      }
      EXPECT_EQ(b->epoch(), 0);
      a->reset();
      b->reset();
    }
  }
  EXPECT_NE(synthetic_tokens(5, false, 64), synthetic_tokens(5, true, 64));
  EXPECT_NE(synthetic_tokens(5, false, 64), synthetic_tokens(6, false, 64));
}
