// The weights of a Hugging Face-style model folder, plain or in Tessera's quantized form, which is
// what every loader reads through (forward, export, generate, eval, serve).
//
// Tessera's quantized checkpoint is such a folder whose config.json carries a `quantization_config`
// ({"quant_method": "tessera", "scheme", "group_size", "symmetric", "modules"}) and whose
// safetensors hold each quantized matrix as its packed parts under "<name>.<part>"
// (model.layers.0.self_attn.q_proj.weight.codes, ...weight.scales), in the parts' own dtypes and
// shapes (kernels/quant_format.h); every other tensor as a plain floating tensor. Reading a
// quantized matrix dequantizes it exactly as ops::dequantize defines, so a checkpoint written from
// QAT weights holds exactly what the QAT forward used.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "engine/quant_targets.h"
#include "io/safetensors.h"
#include "model/model_config.h"
#include "model/model_config_params.h"

namespace tessera {

inline constexpr const char* kTesseraQuantMethod = "tessera";

// The config.json entry for `targets`, and back (errors name `where` and the key).
nlohmann::json quantization_config_json(const QuantTargets& targets);
QuantTargets parse_quantization_config(const nlohmann::json& json, const ModelConfig& config, const std::string& where);

class ModelWeights {
 public:
  // Reads `folder`/config.json's quantization_config (if any) and opens the safetensors,
  // validated against `config`: every tensor present with its shape, packed parts as the scheme
  // lays them out. Errors name the folder and the tensor.
  static ModelWeights open(const std::string& folder, const ModelConfig& config);

  // Set for a quantized checkpoint.
  const std::optional<QuantTargets>& quantization() const { return quantization_; }
  // The parameter as stored (a quantized matrix dequantized to f32), a host tensor.
  Tensor tensor(const ParamSpec& param) const;
  // A quantized matrix's packed form (host views over the files).
  PackedTensor packed(const ParamSpec& param) const;

 private:
  std::string folder_;
  std::shared_ptr<const SafetensorsModel> files_;
  std::optional<QuantTargets> quantization_;
};

}  // namespace tessera
