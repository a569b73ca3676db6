#include "engine/export_source.h"

#include <filesystem>

#include "core/error.h"
#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/state_file.h"
#include "engine/config/job_config.h"
#include "engine/model_loader.h"
#include "io/safetensors.h"
#include "kernels/ops.h"

namespace tessera {

namespace fs = std::filesystem;

// Exactly one of the two is set.
struct ExportSource::Weights {
  std::unique_ptr<checkpoint::StateFile> state;
  std::unique_ptr<SafetensorsModel> safetensors;
};

ExportSource::ExportSource() : weights_(std::make_unique<Weights>()) {}
ExportSource::ExportSource(ExportSource&&) noexcept = default;
ExportSource::~ExportSource() = default;

ExportSource ExportSource::checkpoint(const std::string& folder) {
  const std::string problem = checkpoint::verify_manifest(folder);
  TS_CHECK(problem.empty(), "--checkpoint {}: cannot be exported: {}", folder, problem);
  ExportSource s;
  s.folder_ = folder;
  const JobConfig job = load_job_config((fs::path(folder) / "config.yaml").string());
  s.config_ = job_model_config(job.model);
  s.tokenizer_ = job.model.tokenizer.empty() ? job.model.path : job.model.tokenizer;
  s.params_ = model_parameters(s.config_);
  s.weights_->state = std::make_unique<checkpoint::StateFile>((fs::path(folder) / "state.h5").string(), false);
  return s;
}

ExportSource ExportSource::hf_folder(const std::string& folder) {
  ExportSource s;
  s.folder_ = folder;
  s.config_ = ModelConfig::from_file(folder);
  s.weights_->safetensors = std::make_unique<SafetensorsModel>(SafetensorsModel::open(folder));
  validate_checkpoint(s.config_, *s.weights_->safetensors);
  if (fs::exists(fs::path(folder) / "tokenizer.json")) s.tokenizer_ = folder;
  s.params_ = model_parameters(s.config_);
  return s;
}

std::string ExportSource::tokenizer_folder() const {
  if (tokenizer_.empty() || tokenizer_ == "bytes") return "";
  return fs::is_directory(tokenizer_) ? tokenizer_ : fs::path(tokenizer_).parent_path().string();
}

Tensor ExportSource::read(const ParamSpec& param) const {
  if (weights_->safetensors) return ops::cast(weights_->safetensors->tensor(param.name), DType::F32);
  Tensor master = Tensor::empty(param.shape, DType::F32);
  weights_->state->read("master", param, 0, master.numel(), master.data_as<float>());
  return master;
}

}  // namespace tessera
