// LoRA through the ZeRO store: adapters on a frozen base train to one rank's losses (1e-4) on
// every stage, with gradient accumulation, activation checkpointing and offload, with
// counter-based dropout drawing the same masks however the global batch is split.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "lora/adapter.h"
#include "tiny_training.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

lora::LoraOptions options(bool tied, double dropout) {
  lora::LoraOptions o;
  o.r = 4;
  o.alpha = 8;
  o.dropout = dropout;
  o.modules_to_save = {tied ? "embed_tokens" : "lm_head"};
  return o;
}

Trained lora_run(bool tied, double dropout, bool checkpointing = false) {
  const lora::LoraOptions o = options(tied, dropout);
  const lora::AdapterSpec spec = lora::resolve(o, tiny_config(tied));
  return {.params = [o](const ModelConfig& c) { return lora::lora_parameters(c, lora::resolve(o, c)); },
          .lora_scale = spec.scale(), .dropout = spec.dropout, .checkpointing = checkpointing};
}

}  // namespace

class LoraTraining : public ::testing::TestWithParam<bool> {};

TEST_P(LoraTraining, EveryStageSplitAndOffloadMatchesOneRank) {
  const bool tied = GetParam();
  auto self = make_self_communicator();
  const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, tied, lora_run(tied, 0.1));
  // B starts at zero: the first loss is the base model's; dropout then changes the curve.
  const std::vector<double> no_dropout = train(*self, zero(0), kGlobalBatch, tied, lora_run(tied, 0.0));
  const std::vector<double> full = train(*self, zero(0), kGlobalBatch, tied);
  EXPECT_NEAR(reference[0], full[0], 1e-6);
  EXPECT_GT(std::abs(reference.back() - no_dropout.back()), 1e-6) << "dropout did nothing";
  auto world = make_mpi_communicator(World::get());
  const int64_t per_rank = kGlobalBatch / world->size();
  for (int stage = 0; stage <= 3; ++stage)
    for (int64_t mbs : {int64_t{1}, per_rank})
      expect_same_curve(train(*world, zero(stage), mbs, tied, lora_run(tied, 0.1)), reference,
                        fmt::format("LoRA, stage {}, micro-batch {}", stage, mbs));
  expect_same_curve(train(*world, zero(3), 1, tied, lora_run(tied, 0.1, /*checkpointing=*/true)), reference,
                    "LoRA, activation checkpointing");
  ZeroOptions offloaded = zero(3, 1, 33);
  offloaded.offload_optimizer = OffloadTo::cpu;
  offloaded.offload_params = OffloadTo::nvme;
  offloaded.nvme_params = test_swap();
  expect_same_curve(train(*world, offloaded, per_rank, tied, lora_run(tied, 0.1)), reference,
                    "LoRA, optimizer on the CPU, parameters on disk, persist_below");
}

INSTANTIATE_TEST_SUITE_P(TiedAndUntied, LoraTraining, ::testing::Bool());
