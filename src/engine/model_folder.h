// The one loader of the model that generate, eval and serve run, from any of the places a model
// lives: a Hugging Face folder (config.json, safetensors, tokenizer.json; a quantized checkpoint is
// one too, read through engine/model_weights), a Tessera checkpoint folder (step-<N>: its fp32
// master weights, a LoRA checkpoint merged, its job's tokenizer) or a .gguf file (its tokenizer
// inside), optionally with a PEFT adapter attached. Weight files are verified first: a checkpoint
// against its COMPLETE manifest, a folder against the checksums given (the serve config's
// `checksums`) or else its SHA256SUMS (what `tessera export` writes); a mismatch is an error naming
// the file (a .gguf file is checked only against given checksums). `verify = false` skips it all
// (--no-verify).
#pragma once

#include <map>
#include <optional>
#include <string>

#include "engine/model_loader.h"
#include "io/data/data_options.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera {

struct RunnableModel : LoadedModel {
  tok::Tokenizer tokenizer = tok::Tokenizer::bytes();
  bool has_tokenizer = true;  // false: the model has none and none was required (ids in, ids out)
  // A checkpoint's job data section (how it packed its data: seq_len, format, chat template).
  std::optional<data::DataOptions> job_data;
};

struct ModelLoadOptions {
  DType dtype = DType::F32;
  Device device = Device::cpu();
  bool verify = true;
  // File name (inside the model folder, or the .gguf file's own name) -> SHA-256 hex: checked in
  // place of the folder's SHA256SUMS when not empty.
  std::map<std::string, std::string> checksums;
  std::string tokenizer;            // a tokenizer.json, a folder holding one, or "bytes": replaces the model's own
  bool tokenizer_required = true;   // false: a model without a tokenizer loads with has_tokenizer false
  std::string adapter;              // a PEFT adapter folder attached to the projections, or ""
  // packed: quantized projections (a quantized checkpoint's, a GGUF file's q8_0 / q4_0) stay packed.
  QuantizedWeights quantized = QuantizedWeights::dequantize;
};

enum class ModelKind { hf_folder, checkpoint, gguf };
ModelKind model_kind(const std::string& path);  // an Error naming `path` when it is none of them

// The integrity check alone (what load_runnable_model does first): an Error naming the first file
// that is missing or differs.
void verify_model_files(const std::string& path, const std::map<std::string, std::string>& checksums = {});

RunnableModel load_runnable_model(const std::string& path, const ModelLoadOptions& options);

tok::Tokenizer open_tokenizer(const std::string& path);  // a tokenizer.json, a folder holding one, or "bytes"

}  // namespace tessera
