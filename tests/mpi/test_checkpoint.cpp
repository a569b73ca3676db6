// Checkpoints: resuming gives the losses of an uninterrupted run (bit for bit on the same world
// size, to 1e-4 on another), and a checkpoint whose save was killed or whose files were damaged is
// named and never loaded.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/rng.h"
#include "engine/checkpoint/checkpoint.h"
#include "engine/train_step.h"
#include "shared_dir.h"

using namespace tessera;
using testing_util::shared_dir;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kGlobalBatch = 6, kSeq = 10;

ModelConfig tiny() {
  return ModelConfig::from_json(nlohmann::json{{"model_type", "qwen2"}, {"vocab_size", 53}, {"hidden_size", 24},
                                               {"intermediate_size", 40}, {"num_hidden_layers", 2},
                                               {"num_attention_heads", 3}, {"num_key_value_heads", 1},
                                               {"max_position_embeddings", 64}, {"tie_word_embeddings", true}},
                                "tiny");
}

std::vector<TokenBatch> rank_batches(Communicator& comm, int64_t step) {
  const int64_t per_rank = kGlobalBatch / comm.size();
  std::vector<int64_t> ids;
  for (int64_t j = comm.rank() * per_rank; j < (comm.rank() + 1) * per_rank; ++j) {
    const int64_t start = rng::philox(7, step * kGlobalBatch + j).v[0] % 53;
    for (int64_t t = 0; t < kSeq; ++t) ids.push_back((start + 5 * t) % 53);
  }
  return {TokenBatch::causal_lm(Tensor::from_vector(ids, {per_rank, kSeq}, DType::I64), Device::cpu())};
}

double train_one(ZeroStore& store, Communicator& comm, int64_t step) {
  const ops::AdamWStep adam{.lr = 5e-3f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f, .weight_decay = 0.05f, .step = step};
  return train_step(store, comm, rank_batches(comm, step), adam, 1.0, Recompute::none).loss;
}

std::unique_ptr<ZeroStore> fresh_store(Communicator& comm, int stage, uint64_t seed,
                                       OffloadTo optimizer = OffloadTo::none, OffloadTo params = OffloadTo::none,
                                       int64_t persist_below = 0) {
  offload::NvmeSwap swap;  // in the build folder, with a small pool: the state streams in pieces
  swap.io.path = std::string(TESSERA_BIN_DIR) + "/../tmp/nvme";
  fs::create_directories(swap.io.path);
  swap.pinned_bytes = 4 * 12288;
  auto store = std::make_unique<ZeroStore>(
      tiny(),
      ZeroOptions{.stage = stage, .compute_dtype = DType::F32, .device = Device::cpu(), .offload_optimizer = optimizer,
                  .offload_params = params, .nvme_optimizer = swap, .nvme_params = swap,
                  .persist_below = persist_below},
      comm);
  store->init_random(seed, 0.1f);
  return store;
}

}  // namespace

TEST(Checkpoint, ResumeOnTheSameAndOnAnotherWorldSize) {
  auto world = make_mpi_communicator(World::get());
  const std::string dir = shared_dir(*world, "ckpt");
  std::vector<double> straight;
  {
    auto store = fresh_store(*world, 3, 11);
    for (int64_t step = 1; step <= 4; ++step) straight.push_back(train_one(*store, *world, step));
  }
  {
    auto store = fresh_store(*world, 3, 11);
    for (int64_t step = 1; step <= 2; ++step) train_one(*store, *world, step);
    checkpoint::save(dir, *store, {2, 0, {}, 0, ""}, "config: test\n", 0, *world);
  }
  // Same world size, another stage, different initial weights: the checkpoint overrides them.
  auto resumed = fresh_store(*world, 2, 999);
  const std::string found = checkpoint::find(dir, "auto", *world);
  EXPECT_EQ(fs::path(found).filename(), "step-2");
  EXPECT_EQ(checkpoint::load(found, *resumed).step, 2);
  for (int64_t step = 3; step <= 4; ++step) EXPECT_EQ(train_one(*resumed, *world, step), straight[step - 1]);

  // Into a store whose optimizer state is offloaded to pinned host memory.
  auto offloaded = fresh_store(*world, 3, 998, OffloadTo::cpu);
  checkpoint::load(found, *offloaded);
  for (int64_t step = 3; step <= 4; ++step)
    EXPECT_NEAR(train_one(*offloaded, *world, step), straight[step - 1], 1e-6 * straight[step - 1]);

  // Into a store that keeps the norm weights and biases whole on every rank (zero.persist_below),
  // and from such a store back into a sharded one: each element still has one writer.
  auto persisting = fresh_store(*world, 3, 997, OffloadTo::none, OffloadTo::none, /*persist_below=*/100);
  checkpoint::load(found, *persisting);
  EXPECT_NEAR(train_one(*persisting, *world, 3), straight[2], 1e-5 * straight[2]);
  const std::string again =
      checkpoint::save(dir + "-persist", *persisting, {3, 0, {}, 0, ""}, "config: test\n", 0, *world);
  auto sharded = fresh_store(*world, 3, 996);
  checkpoint::load(again, *sharded);
  EXPECT_NEAR(train_one(*sharded, *world, 4), straight[3], 1e-5 * straight[3]);
  world->barrier();
  if (world->rank() == 0) fs::remove_all(dir + "-persist");

  // One rank alone (this job's world was 2 or 3 when it saved).
  auto self = make_self_communicator();
  auto alone = fresh_store(*self, 3, 5);
  checkpoint::load(found, *alone);
  for (int64_t step = 3; step <= 4; ++step)
    EXPECT_NEAR(train_one(*alone, *self, step), straight[step - 1], 1e-4 * straight[step - 1]);
  world->barrier();
  if (world->rank() == 0) fs::remove_all(dir);
}

