#include "engine/quant_targets.h"

#include <algorithm>

#include "core/error.h"
#include "lora/adapter.h"
#include "model/model_config_params.h"

namespace tessera {

namespace {

const auto& kProjectionNames = lora::kProjectionNames;  // PEFT's module names, shared with lora

}  // namespace

bool QuantTargets::selects(const std::string& name) const {
  if (name == "model.embed_tokens.weight") return embed;
  if (name == "lm_head.weight") return lm_head;
  if (!name.starts_with("model.layers.")) return false;
  for (int i = 0; i < kProjections; ++i)
    if (projections[i] && name.ends_with(std::string(kProjectionNames[i]) + ".weight")) return true;
  return false;
}

std::vector<std::string> QuantTargets::modules() const {
  std::vector<std::string> names;
  for (int i = 0; i < kProjections; ++i)
    if (projections[i]) names.emplace_back(kProjectionNames[i]);
  if (embed) names.emplace_back("embed_tokens");
  if (lm_head) names.emplace_back("lm_head");
  return names;
}

std::string QuantTargets::describe() const {
  std::string what(quant_scheme_name(weights.scheme));
  if (weights.scheme == QuantScheme::Int4)
    what += " (groups of " + std::to_string(weights.group_size) + (weights.symmetric ? ", symmetric)" : ", asymmetric)");
  const int64_t count = std::count(projections.begin(), projections.end(), true);
  what += " on " + std::to_string(count) + " projection" + (count == 1 ? "" : "s") + " per layer";
  if (embed) what += ", embed_tokens";
  if (lm_head) what += ", lm_head";
  return what;
}

bool known_quant_module(const std::string& name) {
  return name == lora::kAllLinear || name == "embed_tokens" || name == "lm_head" ||
         std::find(std::begin(kProjectionNames), std::end(kProjectionNames), name) != std::end(kProjectionNames);
}

QuantTargets resolve_quant_targets(const QuantSpec& weights, const std::vector<std::string>& modules,
                                   const ModelConfig& config, const std::string& where) {
  QuantTargets t;
  t.weights = weights;
  for (const std::string& m : modules) {
    TS_CHECK(known_quant_module(m), "{}.modules: unknown module '{}' (expected {})", where, m, kQuantModuleChoices);
    if (m == lora::kAllLinear) {
      t.projections.fill(true);
    } else if (m == "embed_tokens") {
      t.embed = true;
    } else if (m == "lm_head") {
      t.lm_head = true;
    } else {
      t.projections[std::find(std::begin(kProjectionNames), std::end(kProjectionNames), m) -
                    std::begin(kProjectionNames)] = true;
    }
  }
  if (config.tie_word_embeddings && (t.embed || t.lm_head)) t.embed = t.lm_head = true;
  // Every selected tensor must split into the grid's groups.
  for (const ParamSpec& p : model_parameters(config))
    if (t.selects(p.name)) with_context(where + ": " + p.name, [&] { resolve_quant_spec(t.weights, p.shape); });
  return t;
}

}  // namespace tessera
