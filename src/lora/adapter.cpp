#include "lora/adapter.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace tessera::lora {

namespace {

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

// [out, in] of projection p in `config`.
std::pair<int64_t, int64_t> projection_shape(const ModelConfig& c, Projection p) {
  const int64_t q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  switch (p) {
    case kQ: return {q, c.hidden_size};
    case kK:
    case kV: return {kv, c.hidden_size};
    case kO: return {c.hidden_size, q};
    case kGate:
    case kUp: return {c.intermediate_size, c.hidden_size};
    default: return {c.hidden_size, c.intermediate_size};
  }
}

}  // namespace

float AdapterSpec::scale() const {
  return static_cast<float>(use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r));
}

std::vector<std::string> AdapterSpec::target_names() const {
  std::vector<std::string> out;
  for (int p = 0; p < kProjections; ++p)
    if (targets[p]) out.push_back(kProjectionNames[p]);
  return out;
}

std::vector<std::string> AdapterSpec::saved_modules() const {
  std::vector<std::string> out;
  if (train_embed) out.push_back("embed_tokens");
  if (train_lm_head) out.push_back("lm_head");
  return out;
}

AdapterSpec resolve(const LoraOptions& o, const ModelConfig& config, const std::string& where) {
  AdapterSpec a;
  a.r = o.r;
  a.alpha = o.alpha;
  a.dropout = o.dropout;
  a.use_rslora = o.use_rslora;
  a.a_init = o.init == "gaussian" ? ParamInit::lora_gaussian : ParamInit::kaiming_uniform;
  for (const std::string& name : o.target_modules) {
    if (name == kAllLinear) {
      a.targets.fill(true);
      continue;
    }
    const auto* it = std::find(std::begin(kProjectionNames), std::end(kProjectionNames), name);
    TS_CHECK(it != std::end(kProjectionNames), "{}.target_modules: unknown module '{}' (expected all-linear or some of "
             "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)", where, name);
    a.targets[it - std::begin(kProjectionNames)] = true;
  }
  a.layers.assign(static_cast<size_t>(config.num_hidden_layers), o.layers.empty());
  for (int64_t l : o.layers) {
    TS_CHECK(l >= 0 && l < config.num_hidden_layers, "{}.layers: layer {} is not one of the model's {} (0 to {})", where,
             l, config.num_hidden_layers, config.num_hidden_layers - 1);
    a.layers[l] = true;
  }
  TS_CHECK(o.base_quant == "none" || o.base_quant == "nf4" || o.base_quant == "int8",
           "{}.base_quant: unknown '{}' (expected none, nf4 or int8)", where, o.base_quant);
  if (o.base_quant != "none") a.base_quant = parse_quant_scheme(o.base_quant);
  TS_CHECK(o.packed_matmul == "dequantize" || o.packed_matmul == "gemm_packed",
           "{}.packed_matmul: unknown '{}' (expected dequantize or gemm_packed)", where, o.packed_matmul);
  a.packed_matmul = o.packed_matmul == "gemm_packed" ? PackedMatmul::gemm_packed : PackedMatmul::dequantize;
  TS_CHECK(o.frozen_embedding == "device" || o.frozen_embedding == "host",
           "{}.frozen_embedding: unknown '{}' (expected device or host)", where, o.frozen_embedding);
  a.embed_on_host = o.frozen_embedding == "host";
  for (const std::string& m : o.modules_to_save) {
    if (m == "embed_tokens") {
      a.train_embed = true;
    } else if (m == "lm_head") {
      TS_CHECK(!config.tie_word_embeddings, "{}.modules_to_save: this model ties lm_head to embed_tokens; name "
               "embed_tokens to train them", where);
      a.train_lm_head = true;
    } else {
      fail("{}.modules_to_save: unknown module '{}' (expected embed_tokens or lm_head)", where, m);
    }
  }
  TS_CHECK(!a.embed_on_host || !config.tie_word_embeddings,
           "{}.frozen_embedding: host needs an embed_tokens of its own, but this model ties it to lm_head (which the "
           "loss reads whole on the device); use device", where);
  TS_CHECK(!a.embed_on_host || !a.train_embed,
           "{}.frozen_embedding: host is for a frozen embed_tokens, but modules_to_save trains it; use device", where);
  return a;
}

std::string lora_a_name(int64_t layer, Projection p) {
  return layer_prefix(layer) + std::string(projection_path(p)) + ".lora_A.weight";
}
std::string lora_b_name(int64_t layer, Projection p) {
  return layer_prefix(layer) + std::string(projection_path(p)) + ".lora_B.weight";
}

std::vector<ParamSpec> lora_parameters(const ModelConfig& config, const AdapterSpec& a) {
  std::vector<ParamSpec> params = model_parameters(config);
  for (ParamSpec& p : params)
    p.trainable = (a.train_embed && p.name == "model.embed_tokens.weight") || (a.train_lm_head && p.name == "lm_head.weight");
  if (a.base_quant) {
    ModelParams slots;
    slots.layers.resize(config.num_hidden_layers);
    for (ParamSpec& p : params)
      if (weight_owner(slots, p.name)) p.quant = QuantSpec{.scheme = *a.base_quant};
  }
  // Per layer the A's, then the B's: the A's of projections that share an input (q, k, v; gate,
  // up) lie side by side in the unit's buffer.
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    for (bool b : {false, true}) {
      for (int p = 0; p < kProjections; ++p) {
        if (!a.adapts(l, Projection(p))) continue;
        const auto [out, in] = projection_shape(config, Projection(p));
        if (b)
          params.push_back({lora_b_name(l, Projection(p)), {out, a.r}, true, /*decays=*/true, ParamInit::zeros});
        else
          params.push_back({lora_a_name(l, Projection(p)), {a.r, in}, true, /*decays=*/true, a.a_init});
      }
    }
  }
  return params;
}

}  // namespace tessera::lora
