// Loading a Hugging Face model folder into parameters on a device.
#pragma once

#include <string>

#include "engine/config/job_config.h"
#include "model/model_config.h"
#include "model/transformer_params.h"

namespace tessera {

struct LoadedModel {
  ModelConfig config;
  ModelParams params;
};

// Reads config.json and the safetensors weights (validated: every tensor present, right shapes),
// converted to `dtype` on `device`. Errors name the folder and the tensor.
LoadedModel load_hf_model(const std::string& folder, DType dtype, Device device);

// The architecture a job names: model.path's config.json, or the model.init mapping.
ModelConfig job_model_config(const ModelSection& model);

}  // namespace tessera
