// The model that generate, eval and serve run, from any of the places a model lives: a Hugging
// Face folder (config.json, safetensors, tokenizer.json), a Tessera checkpoint folder (step-<N>:
// its fp32 master weights, a LoRA checkpoint merged, its job's tokenizer) or a .gguf file (its
// tokenizer inside). Weight files are verified first: a checkpoint against its COMPLETE manifest,
// a folder with a SHA256SUMS (what `tessera export` writes) against it; a mismatch is an error
// naming the file (a .gguf file is not checked). `verify = false` skips both (--no-verify).
#pragma once

#include <optional>
#include <string>

#include "engine/model_loader.h"
#include "io/data/data_options.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera {

struct RunnableModel : LoadedModel {
  tok::Tokenizer tokenizer = tok::Tokenizer::bytes();
  // A checkpoint's job data section (how it packed its data: seq_len, format, chat template).
  std::optional<data::DataOptions> job_data;
};

enum class ModelKind { hf_folder, checkpoint, gguf };
ModelKind model_kind(const std::string& path);  // an Error naming `path` when it is none of them

// The integrity check alone (what load_runnable_model does first): an Error naming the first file
// that is missing or differs; for loaders of their own (the inference engine's).
void verify_model_files(const std::string& path);

// `tokenizer` (a tokenizer.json, a folder holding one, or "bytes") replaces the model's own.
RunnableModel load_runnable_model(const std::string& path, DType dtype, Device device, bool verify = true,
                                  const std::string& tokenizer = "");

tok::Tokenizer open_tokenizer(const std::string& path);  // a tokenizer.json, a folder holding one, or "bytes"


}  // namespace tessera
