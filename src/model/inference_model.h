// A model for inference: its config, the rotary table made once, and its weights behind a
// ParamSource. step() runs many tokens of many sequences packed together (prefill chunks and
// decode tokens in one pass) against the paged KV cache, and returns logits only for the tokens
// asked for. The layers are training's own (model/layer_parts.h); only attention differs.
#pragma once

#include <memory>
#include <vector>

#include "model/adapter_bank.h"
#include "model/kv_cache.h"
#include "model/model_config.h"
#include "model/param_source.h"
#include "model/transformer.h"

namespace tessera {

// One step's tokens, packed: token t belongs to sequence seq[t] (a row of block_tables) at
// position pos[t]; a sequence's tokens in a step are consecutive positions, and every earlier
// position of it is already in the cache.
struct StepInput {
  std::vector<int32_t> ids, seq, pos;
  std::vector<const BlockTable*> block_tables;  // per sequence; each holds blocks up to its last position
  std::vector<int64_t> logit_rows;              // tokens whose next-token logits are wanted
  std::vector<int32_t> adapter;  // per sequence: its adapter in the model's AdapterBank, -1 the base; empty: all base
};

class InferenceModel {
 public:
  // Weights held whole (they must outlive the model).
  InferenceModel(ModelConfig config, std::shared_ptr<ParamSource> source, Device device, DType dtype);

  const ModelConfig& config() const { return config_; }
  Device device() const { return device_; }
  DType dtype() const { return dtype_; }  // of the weights and activations
  // The KV cache's dtype: bf16 on the GPU (what paged attention runs in), f32 on the CPU.
  DType cache_dtype() const;

  // LoRA adapters that StepInput::adapter picks among, applied batched (ops::lora_batched) on top
  // of the shared base; they must have been stacked for this model's config, dtype and device.
  void set_adapters(std::shared_ptr<const AdapterBank> adapters) { adapters_ = std::move(adapters); }
  const AdapterBank* adapters() const { return adapters_.get(); }

  // Writes the tokens' keys and values into the cache and returns f32 host logits
  // [logit_rows.size(), vocab] of the rows asked for (in that order).
  Tensor step(const StepInput& input, KvCache& cache);

 private:
  ModelConfig config_;
  std::shared_ptr<ParamSource> source_;
  Device device_;
  DType dtype_;
  RopeTable rope_;
  std::shared_ptr<const AdapterBank> adapters_;
};

// Parameters held in memory as a ParamSource (owns them).
class OwnedParams : public ParamSource {
 public:
  explicit OwnedParams(ModelParams params) : params_(std::move(params)) {}
  const ModelParams& acquire(UnitId) override { return params_; }
  void release(UnitId) override {}
  ModelParams& grads(UnitId) override;
  void grads_done(UnitId) override {}

 private:
  ModelParams params_;
};

}  // namespace tessera
