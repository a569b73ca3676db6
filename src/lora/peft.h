// PEFT LoRA adapter folders, in and out: adapter_config.json (LoraConfig's keys) and
// adapter_model.safetensors, whose tensors are named as PEFT saves them:
//   base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight   [r, in]
//   base_model.model.model.layers.N.self_attn.q_proj.lora_B.weight   [out, r]
//   base_model.model.<HF name>                                       modules_to_save
// Inside Tessera the same tensors go by the name without "base_model.model." (lora_a_name()).
// The reader is a parser of outside files: anything else is one error naming the file and the
// key or tensor, never a crash.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "lora/adapter.h"

namespace tessera::lora {

inline constexpr const char* kPeftConfigFile = "adapter_config.json";
inline constexpr const char* kPeftWeightsFile = "adapter_model.safetensors";

std::string peft_name(const std::string& name);  // "base_model.model." + name

struct PeftAdapter {
  LoraOptions options;     // what adapter_config.json says (r, alpha, dropout, targets, layers, ...)
  AdapterSpec spec;        // the same, resolved against the model it was read for
  std::string base_model;  // base_model_name_or_path
  SafetensorsFile weights;
  // A tensor by its Tessera name (as lora_parameters() names it).
  Tensor tensor(const std::string& name) const { return weights.tensor(peft_name(name)); }
};

// Reads the adapter in `folder` for a model of `config`. Refused, each with one line: a folder or
// file that is missing or damaged; another PEFT type or task; variants Tessera does not implement
// (DoRA, rank or alpha patterns, biases, fan_in_fan_out, ... : the key is named); a target module
// other than the seven projections; tensors missing, unexpected, not floating, or shaped for
// another architecture.
PeftAdapter read_peft_adapter(const std::string& folder, const ModelConfig& config);

// Writes `folder` (created; it must not exist or be empty): adapter_config.json for `adapter` on
// `base_model`, and adapter_model.safetensors holding each trainable parameter of
// lora_parameters(config, adapter) from `values` (f32 host tensors), converted to `dtype`.
void write_peft_adapter(const std::string& folder, const ModelConfig& config, const AdapterSpec& adapter,
                        const std::string& base_model, const std::function<Tensor(const ParamSpec&)>& values,
                        DType dtype);

}  // namespace tessera::lora
