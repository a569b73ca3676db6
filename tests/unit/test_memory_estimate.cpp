// `tessera estimate-memory`: per-rank model-state bytes by stage, ranks, zero.persist_below and
// offload, checked against the counts of a tiny model worked out by hand.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/memory_estimate.h"
#include "model/model_config_params.h"
#include "tiny_config.h"

using namespace tessera;

namespace {

// Embedding 64 x 32 (tied); per layer q, o 32 x 32, k, v 16 x 32, gate, up, down 64 x 32 (9216)
// and two norms of 32; the final norm, 32.
constexpr double kParams = 2048 + 2 * (9216 + 64) + 32;  // 20640
constexpr double kLayer = 9216 + 64;                     // the largest unit
constexpr double kKept = 2 * 64 + 32;                    // the norms: fewer than 33 elements
constexpr double kSplit = kParams - kKept;               // in units once the norms are kept whole
constexpr double kMiB = 1048576;

ModelConfig tiny_model() { return testing_util::tiny_llama(); }

MemoryEstimate estimate(const JobConfig& job, int ranks, int stage = 3) {
  return estimate_memory(tiny_model(), job, ranks).at(static_cast<size_t>(stage));
}

double model_state(const MemoryEstimate& e) { return e.working + e.master + e.moments + e.gradients; }

JobConfig job(int64_t persist_below = 0) {
  JobConfig j;
  j.zero.persist_below = persist_below;
  return j;
}

}  // namespace

TEST(MemoryEstimate, CountsTheModelsParameters) {
  double n = 0;
  for (const ParamSpec& p : model_parameters(tiny_model())) n += static_cast<double>(shape_numel(p.shape));
  EXPECT_EQ(n, kParams);
}

// One rank keeps everything whole and accumulates gradients in place: 2 + 4 + 8 + 4 bytes a
// parameter at any stage, kept tensors or not.
TEST(MemoryEstimate, OneRankHoldsEverything) {
  for (int64_t below : {0, 33}) {
    for (int stage = 0; stage <= 3; ++stage) {
      const MemoryEstimate e = estimate(job(below), 1, stage);
      EXPECT_EQ(e.working, 2 * kParams);
      EXPECT_EQ(e.master, 4 * kParams);
      EXPECT_EQ(e.moments, 8 * kParams);
      EXPECT_EQ(e.gradients, 4 * kParams);
      EXPECT_EQ(e.gathered, 0);
      EXPECT_EQ(e.host + e.disk, 0);
    }
  }
}

TEST(MemoryEstimate, TwoRanksShardAllButTheKeptTensors) {
  // Stage 3 without kept tensors: half of everything, one layer's whole gradient in flight, and
  // three whole layers gathered (the one in use, one prefetched, one being released).
  MemoryEstimate e = estimate(job(), 2);
  EXPECT_EQ(e.working, 2 * kParams / 2);
  EXPECT_EQ(e.master, 4 * kParams / 2);
  EXPECT_EQ(e.moments, 8 * kParams / 2);
  EXPECT_EQ(e.gradients, 4 * (kParams / 2 + kLayer));
  EXPECT_EQ(e.gathered, 2 * kLayer * 3);
  // persist_below 33: the norms stay whole on both ranks (state, slices and gradient), and the
  // largest unit loses its two norms.
  e = estimate(job(33), 2);
  const double owned = kSplit / 2 + kKept;
  EXPECT_EQ(e.working, 2 * owned);
  EXPECT_EQ(e.master, 4 * owned);
  EXPECT_EQ(e.moments, 8 * owned);
  EXPECT_EQ(e.gradients, 4 * (kSplit / 2 + 9216 + kKept));
  EXPECT_EQ(e.gathered, 2 * 9216 * 3);
  // Stage 1: whole working copy and whole gradients next to the shards.
  e = estimate(job(33), 2, 1);
  EXPECT_EQ(e.working, 2 * (owned + kSplit));
  EXPECT_EQ(e.master, 4 * owned);
  EXPECT_EQ(e.gradients, 4 * (kParams + kSplit / 2));
}

