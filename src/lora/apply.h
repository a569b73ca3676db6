// A LoRA adapter on whole parameters in memory (`tessera forward --adapter`, exports, tests), and
// merging one into its base weight.
#pragma once

#include "lora/peft.h"
#include "model/transformer_params.h"

namespace tessera::lora {

// Gives every projection `adapter` adapts its A and B (converted to `dtype` on `device`) and the
// scale, and puts the adapter's modules_to_save in place of the model's tensors.
void attach_adapter(ModelParams& params, const ModelConfig& config, const PeftAdapter& adapter, DType dtype,
                    Device device);

// Zeroed f32 gradient buffers for every adapter tensor `params` holds (beside the ones `grads` has).
void add_adapter_grads(ModelParams& grads, const ModelParams& params);

// The merged weight W + scale * B A, in f32: w [out, in], a [r, in], b [out, r], any floating
// dtype, on one device.
Tensor merge_lora(const Tensor& w, const Tensor& a, const Tensor& b, float scale);

}  // namespace tessera::lora
