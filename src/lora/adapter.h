// LoRA adapters (Hu et al. 2021) as PEFT defines them: an adapted projection computes
// y = x W^T + s (drop(x) A^T) B^T with A [r, in] and B [out, r] trained and the base W frozen.
// LoraOptions are a job's `lora:` keys (engine/config/job_config.h reads them from YAML; this
// layer knows no YAML); AdapterSpec is what they mean for one model.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/model_config.h"
#include "model/model_config_params.h"
#include "model/transformer_params.h"

namespace tessera::lora {

// The names a target module may have (PEFT's, the last part of the module path), and the one
// that stands for all seven.
inline constexpr const char* kProjectionNames[kProjections] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                                "gate_proj", "up_proj", "down_proj"};
inline constexpr const char* kAllLinear = "all-linear";

struct LoraOptions {
  int64_t r = 16;
  double alpha = 32;
  double dropout = 0;
  std::vector<std::string> target_modules{kAllLinear};
  bool use_rslora = false;                   // scale alpha / sqrt(r) instead of alpha / r
  std::string init = "peft";                 // peft | gaussian: how A starts (B starts at zero)
  std::vector<int64_t> layers;               // the layers adapted; empty: all
  std::vector<std::string> modules_to_save;  // embed_tokens, lm_head
  std::string adapter;                       // a PEFT adapter folder to start from
  std::string base_quant = "none";           // none | nf4 | int8: how the frozen base is stored
  std::string packed_matmul = "dequantize";  // dequantize | gemm_packed: how a packed base multiplies
  std::string frozen_embedding = "device";   // device | host: where a frozen, untied embed_tokens lives
};

struct AdapterSpec {
  int64_t r = 16;
  double alpha = 32;
  double dropout = 0;
  bool use_rslora = false;
  ParamInit a_init = ParamInit::kaiming_uniform;
  std::array<bool, kProjections> targets{};
  std::vector<bool> layers;  // per layer of the model
  bool train_embed = false, train_lm_head = false;
  // QLoRA: every projection weight of the base stored packed (bitsandbytes NF4, or int8 per
  // output channel); embeddings, norms and lm_head stay in the compute dtype.
  std::optional<QuantScheme> base_quant;
  PackedMatmul packed_matmul = PackedMatmul::dequantize;
  // The frozen embedding table kept whole in pinned host memory on every rank; only the batch's
  // rows go to the device (lora.frozen_embedding: host).
  bool embed_on_host = false;

  float scale() const;  // alpha / r, or alpha / sqrt(r) with rsLoRA
  bool adapts(int64_t layer, Projection p) const { return layers.at(layer) && targets[p]; }
  // The target modules by name, in projection order ("q_proj", ...).
  std::vector<std::string> target_names() const;
  // The modules trained whole ("embed_tokens", "lm_head").
  std::vector<std::string> saved_modules() const;
};

// `options` for `config`; a key that does not fit the model (a layer past its last, lm_head on a
// model that ties it to embed_tokens, an unknown module name) is one error naming `where`.key.
AdapterSpec resolve(const LoraOptions& options, const ModelConfig& config, const std::string& where = "lora");

// A's and B's HF-style names: "<layer path>.<projection path>.lora_A.weight" (PEFT's name without
// "base_model.model." in front).
std::string lora_a_name(int64_t layer, Projection p);
std::string lora_b_name(int64_t layer, Projection p);

// The parameters of a LoRA job on `config`: model_parameters(config), frozen except the
// modules_to_save, then A [r, in] and B [out, r] of every adapted projection (both decay; A by
// adapter.a_init, B zeros). With adapter.base_quant every projection weight is stored packed.
std::vector<ParamSpec> lora_parameters(const ModelConfig& config, const AdapterSpec& adapter);

}  // namespace tessera::lora
