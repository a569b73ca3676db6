#include "model/model_config_params.h"

#include <cmath>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "kernels/ops.h"

namespace tessera {

std::vector<ParamSpec> model_parameters(const ModelConfig& c) {
  const int64_t hidden = c.hidden_size;
  const int64_t q_out = c.num_attention_heads * c.head_dim;
  const int64_t kv_out = c.num_key_value_heads * c.head_dim;
  std::vector<ParamSpec> out;
  auto matrix = [](std::string name, Shape shape) {
    return ParamSpec{std::move(name), std::move(shape), true, /*decays=*/true, ParamInit::normal};
  };
  auto norm = [](std::string name, int64_t size) {
    return ParamSpec{std::move(name), {size}, true, /*decays=*/false, ParamInit::ones};
  };
  out.push_back(matrix("model.embed_tokens.weight", {c.vocab_size, hidden}));
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    auto linear = [&](const std::string& name, int64_t out_features, int64_t in_features, bool bias) {
      out.push_back(matrix(p + name + ".weight", {out_features, in_features}));
      if (bias) out.push_back({p + name + ".bias", {out_features}, true, /*decays=*/false, ParamInit::zeros});
    };
    linear("self_attn.q_proj", q_out, hidden, c.qkv_bias());
    linear("self_attn.k_proj", kv_out, hidden, c.qkv_bias());
    linear("self_attn.v_proj", kv_out, hidden, c.qkv_bias());
    linear("self_attn.o_proj", hidden, q_out, c.o_proj_bias());
    if (c.qk_norm) {
      out.push_back(norm(p + "self_attn.q_norm.weight", c.head_dim));
      out.push_back(norm(p + "self_attn.k_norm.weight", c.head_dim));
    }
    linear("mlp.gate_proj", c.intermediate_size, hidden, false);
    linear("mlp.up_proj", c.intermediate_size, hidden, false);
    linear("mlp.down_proj", hidden, c.intermediate_size, false);
    out.push_back(norm(p + "input_layernorm.weight", hidden));
    out.push_back(norm(p + "post_attention_layernorm.weight", hidden));
  }
  out.push_back(norm("model.norm.weight", hidden));
  if (!c.tie_word_embeddings) out.push_back(matrix("lm_head.weight", {c.vocab_size, hidden}));
  return out;
}

void init_param(const ParamSpec& spec, const Tensor& slice, uint64_t seed, uint64_t offset, float std) {
  switch (spec.init) {
    case ParamInit::normal: return ops::fill_normal(slice, seed, offset, 0.0f, std);
    case ParamInit::ones: return ops::fill(slice, 1.0f);
    case ParamInit::zeros: return ops::fill(slice, 0.0f);
    case ParamInit::kaiming_uniform: {
      const float bound = static_cast<float>(1.0 / std::sqrt(static_cast<double>(spec.shape.at(1))));
      return ops::fill_uniform(slice, seed, offset, -bound, bound);
    }
    case ParamInit::lora_gaussian:
      return ops::fill_normal(slice, seed, offset, 0.0f, 1.0f / static_cast<float>(spec.shape.at(0)));
  }
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
