// The parameters a ModelConfig implies, named and shaped as in Hugging Face checkpoints.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"
#include "kernels/quant_format.h"
#include "model/model_config.h"

namespace tessera {

// How a parameter starts when it is initialised rather than loaded.
enum class ParamInit {
  normal,           // N(0, std) with the job's initialisation std (matrices, embeddings)
  ones,             // norm weights
  zeros,            // biases, LoRA B
  kaiming_uniform,  // nn.Linear's default (a = sqrt(5)): U(-1/sqrt(in), 1/sqrt(in)); PEFT's LoRA A
  lora_gaussian,    // N(0, 1/r) for LoRA A [r, in] (PEFT's init_lora_weights="gaussian")
};

// A parameter says what it is; nothing downstream guesses it from a name or a shape.
struct ParamSpec {
  std::string name;
  Shape shape;             // Linear weights are [out, in], as in torch.nn.Linear
  bool trainable = true;   // frozen: no gradient, no master weights, no moments, no dW GEMM
  bool decays = false;     // AdamW's weight decay applies (matrices and embeddings)
  ParamInit init = ParamInit::zeros;
  // A frozen projection weight stored packed under this scheme (QLoRA's base): quantized as it is
  // loaded, held, sharded and gathered as its packed bytes, dequantized by Linear for the products.
  std::optional<QuantSpec> quant;
};

// In transformers' state_dict order: model.embed_tokens; per layer the attention projections
// (q, k, v, o, each followed by its bias when it has one; then q_norm, k_norm for qwen3), the MLP
// (gate, up, down), input_layernorm, post_attention_layernorm; model.norm; lm_head unless tied.
// All trainable.
std::vector<ParamSpec> model_parameters(const ModelConfig& config);

// Elements [first, first + slice.numel()) of parameter `spec`, flattened, initialised by its
// rule; element i of the parameter uses Philox counter offset + i with `seed`, so any split of
// the tensor over ranks gives the same values. `std` is the job's for ParamInit::normal.
void init_param(const ParamSpec& spec, const Tensor& slice, uint64_t seed, uint64_t offset, float std);

// Checks that `checkpoint` holds exactly the parameters of `config` with the right shapes and a
// floating dtype. Ignored: `*.rotary_emb.inv_freq` buffers that old checkpoints carry, and an
// `lm_head.weight` in a tied model (a redundant copy of the embedding some exporters write;
// its shape must still match). A missing lm_head.weight in an untied model is an error.
void validate_checkpoint(const ModelConfig& config, const SafetensorsModel& checkpoint);

}  // namespace tessera
