// Rotary embedding frequencies for a ModelConfig, computed on the CPU in double precision as
// transformers' modeling_rope_utils does for each rope type (default, linear, llama3, yarn).
#pragma once

#include <vector>

#include "model/model_config.h"

namespace tessera {

// head_dim / 2 inverse frequencies; the angle of pair i at position p is p * inv_freq[i].
std::vector<float> rope_inv_freq(const ModelConfig& config);

// The factor cos and sin are multiplied by: 1 except for yarn, where it is attention_factor
// when given, else derived from factor and mscale / mscale_all_dim.
double rope_attention_factor(const ModelConfig& config);

}  // namespace tessera
