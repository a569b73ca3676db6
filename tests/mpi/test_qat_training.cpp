// Quantization-aware training through the ZeRO store: fake-quantized projections (int4 with the
// straight-through mask) and embeddings (q4_0, tied or not) train to one rank's losses on every
// stage, with accumulation, activation checkpointing and offload; start_step leaves the first
// steps those of plain training.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "lora/adapter.h"
#include "tiny_training.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

// The tiny model's rows of 32 (down_proj's 48 are no whole number of groups).
Trained qat_run(const std::string& weights, bool tied, int64_t start_step = 0, bool checkpointing = false) {
  QatOptions o;
  o.weights = weights;
  o.start_step = start_step;
  o.modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", tied ? "embed_tokens" : "lm_head"};
  Trained t;
  t.qat = o;
  t.checkpointing = checkpointing;
  return t;
}

}  // namespace

class QatTraining : public ::testing::TestWithParam<bool> {};

TEST_P(QatTraining, EveryStageSplitAndOffloadMatchesOneRank) {
  const bool tied = GetParam();
  auto self = make_self_communicator();
  const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, tied, qat_run("int4", tied));
  const std::vector<double> plain = train(*self, zero(0), kGlobalBatch, tied);
  EXPECT_GT(std::abs(reference[0] - plain[0]), 1e-6) << "fake quantization changed nothing";
  const std::vector<double> late = train(*self, zero(0), kGlobalBatch, tied, qat_run("int4", tied, 3));
  EXPECT_EQ(late[0], plain[0]);
  EXPECT_EQ(late[1], plain[1]);
  EXPECT_NE(late[2], plain[2]);

  auto world = make_mpi_communicator(World::get());
  const int64_t per_rank = kGlobalBatch / world->size();
  for (int stage = 0; stage <= 3; ++stage)
    for (int64_t mbs : {int64_t{1}, per_rank})
      expect_same_curve(train(*world, zero(stage), mbs, tied, qat_run("int4", tied)), reference,
                        fmt::format("QAT int4, stage {}, micro-batch {}", stage, mbs));
  expect_same_curve(train(*world, zero(3), 1, tied, qat_run("int4", tied, 0, /*checkpointing=*/true)), reference,
                    "QAT, activation checkpointing");
  ZeroOptions offloaded = zero(3, 1, 33);
  offloaded.offload_optimizer = OffloadTo::cpu;
  offloaded.offload_params = OffloadTo::nvme;
  offloaded.nvme_params = test_swap();
  expect_same_curve(train(*world, offloaded, per_rank, tied, qat_run("int4", tied)), reference,
                    "QAT, optimizer on the CPU, parameters on disk, persist_below");
  const std::vector<double> q4 = train(*self, zero(0), kGlobalBatch, tied, qat_run("q4_0", tied));
  expect_same_curve(train(*world, zero(3), per_rank, tied, qat_run("q4_0", tied)), q4, "QAT q4_0, stage 3");
}

INSTANTIATE_TEST_SUITE_P(TiedAndUntied, QatTraining, ::testing::Bool());

// QAT with LoRA (the merged W + s B A fake-quantized, model/linear.h): adapters on a frozen base
// train to one rank's losses on every stage, with checkpointing; and train something else than
// plain LoRA does.
TEST(QatLoraTraining, EveryStageMatchesOneRank) {
  lora::LoraOptions o;
  o.r = 4;
  o.alpha = 8;
  o.init = "gaussian";  // B starts at zero: the merged weight moves from the first update
  Trained lora_only{.params = [o](const ModelConfig& c) { return lora::lora_parameters(c, lora::resolve(o, c)); },
                    .lora_scale = lora::resolve(o, tiny_config(false)).scale()};
  Trained both = lora_only;
  both.qat = qat_run("int4", false).qat;
  auto self = make_self_communicator();
  const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, false, both);
  const std::vector<double> plain = train(*self, zero(0), kGlobalBatch, false, lora_only);
  EXPECT_GT(std::abs(reference[0] - plain[0]), 1e-6) << "fake quantization changed nothing";
  auto world = make_mpi_communicator(World::get());
  const int64_t per_rank = kGlobalBatch / world->size();
  for (int stage = 0; stage <= 3; ++stage)
    expect_same_curve(train(*world, zero(stage), per_rank, false, both), reference,
                      fmt::format("QAT + LoRA, stage {}", stage));
  Trained checkpointed = both;
  checkpointed.checkpointing = true;
  expect_same_curve(train(*world, zero(3), 1, false, checkpointed), reference, "QAT + LoRA, activation checkpointing");
}
