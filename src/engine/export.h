// `tessera export`: a checkpoint as a Hugging Face model folder (config.json, safetensors shards
// of at most 5 GB with their index, the tokenizer files), streamed one tensor at a time, so the
// whole model is never in memory at once.
#pragma once

#include <string>

#include "core/dtype.h"
#include "engine/export_source.h"

namespace tessera {

struct ExportOptions {
  std::string checkpoint;  // a step-<N> folder (complete and intact)
  std::string out;         // the folder to write; must not exist or be empty
  DType dtype = DType::BF16;
  uint64_t max_shard_bytes = 5'000'000'000;
};

// A LoRA checkpoint exports merged: each adapted projection as W + scale * B A in fp32, then
// `dtype`, over its base (model.path, checked, or model.init made again from train.seed). A QLoRA
// checkpoint (lora.base_quant) merges into dequantize(quantize(base)), the weights it was trained
// against, for every projection, and says so in the log.
void export_safetensors(const ExportOptions& options);

// A LoRA checkpoint's adapter as a PEFT folder (lora/peft.h): adapter_config.json and
// adapter_model.safetensors with the trained tensors in `dtype`.
void export_peft(const ExportOptions& options);

// tokenizer.json and its companions from the source's tokenizer (or model) folder into `folder`.
void copy_tokenizer_files(const ExportSource& source, const std::string& folder);

}  // namespace tessera
