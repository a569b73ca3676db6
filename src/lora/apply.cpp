#include "lora/apply.h"

#include "kernels/ops.h"

namespace tessera::lora {

void attach_adapter(ModelParams& params, const ModelConfig& config, const PeftAdapter& adapter, DType dtype,
                    Device device) {
  for (const ParamSpec& p : lora_parameters(config, adapter.spec))
    if (p.trainable) param_slot(params, p.name) = ops::cast(adapter.tensor(p.name), dtype).to(device);
  if (config.tie_word_embeddings) params.lm_head = params.embed;
  set_lora_scale(params, adapter.spec.scale());
}

void add_adapter_grads(ModelParams& grads, const ModelParams& params) {
  auto zeros = [](const Tensor& like) {
    Tensor g = Tensor::empty(like.shape(), DType::F32, like.device());
    ops::fill(g, 0.0f);
    return g;
  };
  for (size_t l = 0; l < params.layers.size(); ++l) {
    for (int p = 0; p < kProjections; ++p) {
      const Linear& source = projection(params.layers[l], Projection(p));
      if (!source.has_lora()) continue;
      Linear& g = projection(grads.layers.at(l), Projection(p));
      g.lora_a = zeros(source.lora_a);
      g.lora_b = zeros(source.lora_b);
    }
  }
}

Tensor merge_lora(const Tensor& w, const Tensor& a, const Tensor& b, float scale) {
  return merged_lora_weight(w, a, b, scale, DType::F32);
}

}  // namespace tessera::lora
