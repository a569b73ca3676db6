// The tensors of a decoder-only transformer, held as views: the model never owns or locates its
// weights (a ParamStore, a checkpoint loader or a test hands them in). The same structs hold the
// fp32 gradients. Undefined tensors are parameters the architecture does not have (biases,
// Qwen3's q/k norms, adapters) or, among gradients, tensors that are frozen; for tied embeddings
// lm_head and embed are the same tensor. Each projection is a Linear (model/linear.h).
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "model/linear.h"
#include "model/model_config.h"

namespace tessera {

struct LayerParams {
  Tensor input_norm, post_norm;
  Linear q_proj, k_proj, v_proj, o_proj;
  Tensor q_norm, k_norm;
  Linear gate_proj, up_proj, down_proj;
};

// The projections of a layer, for what each keeps of its own (LoRA's x A^T, dropout streams).
enum Projection { kQ, kK, kV, kO, kGate, kUp, kDown, kProjections };

// A projection's module path inside a layer, as in HF names: "self_attn.q_proj", ... "mlp.down_proj".
std::string_view projection_path(Projection p);
Linear& projection(LayerParams& layer, Projection p);
const Linear& projection(const LayerParams& layer, Projection p);

struct ModelParams {
  Tensor embed, final_norm, lm_head;
  std::vector<LayerParams> layers;
};

// Calls fn(HF name, tensor slot) for every parameter `config` has, in model_parameters() order.
// For tied embeddings lm_head is visited under no name (it aliases model.embed_tokens.weight).
void for_each_param(const ModelConfig& config, ModelParams& params,
                    const std::function<void(const std::string& name, Tensor& slot)>& fn);

// The slot of one parameter by its HF name (params.layers must already have one entry per layer).
Tensor& param_slot(ModelParams& params, const std::string& name);

// The projection whose base weight is the parameter `name` ("model.layers.0.self_attn.q_proj.weight"),
// or nullptr when that parameter is no projection's weight.
Linear* weight_owner(ModelParams& params, const std::string& name);

// Sets the scale of every adapted projection (those with LoRA tensors).
void set_lora_scale(ModelParams& params, float scale);

// Tensors for every parameter, shaped as in HF, of `dtype` on `device`, zero-filled (gradients)
// or left uninitialised; lm_head aliases embed when tied.
ModelParams make_params(const ModelConfig& config, DType dtype, Device device, bool zero);

}  // namespace tessera
