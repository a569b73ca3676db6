// zero.overlap_step: AdamW made behind the next pass (on GPUs queued on its own stream; on the CPU,
// as here, each unit's update made only when the unit is next used) gives bit for bit the losses,
// the evaluation and the optimizer state of the sequential step: at every stage, with gradient
// accumulation, prefetch, persistent tensors, on one rank and on this job's ranks, with a checkpoint
// read and an evaluation between steps. With offload it is not applied and changes nothing.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "engine/evaluation.h"
#include "tiny_training.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

struct Outcome {
  std::vector<double> losses;
  double eval_loss = 0;
  std::vector<float> state_mid, state_end;  // every slice's master weights and moments
  bool overlapped = false;
};

std::vector<float> state_of(ZeroStore& store) {
  std::vector<float> out;
  store.read_state(/*unique=*/false, [&](const ZeroStore::StateSlice& s) {
    for (const Tensor* t : {&s.master, &s.m, &s.v}) {
      const std::vector<float> v = t->to(Device::cpu()).to_vector<float>();
      out.insert(out.end(), v.begin(), v.end());
    }
  });
  return out;
}

Outcome run(Communicator& comm, ZeroOptions options, bool overlap, int64_t mbs, bool tied) {
  options.overlap_step = overlap;
  const ModelConfig config = tiny_config(tied);
  ZeroStore store(config, options, comm);
  store.init_random(5, 0.1f);
  const int64_t per_rank = kGlobalBatch / comm.size(), begin = comm.rank() * per_rank, end = begin + per_rank;
  Outcome r;
  r.overlapped = store.overlaps_step();
  for (int64_t step = 1; step <= kSteps; ++step) {
    r.losses.push_back(train_step(store, comm, micro_batches(step, begin, end, mbs), adam_step(step), /*clip_norm=*/0.5,
                                  Recompute::none)
                           .loss);
    if (step == 2) r.state_mid = state_of(store);  // a checkpoint: the step's updates must be in
    if (step == 3) r.eval_loss = eval_loss(config, store, micro_batches(50, begin, end, mbs)).loss_sum;  // out of order
  }
  r.state_end = state_of(store);
  return r;
}

void expect_identical(const Outcome& got, const Outcome& want, const std::string& what) {
  EXPECT_EQ(got.losses, want.losses) << what;
  EXPECT_EQ(got.eval_loss, want.eval_loss) << what;
  EXPECT_EQ(got.state_mid, want.state_mid) << what << ": state after step 2";
  EXPECT_EQ(got.state_end, want.state_end) << what << ": state at the end";
  EXPECT_LT(want.losses.back(), want.losses.front()) << what << ": the loss should fall";
}

}  // namespace

class OverlapStep : public ::testing::TestWithParam<bool> {};

TEST_P(OverlapStep, GivesTheSequentialStepBitForBit) {
  const bool tied = GetParam();
  auto self = make_self_communicator();
  auto world = make_mpi_communicator(World::get());
  const int64_t per_rank = kGlobalBatch / world->size();
  struct Case {
    Communicator* comm;
    ZeroOptions options;
    int64_t mbs;
    std::string what;
  };
  std::vector<Case> cases;
  for (int stage = 0; stage <= 3; ++stage)
    for (int64_t mbs : {int64_t{1}, per_rank})
      cases.push_back({world.get(), zero(stage), mbs, fmt::format("stage {}, micro-batch {}", stage, mbs)});
  cases.push_back({self.get(), zero(3), 2, "one rank, stage 3, accumulation"});
  cases.push_back({self.get(), zero(0), kGlobalBatch, "one rank, stage 0"});
  cases.push_back({world.get(), zero(3, 0), 1, "prefetch 0"});
  cases.push_back({world.get(), zero(3, 2), 1, "prefetch 2"});
  cases.push_back({world.get(), zero(3, 1, 33), 1, "persist_below 33"});
  cases.push_back({world.get(), zero(1, 1, 600), per_rank, "persist_below 600, stage 1"});
  for (const Case& c : cases) {
    const Outcome sequential = run(*c.comm, c.options, false, c.mbs, tied);
    const Outcome overlapped = run(*c.comm, c.options, true, c.mbs, tied);
    EXPECT_FALSE(sequential.overlapped) << c.what;
    EXPECT_TRUE(overlapped.overlapped) << c.what;
    expect_identical(overlapped, sequential, c.what);
  }
}

TEST_P(OverlapStep, OffloadStaysSequential) {
  const bool tied = GetParam();
  auto world = make_mpi_communicator(World::get());
  for (OffloadTo optimizer : {OffloadTo::cpu, OffloadTo::none}) {
    ZeroOptions options = zero(3);
    options.offload_optimizer = optimizer;
    options.offload_params = optimizer == OffloadTo::none ? OffloadTo::cpu : OffloadTo::none;
    const std::string what = optimizer == OffloadTo::cpu ? "optimizer offload" : "parameter offload";
    const Outcome sequential = run(*world, options, false, 1, tied);
    const Outcome requested = run(*world, options, true, 1, tied);
    EXPECT_FALSE(requested.overlapped) << what;
    expect_identical(requested, sequential, what);
  }
}

INSTANTIATE_TEST_SUITE_P(TiedAndUntied, OverlapStep, ::testing::Bool());
