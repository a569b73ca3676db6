// The parameters a ModelConfig implies, named and shaped as in Hugging Face checkpoints.
#pragma once

#include <string>
#include <vector>

#include "core/tensor.h"
#include "io/safetensors.h"
#include "model/model_config.h"

namespace tessera {

struct ParamSpec {
  std::string name;
  Shape shape;  // Linear weights are [out, in], as in torch.nn.Linear
};

// In transformers' state_dict order: model.embed_tokens; per layer the attention projections
// (q, k, v, o, each followed by its bias when it has one; then q_norm, k_norm for qwen3), the MLP
// (gate, up, down), input_layernorm, post_attention_layernorm; model.norm; lm_head unless tied.
std::vector<ParamSpec> model_parameters(const ModelConfig& config);

// Checks that `checkpoint` holds exactly the parameters of `config` with the right shapes and a
// floating dtype. Ignored: `*.rotary_emb.inv_freq` buffers that old checkpoints carry, and an
// `lm_head.weight` in a tied model (a redundant copy of the embedding some exporters write;
// its shape must still match). A missing lm_head.weight in an untied model is an error.
void validate_checkpoint(const ModelConfig& config, const SafetensorsModel& checkpoint);

}  // namespace tessera
