// Quantization-aware training: the `quant.qat` keys, what they mean for a model, and QatSource,
// which hands the model its parameters with fake quantization plugged in. Each selected
// projection gets a FakeQuantizer in its Linear (the forward and the input gradient see
// dequantize(quantize(W)), computed one matrix at a time as the layer uses it, and the weight
// gradient is masked there); embed_tokens and lm_head, when selected, are fake-quantized as their
// unit is handed out and masked when their gradient is complete. The weight gradient is the
// straight-through estimator's: it passes where W's code is not clamped, zero where it is
// (ops::fake_quantize_mask). With activations int8 each selected projection's input is
// fake-quantized per token (torchao's 8da).
//
// Exact by construction: fake quantization is ops::quantize followed by ops::dequantize, so a
// checkpoint exported with the same spec from the same weights (in the compute dtype)
// dequantizes to exactly what the forward used. With learnable_scales the projections use their
// learned scales (Linear::qat_scale, parameters of their own; engine/qat_scales.h starts them and
// exports with them) through ops::quantize_scaled, exact in the same way.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/quant_targets.h"
#include "model/model_config.h"
#include "model/model_config_params.h"
#include "model/param_source.h"

namespace tessera {

// The keys of a job's `quant.qat:` section (engine/config/job_config.h reads them).
struct QatOptions {
  std::string weights = "int4";     // int8 | int4 | q8_0 | q4_0
  int64_t group_size = 32;          // int4: 32, 64 or 128 (the others' groups are fixed)
  bool symmetric = true;            // int4: [-8, 7], or [0, 15] with a zero point
  std::string activations = "none";  // none | int8 (per token, dynamic, asymmetric)
  int64_t start_step = 0;           // fake quantization from this step on (0 and 1: from the first)
  std::vector<std::string> modules{"all-linear"};  // projections (q_proj ... down_proj), all-linear, embed_tokens, lm_head
  bool learnable_scales = false;    // each group's scale (and int4 zero point) a trainable parameter
};

// What they mean for one model.
struct QatSpec {
  QuantTargets targets;  // the grid and the tensors fake-quantized
  bool int8_activations = false;
  int64_t start_step = 0;
  bool learned_scales = false;  // the projections' group scales (and int4 zero points) are trained

  // The step whose forward first fake-quantizes (learned scales start from RTN's there).
  int64_t first_step() const { return start_step > 1 ? start_step : 1; }

  std::string describe() const;  // "int4 (groups of 32, symmetric) on 7 projections per layer"
};

// `options` for `config`: a module that is not a projection, embed_tokens or lm_head, or a group
// that a selected tensor's rows do not divide into, is one error naming `where`.key.
QatSpec resolve_qat(const QatOptions& options, const ModelConfig& config, const std::string& where = "quant.qat");

// Learned scales (quant.qat.learnable_scales): each selected projection's trainable fp32 tensors,
// `<projection>.qat_scale` [out, in / group] (int8: [out, 1]) and, for asymmetric int4,
// `<projection>.qat_zero` of that shape; no weight decay. Placed after the model's (and adapters')
// parameters, in their layers' units, so the store shards, steps and checkpoints them as it does
// adapters. They hold zeros until init_learned_scales sets them at spec.first_step().
std::vector<ParamSpec> qat_scale_parameters(const QatSpec& spec, const ModelConfig& config);
// The names for a projection weight's ("model.layers.0.self_attn.q_proj.weight").
std::string qat_scale_name(const std::string& weight_name);
std::string qat_zero_name(const std::string& weight_name);

// A ParamSource that passes `inner`'s parameters on with fake quantization (see above) from
// step spec.start_step on; before it, and for evaluation passes alike, the same as `inner`
// otherwise. Not thread-safe (one model pass at a time, as every ParamSource).
class QatSource : public ParamSource {
 public:
  QatSource(ParamSource& inner, const ModelConfig& config, const QatSpec& spec);

  // The step about to run: fake quantization is on from spec.start_step.
  void set_step(int64_t step) { enabled_ = step >= spec_.start_step; }
  bool enabled() const { return enabled_; }

  const ModelParams& acquire(UnitId unit) override;
  void release(UnitId unit) override;
  ModelParams& grads(UnitId unit) override;
  void grads_done(UnitId unit) override;

 private:
  struct Held {
    int acquired = 0;
    bool backward = false;   // embed / lm_head: their gradient was asked for: mask it at grads_done
    ModelParams original;    // the inner views (embed / lm_head: kept to grads_done, for the mask)
    ModelParams quantized;   // what the model sees
  };
  static int64_t key(UnitId unit);
  bool keeps_original(UnitId unit) const;

  ParamSource& inner_;
  ModelConfig config_;
  QatSpec spec_;
  std::shared_ptr<const FakeQuantizer> quantizer_;
  bool enabled_ = true;
  std::map<int64_t, Held> held_;
};

}  // namespace tessera
