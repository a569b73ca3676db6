// ZeRO stages 0-3 on this job's ranks give the losses of one rank training on the whole global
// batch (computed here too, over MPI_COMM_SELF), to 1e-4 on CPU fp32; so does splitting the
// batch into more, smaller micro-batches.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include "core/error.h"
#include "model/model_config_params.h"
#include "tiny_training.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

// Counts the store's reduce-scatter launches: what zero.reduce_bucket_mb changes.
class CountingCommunicator : public Communicator {
 public:
  explicit CountingCommunicator(Communicator& inner) : inner_(inner) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  Work all_gather(const Tensor& out, const Tensor& in) override { return inner_.all_gather(out, in); }
  Work reduce_scatter(const Tensor& out, const Tensor& in, ReduceOp op) override {
    return inner_.reduce_scatter(out, in, op);
  }
  Work reduce_scatter_many(const std::vector<Tensor>& outs, const std::vector<Tensor>& ins, ReduceOp op) override {
    ++launches;
    return inner_.reduce_scatter_many(outs, ins, op);
  }
  Work all_reduce(const Tensor& t, ReduceOp op) override { return inner_.all_reduce(t, op); }
  Work broadcast(const Tensor& t, int root) override { return inner_.broadcast(t, root); }
  void barrier() override { inner_.barrier(); }
  int launches = 0;

 private:
  Communicator& inner_;
};

}  // namespace

class ZeroTraining : public ::testing::TestWithParam<bool> {};

TEST_P(ZeroTraining, EveryStageMatchesOneRank) {
  const bool tied = GetParam();
  auto self = make_self_communicator();
  const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, tied);
  auto world = make_mpi_communicator(World::get());
  ASSERT_EQ(kGlobalBatch % world->size(), 0);
  for (int stage = 0; stage <= 3; ++stage)
    expect_same_curve(train(*world, zero(stage), 1, tied), reference, "stage " + std::to_string(stage));
  for (int prefetch : {0, 2})
    expect_same_curve(train(*world, zero(3, prefetch), 1, tied), reference, "prefetch " + std::to_string(prefetch));
  expect_same_curve(train(*world, zero(3), 1, tied, {.recompute = Recompute::norms_swiglu}), reference,
                    "norms and SwiGLU recomputed");
}

// Optimizer offload, with gradient shards on the host (one shard per step: copied straight into
// the accumulator and normed on the device; several: staged and added by the CPU) or on the device
// (at stage 0 nothing is split and the accumulators are the whole gradients).
TEST_P(ZeroTraining, OptimizerOffloadMatchesOneRank) {
  const bool tied = GetParam();
  auto self = make_self_communicator();
  const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, tied);
  auto world = make_mpi_communicator(World::get());
  const int64_t per_rank = kGlobalBatch / world->size();
  for (int stage : {0, 1, 3}) {
    for (bool on_device : {false, true}) {
      for (int64_t mbs : {int64_t{1}, per_rank}) {
        ZeroOptions options = zero(stage);
        options.offload_optimizer = OffloadTo::cpu;
        options.offload_grads_on_device = on_device;
        expect_same_curve(train(*world, options, mbs, tied), reference,
                          fmt::format("optimizer offload, stage {}, gradients on the {}, micro-batch {}", stage,
                                      on_device ? "device" : "host", mbs));
      }
    }
  }
}