// State offloaded to a swap file saves like any other and resumes into another offload choice.
TEST(Checkpoint, OffloadedStateSavesAndResumes) {
  auto world = make_mpi_communicator(World::get());
  const std::string dir = shared_dir(*world, "ckpt-offload");
  std::vector<double> straight;
  {
    auto store = fresh_store(*world, 3, 21);
    for (int64_t step = 1; step <= 4; ++step) straight.push_back(train_one(*store, *world, step));
  }
  {
    auto store = fresh_store(*world, 3, 21, OffloadTo::nvme, OffloadTo::nvme);
    for (int64_t step = 1; step <= 2; ++step) train_one(*store, *world, step);
    checkpoint::save(dir, *store, {2, 0, {}, 0, ""}, "", 0, *world);
  }
  const std::string found = checkpoint::find(dir, "auto", *world);
  for (OffloadTo optimizer : {OffloadTo::none, OffloadTo::cpu, OffloadTo::nvme}) {
    auto resumed = fresh_store(*world, 3, 500, optimizer, OffloadTo::cpu);
    checkpoint::load(found, *resumed);
    for (int64_t step = 3; step <= 4; ++step)
      EXPECT_NEAR(train_one(*resumed, *world, step), straight[step - 1], 1e-4 * straight[step - 1])
          << "optimizer offload " << static_cast<int>(optimizer) << ", step " << step;
  }
  world->barrier();
  if (world->rank() == 0) fs::remove_all(dir);
}

TEST(Checkpoint, KilledOrDamagedSavesAreNeverLoaded) {
  auto world = make_mpi_communicator(World::get());
  const std::string dir = shared_dir(*world, "ckpt-bad");
  auto store = fresh_store(*world, 3, 3);
  train_one(*store, *world, 1);
  const std::string good = checkpoint::save(dir, *store, {1, 0, {}, 0, ""}, "", 0, *world);
  if (world->rank() == 0) {
    // A save killed before its COMPLETE marker, one killed before its rename, one damaged later.
    fs::copy(good, dir + "/step-9", fs::copy_options::recursive);
    fs::remove(dir + "/step-9/COMPLETE");
    fs::copy(good, dir + "/.step-10.tmp", fs::copy_options::recursive);
    fs::copy(good, dir + "/step-8", fs::copy_options::recursive);
    std::fstream f(dir + "/step-8/state.h5", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    f.put('\x5a');
  }
  world->barrier();
  EXPECT_EQ(checkpoint::find(dir, "auto", *world), good);
  try {
    (void)checkpoint::find(dir, dir + "/step-8", *world);
    FAIL() << "a damaged checkpoint was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("state.h5: checksum mismatch"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)checkpoint::find(dir, dir + "/step-9", *world), Error);
  EXPECT_EQ(checkpoint::find(dir, "never", *world), "");
  EXPECT_EQ(checkpoint::find(dir + "/missing", "auto", *world), "");
  world->barrier();
  if (world->rank() == 0) fs::remove_all(dir);
}

TEST(Checkpoint, KeepLastDeletesOnlyOlderCompleteOnes) {
  auto world = make_mpi_communicator(World::get());
  const std::string dir = shared_dir(*world, "ckpt-keep");
  auto store = fresh_store(*world, 1, 3);
  checkpoint::TrainerState state;
  state.lineage = "run";  // keep_last counts the checkpoints of one run
  for (state.step = 1; state.step <= 3; ++state.step) checkpoint::save(dir, *store, state, "", 2, *world);
  EXPECT_FALSE(fs::exists(dir + "/step-1"));
  EXPECT_TRUE(fs::exists(dir + "/step-2/COMPLETE"));
  EXPECT_TRUE(fs::exists(dir + "/step-3/COMPLETE"));
  world->barrier();
  if (world->rank() == 0) fs::remove_all(dir);
}
