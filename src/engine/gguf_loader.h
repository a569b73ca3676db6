// A GGUF file as a model Tessera runs: the ModelConfig its metadata describes, every parameter
// decoded to `dtype` on `device` (Q8_0 / Q4_0 dequantized exactly as ggml does, so the weights are
// the ones llama.cpp multiplies by), q/k rows put back in transformers' order, and the tokenizer
// the file carries. Files from llama.cpp's converter load too, for the architectures and tensor
// types Tessera writes.
#pragma once

#include <string>

#include "engine/model_loader.h"
#include "io/gguf_reader.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera {

// True when `path` is a file that starts with the GGUF magic.
bool is_gguf_file(const std::string& path);

// The architecture in a file's metadata; Errors name the file and the key.
ModelConfig gguf_model_config(const gguf::File& file);

// With QuantizedWeights::packed, q8_0 / q4_0 projections keep the file's blocks as their packed base.
LoadedModel load_gguf_model(const std::string& path, DType dtype, Device device,
                            QuantizedWeights quantized = QuantizedWeights::dequantize);

tok::Tokenizer gguf_tokenizer(const gguf::File& file);

// A Hugging Face model folder or a .gguf file.
LoadedModel load_model_file(const std::string& path, DType dtype, Device device,
                            QuantizedWeights quantized = QuantizedWeights::dequantize);

}  // namespace tessera
