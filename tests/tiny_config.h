// The tiny Llama the unit tests of configs and estimates work out by hand: vocabulary 64, hidden
// 32, intermediate 64, 2 layers, 4/2 heads (q, o 32 x 32; k, v 16 x 32; gate, up, down 64 x 32).
#pragma once

#include <nlohmann/json.hpp>

#include "model/model_config.h"

namespace tessera::testing_util {

inline ModelConfig tiny_llama(bool tied = true) {
  return ModelConfig::from_json(
      nlohmann::json{{"model_type", "llama"}, {"vocab_size", 64}, {"hidden_size", 32}, {"intermediate_size", 64},
                     {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                     {"max_position_embeddings", 64}, {"tie_word_embeddings", tied}},
      "tiny");
}

}  // namespace tessera::testing_util
