// `tessera export --format gguf`: a checkpoint or a Hugging Face folder as one GGUF v3 file that
// llama.cpp loads (architectures llama, qwen2, qwen3; see gguf_model.h for the mapping). Matrices
// are written as `type`; 1-D tensors (norms, biases, rope_freqs) always as f32, and a matrix whose
// rows are not whole 32-value blocks falls back from q8_0 / q4_0 to f16 (as llama.cpp's converter
// does). Streamed tensor by tensor; the file appears atomically and never replaces an existing one.
#pragma once

#include <string>

#include "io/gguf_format.h"

namespace tessera {

struct GgufExportOptions {
  std::string checkpoint{};  // a step-<N> folder, or
  std::string model{};       // a Hugging Face model folder
  std::string out;         // the .gguf file to create
  gguf::TensorType type = gguf::TensorType::F16;
};

void export_gguf(const GgufExportOptions& options);

}  // namespace tessera
