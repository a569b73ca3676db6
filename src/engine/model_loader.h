// Loading a Hugging Face model folder into parameters on a device.
#pragma once

#include <memory>
#include <string>

#include "engine/config/job_config.h"
#include "kernels/quant_format.h"
#include "model/model_config.h"
#include "model/transformer_params.h"

namespace tessera {

struct LoadedModel {
  ModelConfig config;
  ModelParams params;
  // Loaded with QuantizedWeights::packed from a checkpoint that stores lm_head quantized (the
  // embedding when tied): its packed parts, for the logits' product (InferenceModel::use_packed_lm_head);
  // params.lm_head is then left empty (untied: no dense copy).
  std::shared_ptr<const PackedTensor> packed_lm_head;
};

// What a loader does with a projection stored quantized (a quantized checkpoint's selected
// matrices, a GGUF file's q8_0 / q4_0 ones): dequantize it into a dense weight of the compute
// dtype (training, export, forward), or keep it packed as the Linear's base (inference: the model
// takes about bits/16 of its bf16 memory, and each product runs through ops::gemm_packed, which
// on the CPU multiplies by exactly the dequantized weights). The embedding stays dense in the
// compute dtype (it is gathered by row); a quantized lm_head stays packed (LoadedModel::packed_lm_head).
enum class QuantizedWeights { dequantize, packed };

// Reads config.json and the safetensors weights (validated: every tensor present, right shapes),
// converted to `dtype` on `device`. Errors name the folder and the tensor.
LoadedModel load_hf_model(const std::string& folder, DType dtype, Device device,
                          QuantizedWeights quantized = QuantizedWeights::dequantize);

// `linear`'s base becomes `packed` (moved to `device`), multiplied through ops::gemm_packed.
void set_packed_base(Linear& linear, const PackedTensor& packed, Device device);

// The architecture a job names: model.path's config.json, or the model.init mapping.
ModelConfig job_model_config(const ModelSection& model);

}  // namespace tessera
