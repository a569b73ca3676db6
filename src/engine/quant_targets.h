// Which tensors of a model a quantization applies to, and on what grid. Shared by
// quantization-aware training (quant.qat) and the quantized checkpoint (tessera quantize,
// tessera export --format quantized), which therefore select the same tensors from the same names.
#pragma once

#include <array>
#include <string>
#include <vector>

#include "kernels/quant_format.h"
#include "model/model_config.h"
#include "model/transformer_params.h"

namespace tessera {

struct QuantTargets {
  QuantSpec weights;  // group_size as given (0: the scheme's); resolved per tensor
  std::array<bool, kProjections> projections{};
  bool embed = false, lm_head = false;  // tied embeddings: one tensor, selected when either is named

  // Whether the parameter of this HF name is quantized.
  bool selects(const std::string& name) const;
  // The module names that select these tensors (what resolve_quant_targets takes).
  std::vector<std::string> modules() const;
  std::string describe() const;  // "int4 (groups of 32, symmetric) on 7 projections per layer"
};

// Whether `name` may be listed as a module, and the choices, for errors.
bool known_quant_module(const std::string& name);
inline constexpr const char* kQuantModuleChoices =
    "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, all-linear, embed_tokens or lm_head";

// `modules` of `config` on the grid `weights`: an unknown module, or a selected tensor whose rows
// do not split into the grid's groups, is one error naming `where` (e.g. "quant.qat").
QuantTargets resolve_quant_targets(const QuantSpec& weights, const std::vector<std::string>& modules,
                                   const ModelConfig& config, const std::string& where);

}  // namespace tessera
