#include "engine/model_loader.h"

#include "core/error.h"
#include "io/safetensors.h"
#include "kernels/ops.h"
#include "model/model_config_params.h"

namespace tessera {

LoadedModel load_hf_model(const std::string& folder, DType dtype, Device device) {
  LoadedModel model;
  model.config = ModelConfig::from_file(folder);
  const SafetensorsModel weights = SafetensorsModel::open(folder);
  validate_checkpoint(model.config, weights);
  for_each_param(model.config, model.params, [&](const std::string& name, Tensor& slot) {
    // Converted on the host, one tensor at a time, so only one extra copy is alive at once.
    slot = ops::cast(weights.tensor(name), dtype).to(device);
  });
  return model;
}

}  // namespace tessera
