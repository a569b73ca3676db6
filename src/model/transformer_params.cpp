#include "model/transformer_params.h"

#include "core/error.h"
#include "kernels/ops.h"
#include "model/model_config_params.h"

namespace tessera {

namespace {

Tensor* layer_slot(LayerParams& layer, const std::string& local) {
  struct Entry { const char* name; Tensor LayerParams::*slot; };
  static constexpr Entry entries[] = {
      {"input_layernorm.weight", &LayerParams::input_norm},
      {"post_attention_layernorm.weight", &LayerParams::post_norm},
      {"self_attn.q_proj.weight", &LayerParams::q_proj},
      {"self_attn.k_proj.weight", &LayerParams::k_proj},
      {"self_attn.v_proj.weight", &LayerParams::v_proj},
      {"self_attn.o_proj.weight", &LayerParams::o_proj},
      {"self_attn.q_proj.bias", &LayerParams::q_bias},
      {"self_attn.k_proj.bias", &LayerParams::k_bias},
      {"self_attn.v_proj.bias", &LayerParams::v_bias},
      {"self_attn.o_proj.bias", &LayerParams::o_bias},
      {"self_attn.q_norm.weight", &LayerParams::q_norm},
      {"self_attn.k_norm.weight", &LayerParams::k_norm},
      {"mlp.gate_proj.weight", &LayerParams::gate_proj},
      {"mlp.up_proj.weight", &LayerParams::up_proj},
      {"mlp.down_proj.weight", &LayerParams::down_proj},
  };
  for (const Entry& e : entries)
    if (local == e.name) return &(layer.*(e.slot));
  return nullptr;
}

}  // namespace

Tensor& param_slot(ModelParams& params, const std::string& name) {
  if (name == "model.embed_tokens.weight") return params.embed;
  if (name == "model.norm.weight") return params.final_norm;
  if (name == "lm_head.weight") return params.lm_head;
  const std::string prefix = "model.layers.";
  TS_CHECK(name.starts_with(prefix), "unexpected parameter {}", name);
  const size_t dot = name.find('.', prefix.size());
  TS_CHECK(dot != std::string::npos, "unexpected parameter {}", name);
  const int64_t index = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
  TS_CHECK(index >= 0 && index < static_cast<int64_t>(params.layers.size()), "unexpected parameter {}", name);
  Tensor* slot = layer_slot(params.layers[index], name.substr(dot + 1));
  TS_CHECK(slot, "unexpected parameter {}", name);
  return *slot;
}

void for_each_param(const ModelConfig& config, ModelParams& params,
                    const std::function<void(const std::string&, Tensor&)>& fn) {
  params.layers.resize(config.num_hidden_layers);
  for (const ParamSpec& spec : model_parameters(config)) fn(spec.name, param_slot(params, spec.name));
  if (config.tie_word_embeddings) params.lm_head = params.embed;
}

ModelParams make_params(const ModelConfig& config, DType dtype, Device device, bool zero) {
  ModelParams params;
  std::vector<ParamSpec> specs = model_parameters(config);
  size_t i = 0;
  for_each_param(config, params, [&](const std::string&, Tensor& slot) {
    slot = Tensor::empty(specs.at(i++).shape, dtype, device);
    if (zero) ops::fill(slot, 0.0f);
  });
  if (config.tie_word_embeddings) params.lm_head = params.embed;
  return params;
}

}  // namespace tessera
