#include "engine/model_loader.h"

#include <map>

#include "core/error.h"
#include "core/log.h"
#include "engine/config/yaml_json.h"
#include "engine/model_weights.h"
#include "kernels/ops.h"
#include "model/model_config_params.h"

namespace tessera {

void set_packed_base(Linear& linear, const PackedTensor& packed, Device device) {
  linear.weight = Tensor();
  linear.packed = std::make_shared<const PackedTensor>(packed.to(device));
  linear.packed_matmul = PackedMatmul::gemm_packed;
}

LoadedModel load_hf_model(const std::string& folder, DType dtype, Device device, QuantizedWeights quantized) {
  LoadedModel model;
  model.config = ModelConfig::from_file(folder);
  const ModelWeights weights = ModelWeights::open(folder, model.config);
  std::map<std::string, ParamSpec> specs;
  for (const ParamSpec& p : model_parameters(model.config)) specs.emplace(p.name, p);
  int64_t packed = 0;
  // A quantized lm_head is kept packed for the logits' product; untied, it needs no dense copy.
  const bool packed_head = quantized == QuantizedWeights::packed && weights.quantization() && weights.quantization()->lm_head;
  for_each_param(model.config, model.params, [&](const std::string& name, Tensor& slot) {
    const ParamSpec& spec = specs.at(name);
    if (packed_head && name == "lm_head.weight") return;
    if (quantized == QuantizedWeights::packed && weights.quantization() && weights.quantization()->selects(name))
      if (Linear* owner = weight_owner(model.params, name)) {
        set_packed_base(*owner, weights.packed(spec), device);
        ++packed;
        return;
      }
    // Converted on the host, one tensor at a time, so only one extra copy is alive at once (a
    // quantized matrix is dequantized).
    slot = ops::cast(weights.tensor(spec), dtype).to(device);
  });
  if (packed > 0)
    spdlog::info("{}: {} projections kept packed ({})", folder, packed, weights.quantization()->describe());
  if (packed_head) {
    const std::string head = model.config.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight";
    model.packed_lm_head = std::make_shared<const PackedTensor>(weights.packed(specs.at(head)).to(device));
  }
  return model;
}

ModelConfig job_model_config(const ModelSection& model) {
  TS_CHECK(!model.path.empty() || !model.init.IsNull(), "the job names no model: set model.path or model.init");
  if (!model.path.empty()) return ModelConfig::from_file(model.path);
  return ModelConfig::from_json(config::yaml_to_json(model.init), "model.init");
}

}  // namespace tessera
