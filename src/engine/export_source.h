// What an export reads: a Tessera checkpoint (a complete, intact step-<N> folder: config.yaml names
// the model and tokenizer, state.h5 holds the fp32 master weights) or a Hugging Face model folder
// (config.json, safetensors, tokenizer files). Parameters are read one at a time, as fp32 host
// tensors, so an exporter never holds the whole model.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "model/model_config.h"
#include "model/model_config_params.h"

namespace tessera {

class ExportSource {
 public:
  // Errors name the folder and what is wrong with it.
  static ExportSource checkpoint(const std::string& folder);
  static ExportSource hf_folder(const std::string& folder);
  ExportSource(ExportSource&&) noexcept;
  ~ExportSource();

  const std::string& folder() const { return folder_; }
  const ModelConfig& config() const { return config_; }
  // tokenizer.json (or its folder), "bytes" for the built-in byte tokenizer, "" when there is none.
  const std::string& tokenizer() const { return tokenizer_; }
  // The folder with tokenizer.json and its companions to copy along, "" when there is none.
  std::string tokenizer_folder() const;
  const std::vector<ParamSpec>& params() const { return params_; }
  // One parameter as an fp32 host tensor of its HF shape.
  Tensor read(const ParamSpec& param) const;

 private:
  struct Weights;
  ExportSource();

  std::string folder_;
  ModelConfig config_;
  std::string tokenizer_;
  std::vector<ParamSpec> params_;
  std::unique_ptr<Weights> weights_;
};

}  // namespace tessera
