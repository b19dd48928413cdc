// The tiny model on the built-in data, end to end on the test device: the step-0 loss is
// ln(vocab), the loss falls, a seed fixes every loss bit for bit, a checkpoint round trip
// keeps the model, and every attention variant trains.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>

#include "host/runtime/error.hpp"
#include "model/memory_plan.hpp"
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
  const float before = run.validate();
  const std::vector<float> losses = train_losses(run, 200);
  const float after = run.validate();
  // The synthetic corpus has learnable structure: far below the uniform ln(256) = 5.55.
  EXPECT_LT(mean(losses, 190, 200), mean(losses, 0, 10) - 1.0);
  EXPECT_LT(after, before - 1.0);
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
  const float val_trained = trained.validate();

  TrainSettings load = tiny_settings();
  load.load_path = path.string();
  TrainingRun first(testing::shared_ops(), load), second(testing::shared_ops(), load);
  // Held-out loss is a forward pass over fixed batches: the loaded weights are the saved ones.
  EXPECT_EQ(first.validate(), val_trained);
  EXPECT_EQ(first.step().loss, second.step().loss);
  std::filesystem::remove(path);
}

// A plan over the device's memory (less what is in use) or with a buffer over its largest
// allocation is refused, naming the bytes needed and available; one that fits is not.
TEST(MemoryPlan, RefusedWhereItDoesNotFitNamingTheBytes) {
  DeviceInfo device = testing::shared_runtime().device();
  const MemoryPlan plan{{{"small", 100, 4}, {"large", 600, 1}}};
  ASSERT_EQ(plan.total_bytes(), 1000u);
  device.global_mem_bytes = 1000;
  device.max_alloc_bytes = 600;
  EXPECT_NO_THROW(check_plan_fits(plan, device, 0));
  testing::expect_error<InsufficientDeviceMemory>([&] { check_plan_fits(plan, device, 1); },
                                                  {"needs 1000 bytes", "has 999 bytes"});
  device.max_alloc_bytes = 599;
  testing::expect_error<InsufficientDeviceMemory>([&] { check_plan_fits(plan, device, 0); },
                                                  {"(large) needs 600 bytes", "599 bytes"});
}

class VariantTraining : public ::testing::TestWithParam<std::string> {};

TEST_P(VariantTraining, TinyModelLossFalls) {
  TrainingRun run(testing::shared_ops(), tiny_settings(GetParam()));
  const std::vector<float> losses = train_losses(run, 60);
  for (float l : losses) ASSERT_TRUE(std::isfinite(l));
  EXPECT_LT(mean(losses, 55, 60), mean(losses, 0, 5) - 0.3) << GetParam();
}

// The memory plan is what a model allocates, buffer for buffer: a new model adds exactly
// the planned bytes to the tracked allocation, for every variant (a buffer added to a
// variant's allocate() but not to its device_buffers() fails here).
TEST_P(VariantTraining, MemoryPlanIsWhatTheModelAllocates) {
  Runtime& rt = testing::shared_runtime();
  for (const auto& [batch, seq] : {std::pair{4, 64}, std::pair{3, 40}}) {
    TrainSettings s = tiny_settings(GetParam());
    s.batch = batch, s.seq = seq;
    AttentionOptions attention = s.attention;
    attention.seed = s.seed;
    const MemoryPlan plan = plan_training_memory(s.model, *make_variant(s.variant, attention),
                                                 batch, seq, rt.device());
    const size_t before = rt.memory().current_bytes();
    TrainingRun run(testing::shared_ops(), s);
    EXPECT_EQ(rt.memory().current_bytes() - before, plan.total_bytes()) << GetParam() << " T=" << seq;
  }
}

INSTANTIATE_TEST_SUITE_P(AllVariants, VariantTraining, ::testing::ValuesIn(variant_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace attnscope
