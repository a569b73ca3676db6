#include "engine/sequential_gptq.h"

#include <algorithm>

#include "core/error.h"
#include "core/log.h"
#include "engine/model_folder.h"
#include "io/data/data_loader.h"
#include "kernels/ops.h"
#include "quant/packed.h"

namespace tessera {

namespace {

// The projections that read each input of a layer, in the order layer_forward computes the inputs.
struct InputGroup {
  Tensor LayerActivations::* input;
  std::vector<Projection> projections;
};

const std::vector<InputGroup>& input_groups() {
  static const std::vector<InputGroup> groups{{&LayerActivations::h, {kQ, kK, kV}},
                                              {&LayerActivations::attn, {kO}},
                                              {&LayerActivations::h_post, {kGate, kUp}},
                                              {&LayerActivations::act, {kDown}}};
  return groups;
}

std::string layer_prefix(int64_t layer) { return "model.layers." + std::to_string(layer) + "."; }

// -1 when the parameter belongs to no layer.
int64_t layer_of(const std::string& name) {
  if (!name.starts_with("model.layers.")) return -1;
  return std::stoll(name.substr(13, name.find('.', 13) - 13));
}

}  // namespace

SequentialGptq::SequentialGptq(const ExportSource& source, const QuantTargets& targets,
                               const GptqCalibration& calibration, Device device, DType dtype)
    : source_(source), targets_(targets), calibration_(calibration), device_(device), dtype_(dtype),
      rope_(RopeTable::make(source.config(), device)) {
  const ModelConfig& config = source.config();
  TS_CHECK(calibration.samples > 0, "--calib-samples {}: must be positive", calibration.samples);
  TS_CHECK(calibration.seq_len > 0, "--calib-seq-len {}: must be positive", calibration.seq_len);
  TS_CHECK(!source.tokenizer().empty(), "--calib {}: {} has no tokenizer to read it with", calibration.file,
           source.folder());
  const int64_t seq_len = std::min(calibration.seq_len, config.max_position_embeddings);
  if (seq_len < calibration.seq_len)
    spdlog::info("gptq: calibration sequences of {} tokens (the model's max_position_embeddings)", seq_len);
  data::DataOptions options;
  options.eval = calibration.file;
  options.seq_len = seq_len;
  const tok::Tokenizer tokenizer = open_tokenizer(source.tokenizer());
  const data::DataLoader data = with_context("--calib " + calibration.file, [&] {
    return data::DataLoader(options, tokenizer, 0, data::Split::eval);
  });
  const int64_t count = std::min(calibration.samples, data.num_sequences());
  if (count < calibration.samples)
    spdlog::warn("gptq: {} holds {} sequences of {} tokens, fewer than --calib-samples {}: calibrating on all of them",
                 calibration.file, data.num_sequences(), seq_len, calibration.samples);
  const ParamSpec& embed_spec = source.params().front();
  TS_CHECK(embed_spec.name == "model.embed_tokens.weight", "gptq: {} does not start with the embedding",
           source.folder());
  const Tensor embed = device_tensor(embed_spec);
  for (int64_t i = 0; i < count; ++i) {
    batches_.push_back(make_token_batch(data.sequences(i, i + 1), device));
    hidden_.push_back(Tensor::empty({batches_.back().tokens(), config.hidden_size}, dtype, device));
    ops::embedding_forward(hidden_.back(), embed, batches_.back().ids);
    tokens_ += batches_.back().tokens();
  }
  spdlog::info("gptq: calibrating on {} sequences of {} tokens from {} ({}, block {}, damp {}{})", count, seq_len,
               calibration.file, targets.describe(), calibration.gptq.block_size, calibration.gptq.damp,
               calibration.gptq.act_order ? ", act-order" : "");
}

SequentialGptq::~SequentialGptq() = default;

Tensor SequentialGptq::device_tensor(const ParamSpec& param) const {
  return ops::cast(source_.read(param), dtype_).to(device_);
}

PackedTensor SequentialGptq::quantize(const ParamSpec& param, const Tensor& weight) {
  const QuantSpec spec = resolve_quant_spec(targets_.weights, param.shape);
  const int64_t layer = layer_of(param.name);
  if (layer >= 0) {
    TS_CHECK(layer >= next_layer_ - 1, "gptq: {} asked for after layer {} was quantized", param.name, next_layer_ - 1);
    while (next_layer_ <= layer) run_layer(next_layer_);
    auto it = ready_.find(param.name);
    TS_CHECK(it != ready_.end(), "gptq: {} is not a projection of layer {}", param.name, layer);
    PackedTensor packed = std::move(it->second);
    ready_.erase(it);
    return packed;
  }
  if (param.name == "lm_head.weight" && !source_.config().tie_word_embeddings) return quantize_lm_head(weight);
  spdlog::info("gptq: {} is a lookup table: round to nearest", param.name);
  return quant::quantize(weight, spec);
}

void SequentialGptq::run_layer(int64_t layer) {
  const ModelConfig& config = source_.config();
  ModelParams params;
  params.layers.resize(static_cast<size_t>(config.num_hidden_layers));
  std::map<std::string, Tensor> host;  // the selected projections' fp32 weights
  for (const ParamSpec& p : source_.params()) {
    if (layer_of(p.name) != layer) continue;
    if (targets_.selects(p.name)) host[p.name] = source_.read(p);
    param_slot(params, p.name) = targets_.selects(p.name) ? ops::cast(host[p.name], dtype_).to(device_) : device_tensor(p);
  }
  LayerParams& lp = params.layers[static_cast<size_t>(layer)];
  const std::vector<InputGroup>& groups = input_groups();
  std::vector<Tensor> hessians(groups.size());
  for (size_t g = 0; g < groups.size(); ++g)
    for (Projection which : groups[g].projections)
      if (host.contains(layer_prefix(layer) + std::string(projection_path(which)) + ".weight") && !hessians[g].defined()) {
        const int64_t in = projection(lp, which).in_features();
        hessians[g] = Tensor::empty({in, in}, DType::F32, device_);
        ops::fill(hessians[g], 0.0f);
      }
  const float alpha = 2.0f / static_cast<float>(tokens_);
  if (!host.empty())
    for (size_t b = 0; b < batches_.size(); ++b) {
      LayerActivations a;
      layer_forward(config, rope_, lp, hidden_[b], batches_[b], &a);
      for (size_t g = 0; g < groups.size(); ++g)
        if (hessians[g].defined()) quant::accumulate_hessian(hessians[g], a.*groups[g].input, alpha);
    }
  for (size_t g = 0; g < groups.size(); ++g) {
    if (!hessians[g].defined()) continue;
    const Tensor h = hessians[g].to(Device::cpu());
    for (Projection which : groups[g].projections) {
      const std::string name = layer_prefix(layer) + std::string(projection_path(which)) + ".weight";
      if (!host.contains(name)) continue;
      const Tensor& w = host[name];
      quant::GptqStats stats;
      PackedTensor packed =
          quant::gptq_quantize(w, h, resolve_quant_spec(targets_.weights, w.shape()), calibration_.gptq, name, &stats);
      projection(lp, which).weight = quant::dequantize(packed, dtype_).to(device_);
      spdlog::debug("gptq: {} error {:.6g}", name, stats.loss);
      ready_[name] = std::move(packed);
    }
  }
  for (size_t b = 0; b < batches_.size(); ++b) hidden_[b] = layer_forward(config, rope_, lp, hidden_[b], batches_[b], nullptr);
  spdlog::info("gptq: layer {} of {} quantized", layer + 1, config.num_hidden_layers);
  next_layer_ = layer + 1;
}

PackedTensor SequentialGptq::quantize_lm_head(const Tensor& weight) {
  const ModelConfig& config = source_.config();
  while (next_layer_ < config.num_hidden_layers) run_layer(next_layer_);
  const auto& params = source_.params();
  const auto norm = std::find_if(params.begin(), params.end(), [](const ParamSpec& p) { return p.name == "model.norm.weight"; });
  TS_CHECK(norm != params.end(), "gptq: {} has no model.norm.weight", source_.folder());
  const Tensor norm_weight = device_tensor(*norm);
  Tensor hessian = Tensor::empty({config.hidden_size, config.hidden_size}, DType::F32, device_);
  ops::fill(hessian, 0.0f);
  for (const Tensor& x : hidden_) {
    Tensor y = Tensor::empty(x.shape(), x.dtype(), device_), rstd = Tensor::empty({x.size(0)}, DType::F32, device_);
    ops::rmsnorm_forward(y, rstd, x, norm_weight, static_cast<float>(config.rms_norm_eps));
    quant::accumulate_hessian(hessian, y, 2.0f / static_cast<float>(tokens_));
  }
  return quant::gptq_quantize(weight, hessian.to(Device::cpu()), resolve_quant_spec(targets_.weights, weight.shape()),
                              calibration_.gptq, "lm_head.weight");
}

}  // namespace tessera
