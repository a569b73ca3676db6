// Tiny random Hugging Face model folders for the export tests: config.json, model.safetensors with
// Normal(0, std) matrices and norm weights near 1, and the tokenizer files of a real tokenizer.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "io/safetensors_writer.h"
#include "kernels/ops.h"
#include "model/model_config_params.h"

namespace tessera::testing_util {

inline void write_tiny_model(const std::filesystem::path& dir, const nlohmann::json& config_json,
                             const std::string& tokenizer_dir, uint64_t seed, float std = 0.1f) {
  namespace fs = std::filesystem;
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << config_json.dump(2);
  const ModelConfig config = ModelConfig::from_json(config_json, "tiny model");
  std::vector<std::pair<std::string, Tensor>> tensors;
  uint64_t offset = 0;
  for (const ParamSpec& p : model_parameters(config)) {
    Tensor t = Tensor::empty(p.shape, DType::F32);
    const bool norm = p.name.find("norm") != std::string::npos;
    ops::fill_normal(t, seed, offset, norm ? 1.0f : 0.0f, norm ? 0.1f : std);
    offset += static_cast<uint64_t>(t.numel());
    tensors.emplace_back(p.name, t);
  }
  save_safetensors((dir / "model.safetensors").string(), tensors);
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"})
    if (fs::exists(fs::path(tokenizer_dir) / name))
      fs::copy_file(fs::path(tokenizer_dir) / name, dir / name, fs::copy_options::overwrite_existing);
}

}  // namespace tessera::testing_util
