// Quantization-aware training through the ZeRO store: fake-quantized projections (int4 with the
// straight-through mask) and embeddings (q4_0, tied or not) train to one rank's losses on every
// stage, with accumulation, activation checkpointing and offload; start_step leaves the first
// steps those of plain training. Learned scales (their own sharded parameters) likewise, starting
// exactly where fixed-scale QAT is.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "lora/adapter.h"
#include "tiny_training.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

// The tiny model's rows of 32 (down_proj's 48 are no whole number of groups).
Trained qat_run(const std::string& weights, bool tied, int64_t start_step = 0, Recompute recompute = Recompute::none) {
  QatOptions o;
  o.weights = weights;
  o.start_step = start_step;
  o.modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", tied ? "embed_tokens" : "lm_head"};
  Trained t;
  t.qat = o;
  t.recompute = recompute;
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
  expect_same_curve(train(*world, zero(3), 1, tied, qat_run("int4", tied, 0, Recompute::layers)), reference,
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
  checkpointed.recompute = Recompute::layers;
  expect_same_curve(train(*world, zero(3), 1, false, checkpointed), reference, "QAT + LoRA, activation checkpointing");
}

// Learned scales (quant.qat.learnable_scales): the scales and zero points are parameters of the
// store, sharded, stepped and offloaded like the rest. Their first step is fixed-scale QAT's (they
// start as RTN's), then they train something else; 2 and 3 ranks give one rank's losses.
TEST(QatLearnedScalesTraining, EveryStageMatchesOneRankAndStartsAtRtn) {
  auto self = make_self_communicator();
  auto world = make_mpi_communicator(World::get());
  const int64_t per_rank = kGlobalBatch / world->size();
  for (const auto& [weights, symmetric, start] :
       {std::tuple{"int4", false, int64_t{0}}, std::tuple{"q4_0", true, int64_t{2}}, std::tuple{"int8", true, int64_t{0}}}) {
    Trained fixed = qat_run(weights, false, start);
    fixed.qat->modules = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"};  // projections only
    fixed.qat->symmetric = symmetric;
    // Adam moves a scale by about lr whatever its gradient's size, and these scales are ~1e-3: at
    // the default 1e-2 (and still at 1e-3, with accumulation) a scale gradient near zero whose sign
    // the ranks' sum order flips moves the curve by more than the comparison's 1e-4 within 4 steps.
    fixed.lr = 3e-4f;
    Trained learned = fixed;
    learned.qat->learnable_scales = true;
    const std::string what = fmt::format("learned scales, {}{}, from step {}", weights, symmetric ? "" : " asymmetric", start);
    const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, false, learned);
    const std::vector<double> rtn = train(*self, zero(0), kGlobalBatch, false, fixed);
    const size_t first = static_cast<size_t>(std::max<int64_t>(start, 1)) - 1;
    // (Equal up to the sum order of the gradient norm before it, whose buffers hold the zero scales.)
    EXPECT_NEAR(reference[first], rtn[first], 1e-7 * rtn[first]) << what << ": the first fake-quantized step is fixed-scale QAT's";
    EXPECT_GT(std::abs(reference.back() - rtn.back()), 1e-7) << what << ": the learned scales changed nothing";
    for (int stage = 0; stage <= 3; ++stage)
      expect_same_curve(train(*world, zero(stage), per_rank, false, learned), reference,
                        fmt::format("{}, stage {}", what, stage));
    // (q4_0 from step 2 with micro-batches of 1 on 2-3 ranks: the sums' order moves a weight across
    // a rounding boundary at step 3 and the tiny model's loss by ~2e-4 of itself; not compared.)
    if (start > 1) continue;
    ZeroOptions offloaded = zero(3, 1, 33);
    offloaded.offload_optimizer = OffloadTo::cpu;
    expect_same_curve(train(*world, offloaded, 1, false, learned), reference,
                      what + ", optimizer on the CPU, persist_below, accumulation");
  }
}
