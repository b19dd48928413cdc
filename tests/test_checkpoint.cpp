// Checkpoints: llm.c's GPT-2 format byte for byte, the attnscope extension for other
// attention shapes, bit-exact round trips, and one-line errors naming the file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "host/runtime/error.hpp"
#include "model/checkpoint.hpp"
#include "model/parameters.hpp"
#include "tests/test_support.hpp"

namespace fs = std::filesystem;
using namespace attnscope;
using namespace attnscope::testing;

namespace {

ModelConfig small_config() {
  ModelConfig c;
  c.max_seq_len = 8;
  c.vocab_size = 200;
  c.padded_vocab_size = padded_vocab(200);
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 8;
  return c;
}

std::vector<TensorSpec> llmc_attention(size_t C) {
  return {{"qkvw", {3 * C, C}}, {"qkvb", {3 * C}}, {"attprojw", {C, C}}, {"attprojb", {C}}};
}

// A grouped-query-like attention: W_q (C,C), W_kv (2·G·d, C) with G·d = C/2.
std::vector<TensorSpec> other_attention(size_t C) {
  return {{"wq", {C, C}}, {"bq", {C}}, {"wkv", {C, C}}, {"bkv", {C}},
          {"attprojw", {C, C}}, {"attprojb", {C}}};
}

// Distinct values, with the awkward ones a float copy must keep bit for bit.
std::vector<float> test_parameters(size_t n) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = float(std::sin(double(i))) * 0.1f;
  v[1] = -0.0f;
  v[2] = std::numeric_limits<float>::denorm_min();
  v[3] = std::numeric_limits<float>::quiet_NaN();
  v[4] = std::numeric_limits<float>::infinity();
  return v;
}

