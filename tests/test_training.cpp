// The tiny model on the built-in data, end to end on the test device: the step-0 loss is
// ln(vocab), the loss falls, a seed fixes every loss bit for bit, a checkpoint round trip
// keeps the model, and every attention variant trains.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "host/runtime/error.hpp"
#include "model/registry.hpp"
#include "model/training.hpp"
#include "test_support.hpp"

namespace attnscope {
namespace {

TrainSettings tiny_settings(const std::string& variant = "baseline") {
  TrainSettings s;
  s.model = preset_config("tiny");
  s.variant = variant;
  s.batch = 4;
  s.seq = 64;
  s.seed = 1337;
  s.val_batches = 2;
  return s;
}

std::vector<float> train_losses(TrainingRun& run, int steps) {
  std::vector<float> losses;
  for (int i = 0; i < steps; ++i) losses.push_back(run.step().loss);
  return losses;
}

double mean(const std::vector<float>& v, size_t begin, size_t end) {
  return std::accumulate(v.begin() + begin, v.begin() + end, 0.0) / double(end - begin);
}

TEST(Training, StepZeroLossIsLnVocab) {
  TrainingRun run(testing::shared_ops(), tiny_settings());
  const float loss = run.step().loss;
  EXPECT_NEAR(loss, std::log(256.0), 0.15);
}

TEST(Training, LossFallsClearlyWithinAFewHundredSteps) {
  TrainingRun run(testing::shared_ops(), tiny_settings());
  const float before = run.validate().value();
  const std::vector<float> losses = train_losses(run, 200);
  const float after = run.validate().value();
  // The synthetic corpus has learnable structure: far below the uniform ln(256) = 5.55.
  EXPECT_LT(mean(losses, 190, 200), mean(losses, 0, 10) - 1.0);
  EXPECT_LT(after, before - 1.0);
}

// A long run's memory is constant in its steps: a runtime with a profiling queue keeps no
// launch's event unless its profiler was switched on (the benchmark's measured steps, which
// collect them), so training and validation leave nothing pending however long they run.
TEST(Training, StepsKeepNoProfilingEventsUnlessProfilingIsOn) {
  Runtime& runtime = testing::shared_runtime();
  runtime.profiler().reset();
  TrainingRun run(testing::shared_ops(), tiny_settings());
  train_losses(run, 3);
  run.validate();
  EXPECT_EQ(runtime.profiler().pending_count(), 0u);
  runtime.profiler().set_enabled(true);
  run.step();
  EXPECT_GT(runtime.profiler().pending_count(), 0u) << "the count must see recorded launches";
  runtime.profiler().set_enabled(false);
  runtime.profiler().reset();
}

// Validation polls its stop check between batches, and more batches than the held-out
// data holds are refused rather than counted twice.
TEST(Training, ValidationStopsWhenAskedAndFitsTheHeldOutData) {
  TrainSettings s = tiny_settings();
  s.val_batches = 1000000;
  TrainingRun run(testing::shared_ops(), s);
  int polls = 0;
  EXPECT_FALSE(run.validate([&] { return ++polls > 3; }).has_value());
  EXPECT_EQ(polls, 4);

  const std::string file = (std::filesystem::temp_directory_path() /
                            ("attnscope_val_" + std::to_string(::getpid()) + ".txt")).string();
  std::ofstream(file) << std::string(20000, 'a');  // last 10%: 2000 tokens, 7 batches of 4×64
  s.data.path = file;
  s.val_batches = 7;
  TrainingRun fits(testing::shared_ops(), s);
  s.val_batches = 8;
  testing::expect_error<UsageError>([&] { TrainingRun(testing::shared_ops(), s); },
                                    {"--val-batches 8", "7 distinct batches"});
  std::filesystem::remove(file);
}

TEST(Training, SameSeedGivesIdenticalLosses) {
  TrainingRun a(testing::shared_ops(), tiny_settings());
  TrainingRun b(testing::shared_ops(), tiny_settings());
  const auto la = train_losses(a, 5), lb = train_losses(b, 5);
  EXPECT_EQ(la, lb);
  TrainSettings other = tiny_settings();
  other.seed = 7;
  TrainingRun c(testing::shared_ops(), other);
  EXPECT_NE(train_losses(c, 5), la);
}

TEST(Training, SaveThenLoadGivesIdenticalLosses) {
  const auto path = std::filesystem::temp_directory_path() / "attnscope_test_training.bin";
  TrainingRun trained(testing::shared_ops(), tiny_settings());
  train_losses(trained, 3);
  trained.save_checkpoint(path.string());
  const float val_trained = trained.validate().value();

  TrainSettings load = tiny_settings();
  load.load_path = path.string();
  TrainingRun first(testing::shared_ops(), load), second(testing::shared_ops(), load);
  // Held-out loss is a forward pass over fixed batches: the loaded weights are the saved ones.
  EXPECT_EQ(first.validate().value(), val_trained);
  EXPECT_EQ(first.step().loss, second.step().loss);
  std::filesystem::remove(path);
}

class VariantTraining : public ::testing::TestWithParam<std::string> {};

TEST_P(VariantTraining, TinyModelLossFalls) {
  TrainingRun run(testing::shared_ops(), tiny_settings(GetParam()));
  const std::vector<float> losses = train_losses(run, 60);
  for (float l : losses) ASSERT_TRUE(std::isfinite(l));
  EXPECT_LT(mean(losses, 55, 60), mean(losses, 0, 5) - 0.3) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(AllVariants, VariantTraining, ::testing::ValuesIn(variant_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace attnscope
