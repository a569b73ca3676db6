#include "model/model_config_params.h"

#include <filesystem>
#include <map>

#include "core/error.h"

namespace tessera {

std::vector<ParamSpec> model_parameters(const ModelConfig& c) {
  const int64_t hidden = c.hidden_size;
  const int64_t q_out = c.num_attention_heads * c.head_dim;
  const int64_t kv_out = c.num_key_value_heads * c.head_dim;
  std::vector<ParamSpec> out;
  out.push_back({"model.embed_tokens.weight", {c.vocab_size, hidden}});
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto linear = [&](const std::string& name, int64_t out_features, int64_t in_features, bool bias) {
      out.push_back({p + name + ".weight", {out_features, in_features}});
      if (bias) out.push_back({p + name + ".bias", {out_features}});
    };
    linear("self_attn.q_proj", q_out, hidden, c.qkv_bias());
    linear("self_attn.k_proj", kv_out, hidden, c.qkv_bias());
    linear("self_attn.v_proj", kv_out, hidden, c.qkv_bias());
    linear("self_attn.o_proj", hidden, q_out, c.o_proj_bias());
    if (c.qk_norm) {
      out.push_back({p + "self_attn.q_norm.weight", {c.head_dim}});
      out.push_back({p + "self_attn.k_norm.weight", {c.head_dim}});
    }
    linear("mlp.gate_proj", c.intermediate_size, hidden, false);
    linear("mlp.up_proj", c.intermediate_size, hidden, false);
    linear("mlp.down_proj", hidden, c.intermediate_size, false);
    out.push_back({p + "input_layernorm.weight", {hidden}});
    out.push_back({p + "post_attention_layernorm.weight", {hidden}});
  }
  out.push_back({"model.norm.weight", {hidden}});
  if (!c.tie_word_embeddings) out.push_back({"lm_head.weight", {c.vocab_size, hidden}});
  return out;
}

namespace {

bool is_rotary_buffer(const std::string& name) {
  const std::string suffix = "rotary_emb.inv_freq";
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void validate_checkpoint(const ModelConfig& config, const SafetensorsModel& checkpoint) {
  const std::string where =
      checkpoint.shards().empty() ? "checkpoint"
                                  : std::filesystem::path(checkpoint.shards()[0].path()).parent_path().string();
  std::map<std::string, Shape> expected;
  for (auto& p : model_parameters(config)) expected.emplace(p.name, p.shape);
  if (config.tie_word_embeddings && checkpoint.contains("lm_head.weight"))
    expected.emplace("lm_head.weight", Shape{config.vocab_size, config.hidden_size});

  for (const auto& name : checkpoint.names()) {
    if (is_rotary_buffer(name)) continue;
    auto it = expected.find(name);
    TS_CHECK(it != expected.end(), "{}: unexpected tensor '{}' for this {} config", where, name, config.model_type);
    const TensorInfo& info = checkpoint.info(name);
    TS_CHECK(info.shape == it->second, "{}: tensor '{}' has shape {}, the config implies {}", where, name,
             shape_str(info.shape), shape_str(it->second));
    TS_CHECK(is_floating(info.dtype), "{}: tensor '{}' has dtype {}, expected a floating type", where, name,
             dtype_name(info.dtype));
  }
  for (const auto& p : model_parameters(config))
    TS_CHECK(checkpoint.contains(p.name), "{}: missing tensor '{}' {}", where, p.name, shape_str(p.shape));
}

}  // namespace tessera
