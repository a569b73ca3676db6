#include "engine/gguf_model.h"

#include <nlohmann/json.hpp>
#include <utility>

#include "core/error.h"
#include "model/model_config_rope.h"

namespace tessera {

namespace {

using gguf::Value;

// HF module path inside a layer -> llama.cpp's tensor name inside blk.N.
constexpr std::pair<std::string_view, std::string_view> kLayerNames[] = {
    {"self_attn.q_proj", "attn_q"},      {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},      {"self_attn.o_proj", "attn_output"},
    {"self_attn.q_norm", "attn_q_norm"}, {"self_attn.k_norm", "attn_k_norm"},
    {"mlp.gate_proj", "ffn_gate"},       {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},       {"input_layernorm", "attn_norm"},
    {"post_attention_layernorm", "ffn_norm"},
};

constexpr std::pair<std::string_view, std::string_view> kModelNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

// "model.layers.<N>.<module>.<weight|bias>" split into N, module and the suffix.
bool split_layer_name(std::string_view name, std::string_view& layer, std::string_view& module,
                      std::string_view& suffix) {
  constexpr std::string_view prefix = "model.layers.";
  if (!name.starts_with(prefix)) return false;
  name.remove_prefix(prefix.size());
  const size_t dot = name.find('.');
  const size_t last = name.rfind('.');
  if (dot == 0 || dot == std::string_view::npos || last == dot) return false;
  layer = name.substr(0, dot);
  module = name.substr(dot + 1, last - dot - 1);
  suffix = name.substr(last);
  return layer.find_first_not_of("0123456789") == std::string_view::npos && (suffix == ".weight" || suffix == ".bias");
}

}  // namespace

std::string gguf_architecture(const ModelConfig& c) {
  TS_CHECK(c.rope_scaling.type != RopeScaling::Type::Yarn,
           "YaRN rope scaling is not exported to GGUF (llama.cpp computes it differently from transformers)");
  switch (c.family) {
    case ModelFamily::Llama:
    case ModelFamily::Mistral: return "llama";
    case ModelFamily::Qwen2:
      TS_CHECK(c.rope_scaling.type != RopeScaling::Type::Llama3, "llama.cpp's qwen2 has no llama3 rope scaling");
      return "qwen2";
    case ModelFamily::Qwen3:
      TS_CHECK(c.rope_scaling.type != RopeScaling::Type::Llama3, "llama.cpp's qwen3 has no llama3 rope scaling");
      TS_CHECK(!c.attention_bias, "llama.cpp's qwen3 has no attention biases (attention_bias is true)");
      return "qwen3";
  }
  fail("model_type '{}' has no GGUF architecture", c.model_type);
}

void add_model_metadata(const ModelConfig& c, gguf::Metadata& m) {
  const std::string arch = gguf_architecture(c);
  auto u32 = [](int64_t v) { return Value::u32(static_cast<uint32_t>(v)); };
  m.emplace_back("general.architecture", Value::string(arch));
  m.emplace_back(arch + ".vocab_size", u32(c.vocab_size));
  m.emplace_back(arch + ".context_length", u32(c.max_position_embeddings));
  m.emplace_back(arch + ".embedding_length", u32(c.hidden_size));
  m.emplace_back(arch + ".block_count", u32(c.num_hidden_layers));
  m.emplace_back(arch + ".feed_forward_length", u32(c.intermediate_size));
  m.emplace_back(arch + ".attention.head_count", u32(c.num_attention_heads));
  m.emplace_back(arch + ".attention.head_count_kv", u32(c.num_key_value_heads));
  m.emplace_back(arch + ".attention.key_length", u32(c.head_dim));
  m.emplace_back(arch + ".attention.value_length", u32(c.head_dim));
  m.emplace_back(arch + ".attention.layer_norm_rms_epsilon", Value::f32(static_cast<float>(c.rms_norm_eps)));
  m.emplace_back(arch + ".rope.dimension_count", u32(c.head_dim));
  m.emplace_back(arch + ".rope.freq_base", Value::f32(static_cast<float>(c.rope_theta)));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == RopeScaling::Type::Linear) {
    m.emplace_back(arch + ".rope.scaling.type", Value::string("linear"));
    m.emplace_back(arch + ".rope.scaling.factor", Value::f32(static_cast<float>(s.factor)));
  }
  if (s.type == RopeScaling::Type::Llama3) {
    m.emplace_back("tessera.rope.llama3.factor", Value::f32(static_cast<float>(s.factor)));
    m.emplace_back("tessera.rope.llama3.low_freq_factor", Value::f32(static_cast<float>(s.low_freq_factor)));
    m.emplace_back("tessera.rope.llama3.high_freq_factor", Value::f32(static_cast<float>(s.high_freq_factor)));
    m.emplace_back("tessera.rope.llama3.original_context_length", u32(*s.original_max_position_embeddings));
  }
}

