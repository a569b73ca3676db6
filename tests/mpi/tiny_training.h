// The tiny training runs the multi-rank tests compare: a 2-layer Llama on learnable sequences
// that are the same whatever the world size, trained a few steps through the ZeRO store.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "engine/qat.h"
#include "engine/qat_scales.h"
#include "engine/train_step.h"
#include "kernels/ops.h"
#include "model/model_config_params.h"

namespace tessera::testing_util {

constexpr int64_t kGlobalBatch = 6, kSeq = 12, kSteps = 4;

inline ModelConfig tiny_config(bool tied) {
  return ModelConfig::from_json(
      nlohmann::json{{"model_type", "llama"}, {"vocab_size", 61}, {"hidden_size", 32}, {"intermediate_size", 48},
                     {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                     {"max_position_embeddings", 64}, {"tie_word_embeddings", tied}},
      "tiny");
}

// Sequence j of global batch `step`: the same tokens whatever the world size. A random start,
// then +3 each token: learnable, so the loss must fall.
inline std::vector<int64_t> sequence(int64_t step, int64_t j) {
  std::vector<int64_t> ids(kSeq);
  const int64_t start = rng::philox(99, step * kGlobalBatch + j).v[0] % 61;
  for (int64_t t = 0; t < kSeq; ++t) ids[t] = (start + 3 * t) % 61;
  return ids;
}

// This rank's sequences [begin, end) of the step's global batch, cut into micro-batches of `mbs`.
inline std::vector<TokenBatch> micro_batches(int64_t step, int64_t begin, int64_t end, int64_t mbs) {
  std::vector<TokenBatch> out;
  for (int64_t first = begin; first < end; first += mbs) {
    const int64_t n = std::min(mbs, end - first);
    std::vector<int64_t> ids;
    for (int64_t j = first; j < first + n; ++j) {
      auto s = sequence(step, j);
      ids.insert(ids.end(), s.begin(), s.end());
    }
    out.push_back(TokenBatch::causal_lm(Tensor::from_vector(ids, {n, kSeq}, DType::I64), Device::cpu()));
    out.back().first_token = first * kSeq;
  }
  return out;
}

// Swap files in the build folder; a staging pool of four 12 KiB buffers (1024-element pieces).
inline offload::NvmeSwap test_swap() {
  offload::NvmeSwap swap;
  swap.io.path = std::string(TESSERA_BIN_DIR) + "/../tmp/nvme";
  std::filesystem::create_directories(swap.io.path);
  swap.io.block_bytes = 8192;
  swap.pinned_bytes = 4 * 12288;
  return swap;
}

inline ZeroOptions zero(int stage, int prefetch = 1, int64_t persist_below = 0, int64_t bucket_bytes = 64 << 20) {
  return {.stage = stage, .prefetch = prefetch, .compute_dtype = DType::F32, .device = Device::cpu(),
          .persist_below = persist_below, .reduce_bucket_bytes = bucket_bytes};
}

// The tiny model's parameters with the attention (projections and norms) frozen.
inline std::vector<ParamSpec> attention_frozen(const ModelConfig& config) {
  std::vector<ParamSpec> params = model_parameters(config);
  for (ParamSpec& p : params) p.trainable = p.name.find("self_attn") == std::string::npos && !p.name.ends_with("layernorm.weight");
  return params;
}

// What a run trains: every parameter by default; or a parameter list (frozen tensors, adapters)
// with the LoRA scale and dropout of its adapters.
struct Trained {
  std::function<std::vector<ParamSpec>(const ModelConfig&)> params = model_parameters;
  float lora_scale = 1.0f;
  float dropout = 0.0f;      // LoRA dropout: key = step, the same on every rank
  Recompute recompute = Recompute::none;  // what backward makes again (activation checkpointing: layers)
  std::optional<QatOptions> qat = std::nullopt;  // quantization-aware training through a QatSource
  ZeroStore::ParamValues values = nullptr;  // the starting values (undefined: by rule); default: all by rule
  float lr = 1e-2f;
};

inline ops::AdamWStep adam_step(int64_t step, float lr = 1e-2f) {
  return {.lr = lr, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f, .step = step};
}

inline std::vector<double> train(Communicator& comm, ZeroOptions options, int64_t mbs, bool tied,
                                 const Trained& what = {}) {
  const ModelConfig config = tiny_config(tied);
  options.lora_scale = what.lora_scale;
  const std::optional<QatSpec> qat_spec = what.qat ? std::optional<QatSpec>(resolve_qat(*what.qat, config)) : std::nullopt;
  std::vector<ParamSpec> params = what.params(config);
  if (qat_spec)  // learned scales (none otherwise), zero until init_learned_scales
    for (ParamSpec& p : qat_scale_parameters(*qat_spec, config)) params.push_back(std::move(p));
  ZeroStore store(config, params, options, comm);
  if (what.values)
    store.load(what.values, 5, 0.1f);
  else
    store.init_random(5, 0.1f);
  std::optional<QatSource> qat;
  if (qat_spec) qat.emplace(store, config, *qat_spec);
  const int64_t per_rank = kGlobalBatch / comm.size();
  std::vector<double> losses;
  for (int64_t step = 1; step <= kSteps; ++step) {
    auto batches = micro_batches(step, comm.rank() * per_rank, (comm.rank() + 1) * per_rank, mbs);
    const PassDropout dropout{what.dropout, static_cast<uint64_t>(step)};
    if (qat && qat_spec->learned_scales && step == qat_spec->first_step()) init_learned_scales(store, config, *qat_spec);
    if (qat) qat->set_step(step);
    losses.push_back(train_step(store, comm, batches, adam_step(step, what.lr), /*clip_norm=*/0.5, what.recompute, dropout,
                                qat ? &*qat : nullptr)
                         .loss);
  }
  return losses;
}

inline void expect_same_curve(const std::vector<double>& got, const std::vector<double>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-4 * std::abs(want[i])) << what << " step " << i + 1;
  EXPECT_LT(want.back(), want.front()) << "the reference loss should fall";
}

}  // namespace tessera::testing_util
