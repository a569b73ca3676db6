#include "engine/export_source.h"

#include <filesystem>
#include <functional>
#include <utility>
#include <map>
#include <optional>

#include "core/error.h"
#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/state_file.h"
#include "engine/checkpoint/trainer_state.h"
#include "engine/config/job_config.h"
#include "engine/job_params.h"
#include "engine/model_loader.h"
#include "engine/model_weights.h"
#include "io/safetensors.h"
#include "kernels/ops.h"
#include "lora/apply.h"

namespace tessera {

namespace fs = std::filesystem;

// The frozen base of a LoRA checkpoint and how each base tensor merges with what was trained.
struct LoraMerge {
  std::optional<SafetensorsModel> base;      // model.path; else the model.init base, made again:
  uint64_t seed = 0;                         //   train.seed, and each parameter's first Philox
  std::map<std::string, int64_t> offsets;    //   counter as the store counts them
  std::map<std::string, ParamSpec> trained;  // trainable tensors by name
  std::map<std::string, std::pair<std::string, std::string>> adapted;  // weight -> its A and B
  std::map<std::string, QuantSpec> packed;   // base weights trained against packed (QLoRA)
  float scale = 1.0f;
  std::function<void()> check_base;  // run (once) before the first base tensor is read
};

// Exactly one of the first two is set; `lora` for a LoRA checkpoint.
struct ExportSource::Weights {
  std::unique_ptr<checkpoint::StateFile> state;
  std::unique_ptr<ModelWeights> hf;
  std::unique_ptr<LoraMerge> lora;
};

namespace {

std::unique_ptr<LoraMerge> lora_merge(const JobConfig& job, const ModelConfig& config, const JobParams& params) {
  auto m = std::make_unique<LoraMerge>();
  if (!job.model.path.empty()) {
    m->base = SafetensorsModel::open(job.model.path);
    validate_checkpoint(config, *m->base);
  }
  m->seed = static_cast<uint64_t>(job.train.seed);
  int64_t offset = 0;
  for (const ParamSpec& p : params.params) {
    m->offsets[p.name] = offset;
    offset += shape_numel(p.shape);
    if (p.trainable) m->trained.emplace(p.name, p);
    if (p.quant) m->packed.emplace(p.name, *p.quant);
  }
  const lora::AdapterSpec& a = *params.adapter;
  for (int64_t l = 0; l < config.num_hidden_layers; ++l)
    for (int p = 0; p < kProjections; ++p)
      if (a.adapts(l, Projection(p)))
        m->adapted[fmt::format("model.layers.{}.{}.weight", l, projection_path(Projection(p)))] = {
            lora::lora_a_name(l, Projection(p)), lora::lora_b_name(l, Projection(p))};
  m->scale = a.scale();
  return m;
}

}  // namespace

ExportSource::ExportSource() : weights_(std::make_unique<Weights>()) {}
ExportSource::ExportSource(ExportSource&&) noexcept = default;
ExportSource::~ExportSource() = default;

ExportSource ExportSource::checkpoint(const std::string& folder, bool verify, bool check_base) {
  const std::string problem = verify ? checkpoint::verify_manifest(folder) : std::string();
  TS_CHECK(problem.empty(), "{}: not an intact checkpoint: {}", folder, problem);
  ExportSource s;
  s.folder_ = folder;
  const JobConfig job = load_job_config((fs::path(folder) / "config.yaml").string());
  s.config_ = job_model_config(job.model);
  s.tokenizer_ = job.model.tokenizer.empty() ? job.model.path : job.model.tokenizer;
  s.params_ = model_parameters(s.config_);
  s.weights_->state = std::make_unique<checkpoint::StateFile>((fs::path(folder) / "state.h5").string(), false);
  const JobParams params = job_params(job, s.config_);
  if (params.adapter) {
    s.adapter_ = params.adapter;
    s.base_model_ = job.model.path;
    s.weights_->lora = lora_merge(job, s.config_, params);
    // The merge needs the base the adapters were trained on: checked (hashed) before the first base
    // tensor is read, so a PEFT export, which reads none, does not hash it.
    if (check_base)
      s.weights_->lora->check_base = [job, folder] {
        checkpoint::check_same_base(checkpoint::read_trainer_state(folder).base, job_base_weights(job, nullptr), folder);
      };
  }
  return s;
}

ExportSource ExportSource::hf_folder(const std::string& folder) {
  ExportSource s;
  s.folder_ = folder;
  s.config_ = ModelConfig::from_file(folder);
  s.weights_->hf = std::make_unique<ModelWeights>(ModelWeights::open(folder, s.config_));
  if (fs::exists(fs::path(folder) / "tokenizer.json")) s.tokenizer_ = folder;
  s.params_ = model_parameters(s.config_);
  return s;
}

std::string ExportSource::merge_note() const {
  if (!adapter_) return "";
  if (!adapter_->base_quant) return " (the LoRA adapters merged into the base)";
  return fmt::format(" (the LoRA adapters merged into dequantize(base) under {}: the {} base they were trained "
                     "against, not the original; every projection carries its rounding)",
                     quant_scheme_name(*adapter_->base_quant), quant_scheme_name(*adapter_->base_quant));
}

std::string ExportSource::tokenizer_folder() const {
  if (tokenizer_.empty() || tokenizer_ == "bytes") return "";
  return fs::is_directory(tokenizer_) ? tokenizer_ : fs::path(tokenizer_).parent_path().string();
}

Tensor ExportSource::read_trained(const ParamSpec& param) const {
  TS_CHECK(weights_->state, "{}: a Hugging Face folder has no trained tensors", folder_);
  Tensor master = Tensor::empty(param.shape, DType::F32);
  weights_->state->read("master", param, 0, master.numel(), master.data_as<float>());
  return master;
}

Tensor ExportSource::read(const ParamSpec& param) const {
  if (weights_->hf) return ops::cast(weights_->hf->tensor(param), DType::F32);
  LoraMerge* m = weights_->lora.get();
  if (!m || m->trained.count(param.name)) return read_trained(param);
  if (m->check_base) std::exchange(m->check_base, nullptr)();
  Tensor w;
  if (m->base) {
    w = ops::cast(m->base->tensor(param.name), DType::F32);
  } else {
    w = Tensor::empty(param.shape, DType::F32);
    init_param(param, w, m->seed, static_cast<uint64_t>(m->offsets.at(param.name)), kInitStd);
  }
  // What the store held, and the adapter was trained against: the base quantized from fp32.
  if (const auto packed = m->packed.find(param.name); packed != m->packed.end()) ops::fake_quantize(w, w, packed->second);
  const auto it = m->adapted.find(param.name);
  if (it == m->adapted.end()) return w;
  auto in = [&](const Tensor& t) { return merge_inputs_ == DType::F32 ? t : ops::cast(t, merge_inputs_); };
  return lora::merge_lora(in(w), in(read_trained(m->trained.at(it->second.first))),
                          in(read_trained(m->trained.at(it->second.second))), m->scale);
}

}  // namespace tessera
