#include "engine/qat.h"

#include <fmt/format.h>

#include "core/error.h"
#include "kernels/ops.h"
#include "model/model_config_params.h"

namespace tessera {

namespace {

// A Linear's fake quantizer: the weight (and, with int8 activations, the input) as QAT sees it.
class QatQuantizer : public FakeQuantizer {
 public:
  QatQuantizer(const QuantSpec& spec, bool int8_activations) : spec_(spec), int8_activations_(int8_activations) {}

  Tensor apply(const Tensor& weight) const override {
    Tensor out = Tensor::empty(weight.shape(), weight.dtype(), weight.device());
    ops::fake_quantize(out, weight, spec_);
    return out;
  }

  Tensor input(const Tensor& x) const override {
    if (!int8_activations_) return x;
    Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
    ops::fake_quantize_rows_int8(out, x);
    return out;
  }

  void mask_gradient(const Tensor& grad, const Tensor& weight) const override {
    ops::fake_quantize_mask(grad, weight, spec_);
  }

  Tensor apply_scaled(const Tensor& weight, const Tensor& scale, const Tensor& zero) const override {
    Tensor out = Tensor::empty(weight.shape(), weight.dtype(), weight.device());
    ops::fake_quantize_scaled(out, weight, scale, zero, spec_);
    return out;
  }

  void backward_scaled(const Tensor& grad, const Tensor& grad_scale, const Tensor& grad_zero, const Tensor& weight,
                       const Tensor& scale, const Tensor& zero) const override {
    ops::fake_quantize_scaled_backward(grad, grad_scale, grad_zero, weight, scale, zero, spec_);
  }

 private:
  QuantSpec spec_;
  bool int8_activations_;
};

Tensor fake_quantized(const Tensor& w, const QuantSpec& spec) {
  Tensor out = Tensor::empty(w.shape(), w.dtype(), w.device());
  ops::fake_quantize(out, w, spec);
  return out;
}

}  // namespace

std::string QatSpec::describe() const {
  std::string what = targets.describe();
  if (learned_scales) what += ", learned scales";
  if (int8_activations) what += ", int8 activations per token";
  if (start_step > 1) what += ", from step " + std::to_string(start_step);
  return what;
}

QatSpec resolve_qat(const QatOptions& options, const ModelConfig& config, const std::string& where) {
  const QuantScheme scheme = with_context(where + ".weights", [&] { return parse_quant_scheme(options.weights); });
  TS_CHECK(scheme != QuantScheme::NF4, "{}.weights: nf4 is a storage format (lora.base_quant), not a QAT grid", where);
  QatSpec spec;
  spec.targets = resolve_quant_targets({scheme, scheme == QuantScheme::Int4 ? options.group_size : 0, options.symmetric},
                                       options.modules, config, where);
  spec.int8_activations = options.activations == "int8";
  spec.start_step = options.start_step;
  spec.learned_scales = options.learnable_scales;
  TS_CHECK(!spec.learned_scales || (!spec.targets.embed && !spec.targets.lm_head),
           "{}.learnable_scales: learns the scales of projections only (leave embed_tokens and lm_head out of "
           "{}.modules, or use fixed scales)", where, where);
  return spec;
}

namespace {

std::string with_suffix(const std::string& weight_name, const char* suffix) {
  TS_CHECK(weight_name.ends_with(".weight"), "QAT scales: '{}' is not a projection weight", weight_name);
  return weight_name.substr(0, weight_name.size() - 6) + suffix;
}

}  // namespace

std::string qat_scale_name(const std::string& weight_name) { return with_suffix(weight_name, "qat_scale"); }
std::string qat_zero_name(const std::string& weight_name) { return with_suffix(weight_name, "qat_zero"); }

std::vector<ParamSpec> qat_scale_parameters(const QatSpec& spec, const ModelConfig& config) {
  std::vector<ParamSpec> params;
  if (!spec.learned_scales) return params;
  const bool zero = spec.targets.weights.scheme == QuantScheme::Int4 && !spec.targets.weights.symmetric;
  for (const ParamSpec& w : model_parameters(config)) {
    if (!w.name.starts_with("model.layers.") || !spec.targets.selects(w.name)) continue;  // projections only
    const Shape shape = ops::quant_scale_shape(spec.targets.weights, w.shape);
    params.push_back({qat_scale_name(w.name), shape, true, /*decays=*/false, ParamInit::zeros});
    if (zero) params.push_back({qat_zero_name(w.name), shape, true, /*decays=*/false, ParamInit::zeros});
  }
  return params;
}

QatSource::QatSource(ParamSource& inner, const ModelConfig& config, const QatSpec& spec)
    : inner_(inner), config_(config), spec_(spec),
      quantizer_(std::make_shared<QatQuantizer>(spec.targets.weights, spec.int8_activations)) {}

int64_t QatSource::key(UnitId unit) {
  return unit.kind == UnitId::Kind::Layer ? unit.layer : unit.kind == UnitId::Kind::Embed ? -1 : -2;
}

bool QatSource::keeps_original(UnitId unit) const {
  return (unit.kind == UnitId::Kind::Embed && spec_.targets.embed) || (unit.kind == UnitId::Kind::Head && spec_.targets.lm_head);
}

const ModelParams& QatSource::acquire(UnitId unit) {
  const ModelParams& params = inner_.acquire(unit);
  if (!enabled_) return params;
  Held& h = held_[key(unit)];
  if (h.acquired++ > 0) return h.quantized;
  h.backward = false;
  h.original = params;
  h.quantized = params;
  switch (unit.kind) {
    case UnitId::Kind::Embed:
      if (spec_.targets.embed) h.quantized.embed = fake_quantized(params.embed, spec_.targets.weights);
      break;
    case UnitId::Kind::Head:
      if (spec_.targets.lm_head && !config_.tie_word_embeddings)
        h.quantized.lm_head = fake_quantized(params.lm_head, spec_.targets.weights);
      break;
    case UnitId::Kind::Layer:  // each Linear masks its own weight gradient
      for (int p = 0; p < kProjections; ++p)
        if (spec_.targets.projections[p]) projection(h.quantized.layers[unit.layer], Projection(p)).fake_quant = quantizer_;
      break;
  }
  return h.quantized;
}

void QatSource::release(UnitId unit) {
  auto it = held_.find(key(unit));
  if (it != held_.end() && --it->second.acquired == 0) {
    it->second.quantized = ModelParams();
    // embed_tokens' and lm_head's views stay for their mask: their gradient is asked for (and
    // completed) after the unit is released. The rest go now.
    if (!keeps_original(unit)) held_.erase(it);
  }
  inner_.release(unit);
}

ModelParams& QatSource::grads(UnitId unit) {
  auto it = held_.find(key(unit));
  if (it != held_.end()) it->second.backward = true;
  return inner_.grads(unit);
}

void QatSource::grads_done(UnitId unit) {
  auto it = held_.find(key(unit));
  if (it != held_.end() && it->second.backward) {
    ModelParams& g = inner_.grads(unit);
    const Tensor& grad = unit.kind == UnitId::Kind::Embed ? g.embed : g.lm_head;
    const Tensor& weight = unit.kind == UnitId::Kind::Embed ? it->second.original.embed : it->second.original.lm_head;
    if (grad.defined() && !(unit.kind == UnitId::Kind::Head && config_.tie_word_embeddings))
      ops::fake_quantize_mask(grad, weight, spec_.targets.weights);
    if (it->second.acquired == 0) held_.erase(it);
  }
  inner_.grads_done(unit);
}

}  // namespace tessera
