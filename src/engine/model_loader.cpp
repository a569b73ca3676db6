#include "engine/model_loader.h"

#include <map>

#include "core/error.h"
#include "engine/config/yaml_json.h"
#include "engine/model_weights.h"
#include "kernels/ops.h"
#include "model/model_config_params.h"

namespace tessera {

LoadedModel load_hf_model(const std::string& folder, DType dtype, Device device) {
  LoadedModel model;
  model.config = ModelConfig::from_file(folder);
  const ModelWeights weights = ModelWeights::open(folder, model.config);
  std::map<std::string, ParamSpec> specs;
  for (const ParamSpec& p : model_parameters(model.config)) specs.emplace(p.name, p);
  for_each_param(model.config, model.params, [&](const std::string& name, Tensor& slot) {
    // Converted on the host, one tensor at a time, so only one extra copy is alive at once (a
    // quantized matrix is dequantized).
    slot = ops::cast(weights.tensor(specs.at(name)), dtype).to(device);
  });
  return model;
}

ModelConfig job_model_config(const ModelSection& model) {
  TS_CHECK(!model.path.empty() || !model.init.IsNull(), "the job names no model: set model.path or model.init");
  if (!model.path.empty()) return ModelConfig::from_file(model.path);
  return ModelConfig::from_json(config::yaml_to_json(model.init), "model.init");
}

}  // namespace tessera