// NVMe and parameter offload, alone and together. The swap files go to the build folder; the
// pinned staging budget is tiny, so every unit streams in several pieces through a full pool.
TEST_P(ZeroTraining, NvmeAndParameterOffloadMatchOneRank) {
  const bool tied = GetParam();
  auto self = make_self_communicator();
  const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, tied);
  auto world = make_mpi_communicator(World::get());
  const int64_t per_rank = kGlobalBatch / world->size();
  const offload::NvmeSwap swap = test_swap();
  struct Case {
    OffloadTo optimizer, params;
    bool grads_on_device;
    int64_t mbs;
  };
  for (const Case& c : {Case{OffloadTo::nvme, OffloadTo::none, false, 1}, Case{OffloadTo::nvme, OffloadTo::none, true, per_rank},
                        Case{OffloadTo::none, OffloadTo::cpu, false, 1}, Case{OffloadTo::none, OffloadTo::nvme, false, per_rank},
                        Case{OffloadTo::cpu, OffloadTo::cpu, false, per_rank}, Case{OffloadTo::nvme, OffloadTo::nvme, true, 1}}) {
    ZeroOptions options = zero(3);
    options.offload_optimizer = c.optimizer;
    options.offload_params = c.params;
    options.offload_grads_on_device = c.grads_on_device;
    options.nvme_optimizer = options.nvme_params = swap;
    expect_same_curve(train(*world, options, c.mbs, tied), reference,
                      fmt::format("optimizer {}, params {}, gradients on the device {}, micro-batch {}",
                                  static_cast<int>(c.optimizer), static_cast<int>(c.params), c.grads_on_device, c.mbs));
  }
  // Parameters read ahead of their gathers, however far the window reaches, with or without the
  // kept tensors' group (fetched beside every unit, outside the order).
  for (int prefetch : {0, 2}) {
    for (int64_t below : {int64_t{0}, int64_t{33}}) {
      ZeroOptions options = zero(3, prefetch, below);
      options.offload_params = OffloadTo::nvme;
      options.nvme_params = swap;
      expect_same_curve(train(*world, options, 1, tied), reference,
                        fmt::format("params on nvme, prefetch {}, persist_below {}", prefetch, below));
    }
  }
}

TEST(ZeroOffload, ParameterOffloadNeedsStage3) {
  auto world = make_mpi_communicator(World::get());
  ZeroOptions options = zero(2);
  options.offload_params = OffloadTo::cpu;
  try {
    ZeroStore store(tiny_config(true), options, *world);
    FAIL() << "parameter offload at stage 2 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zero.offload_params needs zero.stage 3"), std::string::npos) << e.what();
  }
}

TEST(ZeroOffload, MissingNvmeFolderFailsAtOnce) {
  auto world = make_mpi_communicator(World::get());
  ZeroOptions options = zero(3);
  options.offload_optimizer = OffloadTo::nvme;
  options.nvme_optimizer.io.path = test_swap().io.path + "/does-not-exist";
  EXPECT_THROW(ZeroStore(tiny_config(true), options, *world), Error);
}

// Norm weights (32 elements), then k/v projections too (512): kept whole on every rank.
TEST_P(ZeroTraining, PersistentSmallTensorsChangeNothing) {
  const bool tied = GetParam();
  auto self = make_self_communicator();
  const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, tied);
  auto world = make_mpi_communicator(World::get());
  auto persisting = [](int stage, int64_t below) { return zero(stage, 1, below); };
  for (int64_t below : {33, 600})
    for (int stage : {0, 1, 3})
      expect_same_curve(train(*world, persisting(stage, below), 1, tied), reference,
                        "persist_below " + std::to_string(below) + ", stage " + std::to_string(stage));
  ZeroOptions offloaded = persisting(3, 33);
  offloaded.offload_optimizer = OffloadTo::cpu;
  expect_same_curve(train(*world, offloaded, 1, tied), reference, "persist_below with optimizer offload");
  offloaded.offload_params = OffloadTo::cpu;
  expect_same_curve(train(*world, offloaded, 1, tied), reference, "persist_below with parameter offload");
  expect_same_curve(train(*self, persisting(3, 33), 2, tied), reference, "persist_below on one rank");
  // Kept whole, a norm weight has one writer in checkpoints: rank 0.
  ZeroStore store(tiny_config(tied), persisting(3, 33), *world);
  int norms = 0;
  store.read_state(/*unique=*/true, [&](const ZeroStore::StateSlice& slice) {
    if (!slice.param->name.ends_with("norm.weight")) return;
    ++norms;
    EXPECT_EQ(slice.end - slice.begin, 32) << slice.param->name << " is whole";
  });
  EXPECT_EQ(norms, world->rank() == 0 ? 5 : 0);
}