// train.recompute_norms_swiglu: each layer keeps two hidden-sized rows and one intermediate-sized
// row fewer per token (bf16: 2 x (2 x 32 + 64) bytes), and the layer in backward holds them again.
TEST(MemoryEstimate, RecomputedNormsAndSwigluAreNotKept) {
  JobConfig kept = job();
  kept.train.micro_batch_size = 3;
  kept.data.seq_len = 16;
  JobConfig recomputed = kept;
  recomputed.train.recompute_norms_swiglu = true;
  const double tokens = 3 * 16, layers = 2, row = 2 * (2 * 32 + 64);
  for (int ranks : {1, 2}) {
    const MemoryEstimate a = estimate(kept, ranks), b = estimate(recomputed, ranks);
    EXPECT_EQ(a.activations - b.activations, tokens * (layers - 1) * row);
    EXPECT_EQ(model_state(a), model_state(b));
  }
  // train.recompute_norms_swiglu_layers: only the first N layers; N >= layers is all of them, and
  // one layer alone saves nothing (its backward holds them again).
  JobConfig first = recomputed;
  for (int64_t n : {2, 5}) {
    first.train.recompute_norms_swiglu_layers = n;
    EXPECT_EQ(estimate(first, 1).activations, estimate(recomputed, 1).activations) << n;
  }
  first.train.recompute_norms_swiglu_layers = 1;
  EXPECT_EQ(estimate(first, 1).activations, estimate(kept, 1).activations);
}

// Optimizer offload: master weights and moments (12 B) and the gradient accumulators (4 B) of
// this rank's elements leave the device; pinned memory gains them and four staging buffers of the
// largest shard (two for the working copy, two for gradients). With nvme the 12 B go to disk and
// the pool to pinned memory.
TEST(MemoryEstimate, OptimizerOffloadMovesStateOffTheDevice) {
  JobConfig j = job(33);
  const double owned = kSplit / 2 + kKept, staged = 9216 / 2;
  const MemoryEstimate none = estimate(j, 2);
  j.zero.offload_optimizer.device = "cpu";
  const MemoryEstimate cpu = estimate(j, 2);
  MemoryEstimate e = cpu;
  EXPECT_EQ(e.master + e.moments, 0);
  EXPECT_EQ(e.gradients, 4 * (9216 + kKept));
  EXPECT_EQ(model_state(none) - model_state(e), 12 * owned + 4 * kSplit / 2);
  EXPECT_EQ(e.host, 16 * owned + 2 * 2 * staged + 2 * 4 * staged);
  EXPECT_EQ(e.disk, 0);

  j.zero.offload_optimizer.gradients = "device";
  e = estimate(j, 2);
  EXPECT_EQ(e.gradients, 4 * (9216 + kKept) + 4 * owned);
  EXPECT_EQ(e.host, 12 * owned + 2 * 2 * staged + 2 * 4 * staged);
  EXPECT_EQ(estimate(j, 1).gradients, 4 * kParams) << "one rank: the accumulators are the whole gradients";

  j.zero.offload_optimizer.gradients = "host";
  j.zero.offload_optimizer.device = "nvme";
  j.zero.offload_optimizer.pinned_buffer_mb = 3;
  e = estimate(j, 2);
  EXPECT_EQ(e.disk, 12 * owned);
  EXPECT_EQ(e.host, 3 * kMiB + 4 * owned + 2 * 2 * staged + 2 * 4 * staged);
  EXPECT_EQ(model_state(e), model_state(cpu));  // the device holds the same either way
}

// Parameter offload (stage 3): the working-copy slices leave the device too, and each gathered
// unit's shard, with the kept tensors, comes back as a copy; on nvme the slices go to disk and
// the parameters' own pool (not the staging buffers) is what they use of pinned memory.
TEST(MemoryEstimate, ParameterOffloadOnDisk) {
  JobConfig j = job(33);
  j.zero.offload_optimizer.device = j.zero.offload_params.device = "nvme";
  j.zero.offload_optimizer.pinned_buffer_mb = 3;
  j.zero.offload_params.pinned_buffer_mb = 5;
  const double owned = kSplit / 2 + kKept, staged = 9216 / 2;
  const MemoryEstimate e = estimate(j, 2);
  EXPECT_EQ(e.working, 0);
  EXPECT_EQ(e.gathered, 2 * 9216 * 3 + 2 * (staged + kKept) * 3);
  EXPECT_EQ(e.disk, 12 * owned + 2 * owned);
  EXPECT_EQ(e.host, 3 * kMiB + 5 * kMiB + 4 * owned + 2 * 4 * staged);
  j.zero.offload_params.device = "cpu";
  EXPECT_EQ(estimate(j, 2).host, 3 * kMiB + 2 * owned + 4 * owned + 2 * 4 * staged);
  // Parameter offload needs stage 3; below it the estimate leaves the working copy on the device.
  EXPECT_EQ(estimate(j, 2, 2).working, 2 * (owned + kSplit));
}
