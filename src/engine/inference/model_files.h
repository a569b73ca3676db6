// A model ready for inference from what users have on disk: a Hugging Face folder (config.json,
// safetensors, tokenizer files) or a Tessera checkpoint folder (step-<N>, a LoRA checkpoint reads
// as its merged model), optionally with a PEFT adapter applied (--adapter).
#pragma once

#include <memory>
#include <string>

#include "core/device.h"
#include "core/dtype.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera {
class InferenceModel;
}

namespace tessera::inference {

struct ModelFiles {
  std::string model;    // the folder
  std::string adapter;  // a PEFT adapter folder, or ""
  Device device = Device::cpu();
  DType dtype = DType::F32;  // of the weights and the KV cache: f32 or bf16 (CPU: f32 only)
};

struct LoadedInferenceModel {
  std::shared_ptr<InferenceModel> model;
  std::shared_ptr<const tok::Tokenizer> tokenizer;  // null when the folder has none
  std::string name;  // the folder's last component, for the API's model field
};

// Errors name the folder and what is wrong (no config.json, missing tensors, a bad adapter).
LoadedInferenceModel load_inference_model(const ModelFiles& files);

}  // namespace tessera::inference
