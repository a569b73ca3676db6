// What an export reads: a Tessera checkpoint (a complete, intact step-<N> folder: config.yaml names
// the model and tokenizer, state.h5 holds the fp32 master weights) or a Hugging Face model folder
// (config.json, safetensors, tokenizer files). Parameters are read one at a time, as fp32 host
// tensors, so an exporter never holds the whole model. A LoRA checkpoint reads as its merged model:
// each adapted projection W + scale * B A in fp32 over its base (model.path, checked, or the
// model.init base made again from train.seed); a QLoRA checkpoint's over dequantize(quantize(base)),
// the packed base it was trained against, for every projection.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "lora/adapter.h"
#include "model/model_config.h"
#include "model/model_config_params.h"

namespace tessera {

class ExportSource {
 public:
  // Errors name the folder and what is wrong with it. `verify`: the files against the checkpoint's
  // COMPLETE manifest first (a folder that fails it is never read). `check_base`: a LoRA
  // checkpoint's base must be the one its trainer_state.json records (the SHA-256 of each weight
  // file), checked before the first base tensor is read.
  static ExportSource checkpoint(const std::string& folder, bool verify = true, bool check_base = true);
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

  // A LoRA checkpoint's adapter, and its base's folder ("" for a model.init base).
  const std::optional<lora::AdapterSpec>& adapter() const { return adapter_; }
  const std::string& base_model() const { return base_model_; }
  // A LoRA checkpoint's merge takes W, A and B rounded to `dtype` first, as a forward in that
  // compute dtype saw them (QAT with LoRA quantizes that merge; exact on the same backend). f32 by
  // default: the master weights as they are.
  void set_merge_inputs(DType dtype) { merge_inputs_ = dtype; }
  // For an export's log line: "" unless a LoRA checkpoint, else what the merge merged into.
  std::string merge_note() const;
  // A trainable tensor of a checkpoint (adapters, modules_to_save) as trained, fp32.
  Tensor read_trained(const ParamSpec& param) const;

 private:
  struct Weights;
  ExportSource();

  std::string folder_;
  ModelConfig config_;
  std::string tokenizer_;
  std::vector<ParamSpec> params_;
  std::optional<lora::AdapterSpec> adapter_;
  std::string base_model_;
  DType merge_inputs_ = DType::F32;
  std::unique_ptr<Weights> weights_;
};

}  // namespace tessera
