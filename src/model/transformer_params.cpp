#include "model/transformer_params.h"

#include "core/error.h"
#include "kernels/ops.h"
#include "model/model_config_params.h"

namespace tessera {

namespace {

constexpr Linear LayerParams::*kProjectionMembers[kProjections] = {
    &LayerParams::q_proj, &LayerParams::k_proj, &LayerParams::v_proj, &LayerParams::o_proj,
    &LayerParams::gate_proj, &LayerParams::up_proj, &LayerParams::down_proj};
constexpr std::string_view kProjectionPaths[kProjections] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"};

Tensor* layer_slot(LayerParams& layer, const std::string& local) {
  if (local == "input_layernorm.weight") return &layer.input_norm;
  if (local == "post_attention_layernorm.weight") return &layer.post_norm;
  if (local == "self_attn.q_norm.weight") return &layer.q_norm;
  if (local == "self_attn.k_norm.weight") return &layer.k_norm;
  struct Part { const char* name; Tensor Linear::*tensor; };
  static constexpr Part parts[] = {
      {"weight", &Linear::weight}, {"bias", &Linear::bias},
      {"lora_A.weight", &Linear::lora_a}, {"lora_B.weight", &Linear::lora_b},
      {"qat_scale", &Linear::qat_scale}, {"qat_zero", &Linear::qat_zero},
  };
  for (int p = 0; p < kProjections; ++p) {
    const std::string_view path = kProjectionPaths[p];
    if (!local.starts_with(path) || local.size() <= path.size() || local[path.size()] != '.') continue;
    const std::string part = local.substr(path.size() + 1);
    for (const Part& t : parts)
      if (part == t.name) return &((layer.*kProjectionMembers[p]).*t.tensor);
  }
  return nullptr;
}

}  // namespace

std::string_view projection_path(Projection p) { return kProjectionPaths[p]; }
Linear& projection(LayerParams& layer, Projection p) { return layer.*kProjectionMembers[p]; }
const Linear& projection(const LayerParams& layer, Projection p) { return layer.*kProjectionMembers[p]; }

void set_lora_scale(ModelParams& params, float scale) {
  for (LayerParams& layer : params.layers)
    for (int p = 0; p < kProjections; ++p)
      if (projection(layer, Projection(p)).has_lora()) projection(layer, Projection(p)).lora_scale = scale;
}

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

Linear* weight_owner(ModelParams& params, const std::string& name) {
  const Tensor* slot = &param_slot(params, name);
  for (LayerParams& layer : params.layers)
    for (int p = 0; p < kProjections; ++p)
      if (&projection(layer, Projection(p)).weight == slot) return &projection(layer, Projection(p));
  return nullptr;
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
