#include "engine/qat_scales.h"

#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/log.h"
#include "engine/config/job_config.h"
#include "kernels/ops.h"

namespace tessera {

namespace fs = std::filesystem;

namespace {

bool has_zero(const QuantSpec& spec) { return spec.scheme == QuantScheme::Int4 && !spec.symmetric; }

}  // namespace

void init_learned_scales(ZeroStore& store, const ModelConfig& config, const QatSpec& spec) {
  std::map<std::string, Tensor> values;  // whole, on the working copy's device
  for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
    const UnitId unit = UnitId::layer_unit(l);
    const ModelParams& params = store.acquire(unit);
    for (int p = 0; p < kProjections; ++p) {
      if (!spec.targets.projections[p]) continue;
      const Linear& linear = projection(params.layers[l], Projection(p));
      const Tensor w = linear.has_lora() ? merged_lora_weight(linear.weight, linear.lora_a, linear.lora_b,
                                                               linear.lora_scale, linear.weight.dtype())
                                         : linear.weight;
      const std::string name = fmt::format("model.layers.{}.{}.weight", l, projection_path(Projection(p)));
      const Shape shape = ops::quant_scale_shape(spec.targets.weights, w.shape());
      Tensor scale = Tensor::empty(shape, DType::F32, w.device());
      Tensor zero = has_zero(spec.targets.weights) ? Tensor::empty(shape, DType::F32, w.device()) : Tensor();
      ops::quant_group_scales(scale, zero, w, spec.targets.weights);
      values[qat_scale_name(name)] = scale;
      if (zero.defined()) values[qat_zero_name(name)] = zero;
    }
    store.release(unit);
  }
  store.write_state([&](const ZeroStore::StateSlice& s) {
    const auto it = values.find(s.param->name);
    if (it == values.end()) return;
    copy_bytes(s.master, it->second.flat_slice(s.begin, s.end - s.begin));
    ops::fill(s.m, 0.0f);
    ops::fill(s.v, 0.0f);
  });
  store.refresh_working_copy();
  spdlog::info("QAT: {} learned scale tensors start from round-to-nearest's", values.size());
}

DType qat_compute_dtype(const JobConfig& job) {
  return job.train.dtype == "bf16" && job.train.device != "cpu" ? DType::BF16 : DType::F32;
}

std::optional<LearnedScales> learned_scales(const ExportSource& source) {
  const fs::path config = fs::path(source.folder()) / "config.yaml";  // a checkpoint's job
  if (!fs::exists(config)) return std::nullopt;
  const JobConfig job = load_job_config(config.string());
  if (!job.quant.qat || !job.quant.qat->learnable_scales) return std::nullopt;
  return LearnedScales{resolve_qat(*job.quant.qat, source.config()).targets, qat_compute_dtype(job)};
}

PackedTensor quantize_learned(const ExportSource& source, const ParamSpec& param, const Tensor& w,
                              const QuantSpec& spec, DType compute, const std::function<Tensor(const Tensor&)>& rows) {
  const QuantSpec resolved = resolve_quant_spec(spec, param.shape);
  const Shape shape = ops::quant_scale_shape(resolved, param.shape);
  auto prepared = [&](const Tensor& t) { return ops::cast(rows ? rows(t) : t, compute); };
  auto trained = [&](const std::string& name) {
    return prepared(source.read_trained(ParamSpec{.name = name, .shape = shape}));
  };
  const Tensor zero = has_zero(resolved) ? trained(qat_zero_name(param.name)) : Tensor();
  PackedTensor packed = PackedTensor::empty(resolved, param.shape);
  ops::quantize_scaled(packed, prepared(w), trained(qat_scale_name(param.name)), zero);
  return packed;
}

}  // namespace tessera
