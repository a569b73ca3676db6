// How a Tessera / Hugging Face model maps onto llama.cpp's GGUF models: the architecture name
// and its hyperparameter keys, tensor names, and the two places where llama.cpp's computation
// differs from transformers' and the weights must say so:
//  - llama.cpp's "llama" architecture rotates adjacent pairs of q/k dimensions (GPT-J style)
//    where transformers rotates the two halves of each head, so the rows of q_proj and k_proj
//    (weights and biases) are permuted within each head; qwen2/qwen3 rotate halves and keep
//    the HF order;
//  - llama3 rope scaling is not a GGUF key but a `rope_freqs` tensor of per-frequency divisors.
#pragma once

#include <string>
#include <vector>

#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "model/model_config.h"

namespace tessera {

// "llama" (Llama and Mistral), "qwen2" or "qwen3"; an Error for what llama.cpp would not run the
// same way (YaRN rope scaling, qwen3 with attention biases).
std::string gguf_architecture(const ModelConfig& config);

// general.architecture and the {arch}.* hyperparameters. llama3 rope scaling also gets
// tessera.rope.llama3.* keys (factor, low/high_freq_factor, original_context_length): llama.cpp
// needs only rope_freqs, but they let Tessera read the exact configuration back.
void add_model_metadata(const ModelConfig& config, gguf::Metadata& metadata);

// The inverse, from a file's metadata and tensor shapes (vocab size, tied output, biases,
// rope_freqs checked against the llama3 keys); Errors name the key.
ModelConfig model_config_from_gguf(const gguf::File& file);

// model.layers.3.self_attn.q_proj.weight -> blk.3.attn_q.weight, and so on for every parameter
// model_parameters() names; an Error for any other name.
std::string gguf_tensor_name(const std::string& hf_name);

// True for q_proj / k_proj weights and biases of a model whose architecture is "llama".
bool gguf_permutes_rows(const ModelConfig& config, const std::string& hf_name);
// Reorders the rows of `rows` x `cols` values (one row per output dimension, heads of `head_dim`
// rows back to back) from transformers' half-split order to llama.cpp's interleaved order.
void permute_rows_for_gguf(const float* in, float* out, int64_t rows, int64_t cols, int64_t head_dim);
// The inverse: llama.cpp's order back to transformers'.
void unpermute_rows_from_gguf(const float* in, float* out, int64_t rows, int64_t cols, int64_t head_dim);
// The same on rows of `row_bytes` bytes each (a quantized matrix's rows of blocks).
void unpermute_row_bytes_from_gguf(const uint8_t* in, uint8_t* out, int64_t rows, int64_t row_bytes, int64_t head_dim);

// llama3 scaling: head_dim / 2 divisors of the default frequencies (1 for the short wavelengths,
// `factor` for the long ones, interpolated between); empty for every other rope type.
std::vector<float> gguf_rope_freq_factors(const ModelConfig& config);

}  // namespace tessera
