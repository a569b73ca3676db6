// A model ready for inference: what engine/model_folder.h loads (a Hugging Face folder, a quantized
// checkpoint, a Tessera checkpoint folder or a .gguf file, verified against its checksums, with a
// PEFT adapter attached with --adapter), put behind an InferenceModel with its tokenizer.
#pragma once

#include <map>
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
  std::string model;    // the folder or .gguf file
  std::string adapter;  // a PEFT adapter folder, or ""
  std::string tokenizer;  // a tokenizer.json, a folder holding one, or "bytes": replaces the model's own ("": its own)
  Device device = Device::cpu();
  DType dtype = DType::F32;  // of the weights and the KV cache: f32 or bf16 (CPU: f32 only)
  bool verify = true;        // the weight files against SHA256SUMS / the manifest / `checksums` (--no-verify)
  std::map<std::string, std::string> checksums;  // file name -> SHA-256 hex, in place of SHA256SUMS
};

struct LoadedInferenceModel {
  std::shared_ptr<InferenceModel> model;
  std::shared_ptr<const tok::Tokenizer> tokenizer;  // null when the model has none
  std::string name;  // the folder's last component, for the API's model field
};

// Errors name the folder and what is wrong (no config.json, missing tensors, a checksum mismatch,
// a bad adapter).
LoadedInferenceModel load_inference_model(const ModelFiles& files);

}  // namespace tessera::inference