ModelConfig model_config_from_gguf(const gguf::File& f) {
  const std::string arch = f.at("general.architecture").as_string();
  TS_CHECK(arch == "llama" || arch == "qwen2" || arch == "qwen3",
           "{}: general.architecture '{}' is not one Tessera runs (llama, qwen2, qwen3)", f.path(), arch);
  auto key = [&](const std::string& name) -> const Value& { return f.at(arch + "." + name); };
  auto has = [&](const std::string& name) { return f.find(arch + "." + name) != nullptr; };
  auto value = [&](const std::string& name) {
    return with_context(f.path() + ": " + arch + "." + name, [&] { return key(name).as_int(); });
  };
  const gguf::TensorInfo& embed = f.tensor("token_embd.weight");
  nlohmann::json j = {
      {"model_type", arch},
      {"vocab_size", embed.shape[0]},
      {"hidden_size", value("embedding_length")},
      {"intermediate_size", value("feed_forward_length")},
      {"num_hidden_layers", value("block_count")},
      {"num_attention_heads", value("attention.head_count")},
      {"num_key_value_heads", has("attention.head_count_kv") ? value("attention.head_count_kv")
                                                             : value("attention.head_count")},
      {"max_position_embeddings", value("context_length")},
      {"rms_norm_eps", key("attention.layer_norm_rms_epsilon").as_float()},
      {"rope_theta", has("rope.freq_base") ? key("rope.freq_base").as_float() : 10000.0},
      {"tie_word_embeddings", f.find_tensor("output.weight") == nullptr},
  };
  if (has("attention.key_length")) {
    const int64_t head_dim = value("attention.key_length");
    TS_CHECK(!has("attention.value_length") || value("attention.value_length") == head_dim,
             "{}: {}.attention.value_length differs from key_length", f.path(), arch);
    j["head_dim"] = head_dim;
  }
  if (arch == "llama") j["attention_bias"] = f.find_tensor("blk.0.attn_q.bias") != nullptr;
  const std::string scaling = has("rope.scaling.type") ? key("rope.scaling.type").as_string() : "none";
  TS_CHECK(scaling == "none" || scaling == "linear", "{}: {}.rope.scaling.type '{}' is not supported", f.path(), arch,
           scaling);
  if (scaling == "linear") j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", key("rope.scaling.factor").as_float()}};
  if (f.find_tensor("rope_freqs.weight")) {
    auto factor = [&](const char* name) { return f.at(std::string("tessera.rope.llama3.") + name).as_float(); };
    TS_CHECK(f.find("tessera.rope.llama3.factor"), "{}: rope_freqs without tessera.rope.llama3.* keys: the llama3 "
             "rope scaling it came from is unknown", f.path());
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", factor("factor")},
                         {"low_freq_factor", factor("low_freq_factor")},
                         {"high_freq_factor", factor("high_freq_factor")},
                         {"original_max_position_embeddings", f.at("tessera.rope.llama3.original_context_length").as_int()}};
  }
  if (const Value* bos = f.find("tokenizer.ggml.bos_token_id")) j["bos_token_id"] = bos->as_int();
  if (const Value* eos = f.find("tokenizer.ggml.eos_token_id")) j["eos_token_id"] = eos->as_int();
  ModelConfig config = ModelConfig::from_json(j, f.path());
  TS_CHECK(!has("rope.dimension_count") || value("rope.dimension_count") == config.head_dim,
           "{}: {}.rope.dimension_count {} is not the head dimension {} (partial rotary is not supported)", f.path(),
           arch, value("rope.dimension_count"), config.head_dim);
  return config;
}

std::string gguf_tensor_name(const std::string& hf_name) {
  for (const auto& [hf, gguf] : kModelNames)
    if (hf_name == hf) return std::string(gguf);
  std::string_view layer, module, suffix;
  if (split_layer_name(hf_name, layer, module, suffix))
    for (const auto& [hf, gguf] : kLayerNames)
      if (module == hf) return "blk." + std::string(layer) + "." + std::string(gguf) + std::string(suffix);
  fail("parameter '{}' has no GGUF tensor name", hf_name);
}

bool gguf_permutes_rows(const ModelConfig& config, const std::string& hf_name) {
  if (gguf_architecture(config) != "llama") return false;
  std::string_view layer, module, suffix;
  return split_layer_name(hf_name, layer, module, suffix) &&
         (module == "self_attn.q_proj" || module == "self_attn.k_proj");
}

namespace {

// transformers' row `part * half + i` of each head (two halves) is llama.cpp's row `2 i + part`
// (adjacent pairs).
template <typename T>
void move_rows(const T* in, T* out, int64_t rows, int64_t cols, int64_t head_dim, bool to_gguf) {
  TS_CHECK(head_dim % 2 == 0 && rows % head_dim == 0, "cannot permute {} rows in heads of {}", rows, head_dim);
  const int64_t half = head_dim / 2;
  for (int64_t head = 0; head < rows / head_dim; ++head)
    for (int64_t i = 0; i < half; ++i)
      for (int64_t part = 0; part < 2; ++part) {
        const int64_t hf_row = head * head_dim + part * half + i, gguf_row = head * head_dim + 2 * i + part;
        const T* src = in + (to_gguf ? hf_row : gguf_row) * cols;
        std::copy(src, src + cols, out + (to_gguf ? gguf_row : hf_row) * cols);
      }
}

}  // namespace

void permute_rows_for_gguf(const float* in, float* out, int64_t rows, int64_t cols, int64_t head_dim) {
  move_rows(in, out, rows, cols, head_dim, true);
}

void unpermute_rows_from_gguf(const float* in, float* out, int64_t rows, int64_t cols, int64_t head_dim) {
  move_rows(in, out, rows, cols, head_dim, false);
}

void unpermute_row_bytes_from_gguf(const uint8_t* in, uint8_t* out, int64_t rows, int64_t row_bytes, int64_t head_dim) {
  move_rows(in, out, rows, row_bytes, head_dim, false);
}

std::vector<float> gguf_rope_freq_factors(const ModelConfig& config) {
  if (config.rope_scaling.type != RopeScaling::Type::Llama3) return {};
  ModelConfig unscaled = config;
  unscaled.rope_scaling = RopeScaling{};
  const std::vector<float> base = rope_inv_freq(unscaled);
  const std::vector<float> scaled = rope_inv_freq(config);
  std::vector<float> factors(base.size());
  for (size_t i = 0; i < base.size(); ++i) factors[i] = base[i] / scaled[i];  // llama.cpp divides by these
  return factors;
}

}  // namespace tessera
