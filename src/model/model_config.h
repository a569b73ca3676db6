// The architecture of a decoder-only transformer, parsed from a Hugging Face config.json.
// Supported model_type: llama, mistral, qwen2, qwen3 (all: RMSNorm, SwiGLU MLP, RoPE, GQA).
// Absent optional keys take the defaults of that family's transformers config class.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

namespace tessera {

enum class ModelFamily { Llama, Mistral, Qwen2, Qwen3 };

// RoPE frequency scaling, from `rope_scaling` (older configs) or `rope_parameters` (newer ones).
struct RopeScaling {
  enum class Type { Default, Linear, Llama3, Yarn };
  Type type = Type::Default;
  // linear, llama3, yarn. For yarn, the factor as written (derived from max_position_embeddings /
  // original_max_position_embeddings only when absent), as transformers 5 does; transformers 4.x
  // replaced a given factor by that ratio whenever original_max_position_embeddings was set.
  double factor = 1.0;
  // llama3
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  // llama3 (required) and yarn (optional; yarn falls back to max_position_embeddings)
  std::optional<int64_t> original_max_position_embeddings;
  // yarn
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  std::optional<double> mscale;
  std::optional<double> mscale_all_dim;
  std::optional<double> attention_factor;  // overrides the one derived from factor / mscale
  bool truncate = true;                    // round the correction range to whole dimensions

  bool operator==(const RopeScaling&) const = default;
};

// The largest sizes a config may give, far above any published model of these families: a size
// beyond them is refused, naming the key, before anything is sized from it (a typo such as
// num_hidden_layers: 100000000 would otherwise run out of memory building the model).
namespace model_limits {
inline constexpr int64_t kLayers = 1024;
inline constexpr int64_t kHidden = int64_t{1} << 17;        // hidden_size
inline constexpr int64_t kIntermediate = int64_t{1} << 20;  // intermediate_size
inline constexpr int64_t kHeads = 1024;                     // num_attention_heads (and key/value heads)
inline constexpr int64_t kHeadDim = 1024;
inline constexpr int64_t kVocab = int64_t{1} << 24;      // as token ids in tokenizer.json
inline constexpr int64_t kPositions = int64_t{1} << 24;  // max_position_embeddings, sliding_window
}  // namespace model_limits

struct ModelConfig {
  std::string model_type;  // as written in config.json
  ModelFamily family = ModelFamily::Llama;

  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;             // config value when given (Qwen3), else hidden / heads
  int64_t max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  // The `attention_bias` key (llama, qwen3): biases on q, k, v and o. Qwen2 has q/k/v biases
  // regardless; Mistral has none (transformers ignores the key there too).
  bool attention_bias = false;
  bool qk_norm = false;  // RMSNorm over head_dim on q and k (qwen3)
  // Recorded for export only: Tessera trains with full causal attention over the sequence.
  std::optional<int64_t> sliding_window;
  std::string hidden_act = "silu";
  std::string torch_dtype;  // informational, e.g. "bfloat16"
  std::vector<int64_t> bos_token_ids;
  std::vector<int64_t> eos_token_ids;

  // Reads `path`, or `path`/config.json when it is a folder.
  static ModelConfig from_file(const std::string& path);
  // `source` names the origin in error messages (a file name, "model.init", ...).
  static ModelConfig from_json(const nlohmann::json& json, const std::string& source = "config");
  // Every top-level key from_json reads (and to_json writes); a hand-written mapping
  // (model.init) may use no other.
  static const std::vector<std::string>& json_keys();
  // An equivalent config.json for exports (legacy rope_theta / rope_scaling keys, which every
  // transformers version reads).
  nlohmann::json to_json() const;

  bool qkv_bias() const;
  bool o_proj_bias() const;

  bool operator==(const ModelConfig&) const = default;
};

}  // namespace tessera
