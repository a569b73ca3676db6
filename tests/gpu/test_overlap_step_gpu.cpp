// zero.overlap_step on GPUs: AdamW queued on its own stream behind the next forward gives the losses
// and master weights of the sequential step, at ZeRO stages 0 and 3, with gradient accumulation,
// the clip binding and off, on this job's ranks (ctest: one; device-tests.sh: one, and one per GPU).
// Up to the run-to-run noise of the kernels' atomics (the norm's, attention backward's), measured
// here as the distance between two sequential runs: a unit used before its update would be a
// whole AdamW step off (lr 1e-3 on weights of size 0.02: about 5% of each weight).
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "engine/train_step.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

constexpr int64_t kBatch = 4, kSeq = 128, kSteps = 5, kVocab = 512;

ModelConfig model(bool tied) {
  return ModelConfig::from_json(
      nlohmann::json{{"model_type", "llama"}, {"vocab_size", kVocab}, {"hidden_size", 256}, {"intermediate_size", 512},
                     {"num_hidden_layers", 4}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                     {"max_position_embeddings", 256}, {"tie_word_embeddings", tied}},
      "overlap test model");
}

struct Outcome {
  std::vector<double> losses;
  std::vector<float> master;
  bool overlapped = false;
};

Outcome train(bool overlap, int stage, int64_t mbs, bool tied, double clip) {
  const World& world = World::get();
  auto host = make_mpi_communicator(world);
  auto comm = make_communicator(world, world.device);
  const ModelConfig config = model(tied);
  ZeroStore store(config, {.stage = stage, .compute_dtype = DType::BF16, .device = world.device, .overlap_step = overlap},
                  *comm);
  store.init_random(5, 0.02f);
  Outcome r;
  r.overlapped = store.overlaps_step();
  const int64_t per_rank = kBatch / world.size;
  for (int64_t step = 1; step <= kSteps; ++step) {
    std::vector<TokenBatch> batches;
    for (int64_t first = world.rank * per_rank; first < (world.rank + 1) * per_rank; first += mbs) {
      std::vector<int64_t> ids;
      for (int64_t j = first; j < first + mbs; ++j) {
        const int64_t start = rng::philox(7, step * kBatch + j).v[0] % kVocab;
        for (int64_t t = 0; t < kSeq; ++t) ids.push_back((start + 5 * t) % kVocab);  // learnable
      }
      batches.push_back(TokenBatch::causal_lm(Tensor::from_vector(ids, {mbs, kSeq}, DType::I64), world.device));
      batches.back().first_token = first * kSeq;
    }
    const ops::AdamWStep adam{.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .step = step};
    r.losses.push_back(train_step(store, *host, batches, adam, clip, Recompute::none).loss);
  }
  store.read_state(/*unique=*/false, [&](const ZeroStore::StateSlice& s) {
    const std::vector<float> v = s.master.to(Device::cpu()).to_vector<float>();
    r.master.insert(r.master.end(), v.begin(), v.end());
  });
  return r;
}

}  // namespace

TEST(OverlapStepGpu, MatchesTheSequentialStep) {
  const World& world = World::get();
  if (!world.device.is_cuda()) GTEST_SKIP() << cuda_unavailable_reason();
  if (kBatch % world.size != 0) GTEST_SKIP() << "needs a world size dividing " << kBatch;
  const int64_t per_rank = kBatch / world.size;
  for (bool tied : {true, false}) {
    for (int stage : {0, 3}) {
      for (int64_t mbs : {per_rank, int64_t{1}}) {
        for (double clip : {0.0, 0.5}) {
          const std::string what = fmt::format("tied {}, stage {}, micro-batch {}, clip {}", tied, stage, mbs, clip);
          const Outcome sequential = train(false, stage, mbs, tied, clip), again = train(false, stage, mbs, tied, clip),
                        overlapped = train(true, stage, mbs, tied, clip);
          EXPECT_TRUE(overlapped.overlapped) << what;
          ASSERT_EQ(overlapped.master.size(), sequential.master.size()) << what;
          for (int64_t i = 0; i < kSteps; ++i) {
            const double noise = std::abs(again.losses[i] - sequential.losses[i]);
            EXPECT_LE(std::abs(overlapped.losses[i] - sequential.losses[i]), 3 * noise + 2e-3 * std::abs(sequential.losses[i]))
                << what << ", step " << i + 1 << " (two sequential runs differ by " << noise << ")";
          }
          EXPECT_LT(sequential.losses.back(), sequential.losses.front()) << what << ": the loss should fall";
          auto distance = [&](const Outcome& a) {
            double diff = 0, norm = 0;
            for (size_t i = 0; i < sequential.master.size(); ++i) {
              diff += double(a.master[i] - sequential.master[i]) * (a.master[i] - sequential.master[i]);
              norm += double(sequential.master[i]) * sequential.master[i];
            }
            return std::sqrt(diff / norm);
          };
          const double noise = distance(again);
          EXPECT_LE(distance(overlapped), 3 * noise + 2e-3) << what << ": master weights (two sequential runs: " << noise << ")";
        }
      }
    }
  }
}