// llm.c's own parameter count (train_gpt2.c, fill_in_parameter_sizes).
size_t llmc_parameter_count(const ModelConfig& c) {
  const size_t Vp = c.padded_vocab_size, T = c.max_seq_len, L = c.n_layer, C = c.n_embd;
  return Vp * C + T * C + L * (C + C + 3 * C * C + 3 * C + C * C + C + C + C + 4 * C * C + 4 * C +
                              4 * C * C + C) + C + C;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_all(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

int32_t int_at(const std::string& bytes, size_t offset) {
  int32_t v;
  std::memcpy(&v, bytes.data() + offset, sizeof v);
  return v;
}

void set_int_at(std::string& bytes, size_t offset, int32_t v) { std::memcpy(&bytes[offset], &v, sizeof v); }

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("attnscope_test_checkpoint_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // An llm.c-shaped checkpoint on disk and what was saved.
  std::string save_llmc(const std::string& name, std::vector<float>* saved = nullptr) {
    const ModelConfig c = small_config();
    const auto packed = test_parameters(ParameterLayout(c, llmc_attention(8), 1).packed_floats());
    save_checkpoint(path(name), checkpoint_header(c, "baseline", llmc_attention(8), {}), packed);
    if (saved) *saved = packed;
    return path(name);
  }

  fs::path dir_;
};

}  // namespace

TEST_F(CheckpointTest, LlmcShapedRoundTripIsBitExactAndCarriesNoExtension) {
  std::vector<float> saved;
  const std::string file = save_llmc("model.bin", &saved);
  const LoadedCheckpoint loaded = load_checkpoint(file);
  ASSERT_EQ(loaded.packed.size(), saved.size());
  EXPECT_EQ(std::memcmp(loaded.packed.data(), saved.data(), saved.size() * sizeof(float)), 0);
  EXPECT_EQ(loaded.header.variant, "");
  EXPECT_TRUE(loaded.header.variant_options.empty());
  const ModelConfig c = small_config();
  EXPECT_EQ(loaded.header.config.n_layer, c.n_layer);
  EXPECT_EQ(loaded.header.config.padded_vocab_size, c.padded_vocab_size);
  EXPECT_FALSE(fs::exists(file + ".tmp"));
}

TEST_F(CheckpointTest, WrittenFileIsWhatLlmcReads) {
  std::vector<float> saved;
  const std::string bytes = read_all(save_llmc("model.bin", &saved));
  const ModelConfig c = small_config();
  const int32_t expected[8] = {20240326, 3, c.max_seq_len, c.vocab_size, c.n_layer, c.n_head,
                               c.n_embd, c.padded_vocab_size};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(int_at(bytes, 4 * i), expected[i]) << "header[" << i << "]";
  for (int i = 8; i < 256; ++i) ASSERT_EQ(int_at(bytes, 4 * i), 0) << "header[" << i << "]";
  EXPECT_EQ(saved.size(), llmc_parameter_count(c));
  ASSERT_EQ(bytes.size(), 1024 + 4 * llmc_parameter_count(c));
  EXPECT_EQ(std::memcmp(bytes.data() + 1024, saved.data(), 4 * saved.size()), 0);
}

TEST_F(CheckpointTest, OtherAttentionShapesRoundTripThroughTheExtension) {
  const ModelConfig c = small_config();
  const ParameterLayout layout(c, other_attention(8), 1);
  const auto packed = test_parameters(layout.packed_floats());
  const CheckpointHeader header = checkpoint_header(c, "gqa", other_attention(8), {1, 64, -3});
  ASSERT_EQ(header.variant, "gqa");
  save_checkpoint(path("gqa.bin"), header, packed);

  const LoadedCheckpoint loaded = load_checkpoint(path("gqa.bin"));
  EXPECT_EQ(loaded.header.variant, "gqa");
  EXPECT_EQ(loaded.header.variant_options, (std::vector<int>{1, 64, -3}));
  ASSERT_EQ(loaded.packed.size(), packed.size());
  EXPECT_EQ(std::memcmp(loaded.packed.data(), packed.data(), packed.size() * sizeof(float)), 0);
  EXPECT_NO_THROW(check_checkpoint_matches(path("gqa.bin"), loaded, header, layout.packed_floats()));

  const std::string bytes = read_all(path("gqa.bin"));
  EXPECT_EQ(bytes.substr(32, 4), "atsc");  // header[8], the marker
  EXPECT_EQ(int_at(bytes, 40), 8 * 8 * 3 + 8 * 3);  // header[10], attention floats per layer
  EXPECT_EQ(char(int_at(bytes, 64)), 'g');  // header[16], the name's first character
  EXPECT_EQ(int_at(bytes, 0), 20240326);
}

TEST_F(CheckpointTest, MalformedFilesAreRefusedNamingTheFile) {
  const std::string good = read_all(save_llmc("good.bin"));
  const std::string missing = path("missing.bin");
  expect_error<UsageError>([&] { load_checkpoint(missing); }, {missing, "no such file"});

  std::string bytes = good;
  set_int_at(bytes, 0, 20240520);  // a token shard's magic
  write_all(path("magic.bin"), bytes);
  expect_error<Error>([&] { load_checkpoint(path("magic.bin")); }, {path("magic.bin"), "magic 20240520"});

  bytes = good;
  set_int_at(bytes, 4, 5);  // llm.c's bf16 version
  write_all(path("bf16.bin"), bytes);
  expect_error<Error>([&] { load_checkpoint(path("bf16.bin")); }, {path("bf16.bin"), "version 5"});

  write_all(path("short.bin"), good.substr(0, good.size() - 4));
  expect_error<Error>([&] { load_checkpoint(path("short.bin")); }, {path("short.bin"), "truncated"});

  write_all(path("stub.bin"), good.substr(0, 100));
  expect_error<Error>([&] { load_checkpoint(path("stub.bin")); }, {path("stub.bin"), "truncated header"});

  write_all(path("long.bin"), good + "xyz");
  expect_error<Error>([&] { load_checkpoint(path("long.bin")); }, {path("long.bin"), "3 trailing bytes"});

  bytes = good;
  set_int_at(bytes, 4 * 4, -2);  // n_layer
  write_all(path("layers.bin"), bytes);
  expect_error<Error>([&] { load_checkpoint(path("layers.bin")); }, {path("layers.bin"), "n_layer"});

  bytes = good;
  set_int_at(bytes, 32, 7);  // header[8]: neither llm.c's 0 nor the marker
  write_all(path("slot8.bin"), bytes);
  expect_error<Error>([&] { load_checkpoint(path("slot8.bin")); }, {path("slot8.bin"), "slot 8"});
}

TEST_F(CheckpointTest, ACheckpointOfAnotherModelIsRefused) {
  const std::string file = save_llmc("model.bin");
  const LoadedCheckpoint loaded = load_checkpoint(file);
  const ModelConfig c = small_config();
  const size_t floats = ParameterLayout(c, llmc_attention(8), 1).packed_floats();
  EXPECT_NO_THROW(check_checkpoint_matches(file, loaded, checkpoint_header(c, "sdpa", llmc_attention(8), {}), floats));

  ModelConfig deeper = c;
  deeper.n_layer = 3;
  expect_error<UsageError>([&] { check_checkpoint_matches(file, loaded, {deeper, "", {}}, floats); },
                           {file, "n_layer is 2", "3"});
  expect_error<UsageError>([&] { check_checkpoint_matches(file, loaded, {c, "mla", {32}}, floats); },
                           {file, "attention", "'mla'"});
  expect_error<UsageError>([&] { check_checkpoint_matches(file, loaded, {c, "", {}}, floats + 1); },
                           {file, "parameter count"});
  LoadedCheckpoint with_options = loaded;
  with_options.header = {c, "gqa", {2}};
  expect_error<UsageError>([&] { check_checkpoint_matches(file, with_options, {c, "gqa", {4}}, floats); },
                           {file, "options", "[2]", "[4]"});
}

TEST_F(CheckpointTest, SavingParametersThatDoNotFitTheHeaderFails) {
  const ModelConfig c = small_config();
  const size_t floats = ParameterLayout(c, llmc_attention(8), 1).packed_floats();
  expect_error<Error>([&] { save_checkpoint(path("bad.bin"), {c, "", {}}, std::vector<float>(floats - 1)); },
                      {path("bad.bin"), "llm.c"});
  expect_error<Error>([&] { save_checkpoint(path("odd.bin"), {c, "gqa", {}}, std::vector<float>(floats + 1)); },
                      {path("odd.bin"), "do not fit"});
  EXPECT_FALSE(fs::exists(path("bad.bin")));
  EXPECT_FALSE(fs::exists(path("odd.bin")));
  const std::string nowhere = path("no_such_dir/model.bin");
  expect_error<Error>([&] { save_checkpoint(nowhere, {c, "", {}}, std::vector<float>(floats)); },
                      {nowhere, "does not exist"});
}

TEST_F(CheckpointTest, SavingOverAnOldCheckpointReplacesItWhole) {
  save_llmc("model.bin");
  const ModelConfig c = small_config();
  std::vector<float> zeros(ParameterLayout(c, llmc_attention(8), 1).packed_floats(), 0.f);
  save_checkpoint(path("model.bin"), {c, "", {}}, zeros);
  EXPECT_EQ(load_checkpoint(path("model.bin")).packed, zeros);
  EXPECT_FALSE(fs::exists(path("model.bin.tmp")));
}
