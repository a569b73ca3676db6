// What a job trains: every parameter of the model, or with a `lora:` section a frozen base with
// adapters (and any modules_to_save) trainable, and with quant.qat.learnable_scales the QAT group
// scales (engine/qat.h); and how the store is filled at the start.
#pragma once

#include <optional>
#include <vector>

#include "comm/communicator.h"
#include "engine/checkpoint/base_weights.h"
#include "engine/config/job_config.h"
#include "lora/adapter.h"
#include "model/transformer.h"
#include "zero/zero_store.h"

namespace tessera {

// The std of N(0, std) initialisation (model.init), as Hugging Face's initializer_range default.
inline constexpr float kInitStd = 0.02f;

struct JobParams {
  std::vector<ParamSpec> params;
  std::optional<lora::AdapterSpec> adapter;  // a LoRA job

  float lora_scale() const { return adapter ? adapter->scale() : 1.0f; }
  // The LoRA dropout of step `step`'s passes (off without LoRA or with dropout 0).
  PassDropout dropout(uint64_t seed, int64_t step) const;
};

JobParams job_params(const JobConfig& job, const ModelConfig& config);

// The store's starting values: the base from model.path (every tensor there, checked first) or
// initialised from train.seed (model.init); adapters (and modules_to_save) from lora.adapter, a
// PEFT adapter that must have the job's shape, or by their init rules.
void load_weights(ZeroStore& store, const JobConfig& job, const ModelConfig& config, const JobParams& params);

// The base a LoRA job's adapters are trained against, as its checkpoints record it: model.path's
// weight files hashed (spread over the ranks of `host`; by this process alone without one), or
// the model.init architecture and train.seed.
checkpoint::BaseWeights job_base_weights(const JobConfig& job, Communicator* host);

}  // namespace tessera