TEST_P(ZeroTraining, ReduceBucketsChangeLaunchesNotLosses) {
  const bool tied = GetParam();
  auto self = make_self_communicator();
  const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, tied);
  auto world = make_mpi_communicator(World::get());
  auto bucketed = [](int stage, int64_t bytes) { return zero(stage, 1, 0, bytes); };
  CountingCommunicator tiny_buckets(*world), one_bucket(*world);
  expect_same_curve(train(tiny_buckets, bucketed(3, 1), 1, tied), reference, "1-byte buckets");
  expect_same_curve(train(one_bucket, bucketed(3, 64 << 20), 1, tied), reference, "one bucket");
  expect_same_curve(train(*world, bucketed(1, 1), 1, tied), reference, "stage 1, 1-byte buckets");
  // Four units: a launch each per micro-batch, or one per step for all four (a unit whose reduction
  // has not started keeps accumulating in its buffer).
  EXPECT_EQ(one_bucket.launches, kSteps);
  EXPECT_EQ(tiny_buckets.launches, kSteps * 4 * (kGlobalBatch / world->size()));
}

// Frozen tensors are sharded and gathered like the others (at stage 3) but never reduced and never
// stepped: every stage, offload choice and accumulation gives one rank's losses, the frozen values
// stay what they were, and the store holds no optimizer state for them.
TEST_P(ZeroTraining, FrozenTensorsAreGatheredNeverStepped) {
  const bool tied = GetParam();
  const Trained frozen{.params = attention_frozen};
  auto self = make_self_communicator();
  const std::vector<double> reference = train(*self, zero(0), kGlobalBatch, tied, frozen);
  const std::vector<double> all_trainable = train(*self, zero(0), kGlobalBatch, tied);
  EXPECT_NEAR(reference[0], all_trainable[0], 1e-6) << "the same model before the first step";
  EXPECT_GT(std::abs(reference.back() - all_trainable.back()), 1e-4) << "frozen tensors must not train";
  auto world = make_mpi_communicator(World::get());
  const int64_t per_rank = kGlobalBatch / world->size();
  for (int stage = 0; stage <= 3; ++stage)
    expect_same_curve(train(*world, zero(stage), 1, tied, frozen), reference, "frozen, stage " + std::to_string(stage));
  ZeroOptions offloaded = zero(3, 1, 33);
  offloaded.offload_optimizer = OffloadTo::cpu;
  offloaded.offload_params = OffloadTo::nvme;
  offloaded.nvme_params = test_swap();
  expect_same_curve(train(*world, offloaded, per_rank, tied, frozen), reference, "frozen, offloaded, persist_below");

  const ModelConfig config = tiny_config(tied);
  ZeroStore store(config, attention_frozen(config), zero(3), *world);
  store.init_random(5, 0.1f);
  const Tensor before = store.acquire(UnitId::layer_unit(1)).layers[1].q_proj.weight.clone();
  store.release(UnitId::layer_unit(1));
  for (int64_t step = 1; step <= 2; ++step) {
    const ops::AdamWStep adam{.lr = 1e-2f, .weight_decay = 0.1f, .step = step};
    train_step(store, *world, micro_batches(step, world->rank() * per_rank, (world->rank() + 1) * per_rank, 1), adam,
               0.5, Recompute::none);
  }
  const LayerParams& after = store.acquire(UnitId::layer_unit(1)).layers[1];
  EXPECT_EQ(after.q_proj.weight.to_vector<float>(), before.to_vector<float>());
  EXPECT_FALSE(store.grads(UnitId::layer_unit(1)).layers[1].q_proj.weight.defined());
  store.release(UnitId::layer_unit(1));
  int64_t stated = 0;
  store.read_state(/*unique=*/false, [&](const ZeroStore::StateSlice& slice) {
    EXPECT_TRUE(slice.param->trainable) << slice.param->name << " has optimizer state";
    stated += slice.end - slice.begin;
  });
  int64_t trainable = 0;
  for (const ParamSpec& p : attention_frozen(config)) trainable += p.trainable ? shape_numel(p.shape) : 0;
  EXPECT_EQ(store.trainable_params(), trainable);
  Tensor total = Tensor::from_vector<int64_t>({stated}, {1}, DType::I64);
  world->all_reduce(total, ReduceOp::Sum).wait();
  EXPECT_EQ(total.data_as<int64_t>()[0], trainable) << "every trainable element has state on one rank";
}

TEST_P(ZeroTraining, MicroBatchesAndAccumulationAreInterchangeable) {
  const bool tied = GetParam();
  auto self = make_self_communicator();
  expect_same_curve(train(*self, zero(3), 3, tied), train(*self, zero(3), 6, tied), "micro-batch 3 x 2 vs 6");
}

INSTANTIATE_TEST_SUITE_P(TiedAndUntied, ZeroTraining, ::testing::Bool());
