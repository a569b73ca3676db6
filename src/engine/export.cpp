#include "engine/export.h"

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/state_file.h"
#include "engine/config/job_config.h"
#include "engine/job_params.h"
#include "engine/model_loader.h"
#include "io/safetensors_writer.h"
#include "kernels/ops.h"
#include "lora/apply.h"

namespace tessera {

namespace fs = std::filesystem;

namespace {

// tokenizer.json and its companions from the job's tokenizer (or model) folder.
void copy_tokenizer_files(const ModelSection& model, const fs::path& out) {
  const std::string source = model.tokenizer.empty() ? model.path : model.tokenizer;
  if (source.empty() || source == "bytes") {
    spdlog::warn("export: the job uses the built-in byte tokenizer; no tokenizer files to copy");
    return;
  }
  const fs::path dir = fs::is_directory(source) ? fs::path(source) : fs::path(source).parent_path();
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"})
    if (fs::exists(dir / name)) fs::copy_file(dir / name, out / name, fs::copy_options::overwrite_existing);
}

}  // namespace

namespace {

// What an export reads: the checkpoint (checked complete and intact), its job and model, and
// the fp32 master weights of its trainable tensors.
struct Source {
  JobConfig job;
  ModelConfig config;
  JobParams params;
  std::unique_ptr<checkpoint::StateFile> state;

  Tensor master(const ParamSpec& p) const {
    Tensor t = Tensor::empty(p.shape, DType::F32);
    state->read("master", p, 0, t.numel(), t.data_as<float>());
    return t;
  }
};

Source open_source(const ExportOptions& o) {
  const std::string problem = checkpoint::verify_manifest(o.checkpoint);
  TS_CHECK(problem.empty(), "--checkpoint {}: cannot be exported: {}", o.checkpoint, problem);
  TS_CHECK(!fs::exists(o.out) || fs::is_empty(o.out), "--out {}: exists and is not empty (nothing was overwritten)",
           o.out);
  Source s;
  s.job = load_job_config((fs::path(o.checkpoint) / "config.yaml").string());
  s.config = job_model_config(s.job.model);
  s.params = job_params(s.job, s.config);
  s.state = std::make_unique<checkpoint::StateFile>((fs::path(o.checkpoint) / "state.h5").string(), /*writable=*/false);
  return s;
}

// The frozen base of a LoRA checkpoint, tensor by tensor in f32: from model.path, or made again
// by its init rule from train.seed (model.init), exactly as the job made it.
class Base {
 public:
  Base(const Source& s) : seed_(static_cast<uint64_t>(s.job.train.seed)) {
    if (!s.job.model.path.empty()) {
      weights_ = SafetensorsModel::open(s.job.model.path);
      validate_checkpoint(s.config, *weights_);
    }
    int64_t offset = 0;  // each parameter's first Philox counter, as the store counts them
    for (const ParamSpec& p : s.params.params) {
      offsets_[p.name] = offset;
      offset += shape_numel(p.shape);
    }
  }

  Tensor tensor(const ParamSpec& p) const {
    if (weights_) return ops::cast(weights_->tensor(p.name), DType::F32);
    Tensor t = Tensor::empty(p.shape, DType::F32);
    init_param(p, t, seed_, static_cast<uint64_t>(offsets_.at(p.name)), kInitStd);
    return t;
  }

 private:
  uint64_t seed_;
  std::optional<SafetensorsModel> weights_;
  std::map<std::string, int64_t> offsets_;
};

// Each base tensor of a LoRA checkpoint as merged: W + scale * B A for adapted projections,
// the trained tensor for modules_to_save, the base's for the rest (all f32).
std::function<Tensor(const ParamSpec&)> merged_values(const Source& s, const Base& base) {
  const lora::AdapterSpec& a = *s.params.adapter;
  std::map<std::string, std::pair<ParamSpec, ParamSpec>> adapted;  // weight name -> (A, B)
  std::map<std::string, ParamSpec> trained;
  for (const ParamSpec& p : s.params.params)
    if (p.trainable) trained.emplace(p.name, p);
  for (int64_t l = 0; l < s.config.num_hidden_layers; ++l)
    for (int p = 0; p < kProjections; ++p)
      if (a.adapts(l, Projection(p)))
        adapted.emplace(fmt::format("model.layers.{}.{}.weight", l, projection_path(Projection(p))),
                        std::pair{trained.at(lora::lora_a_name(l, Projection(p))), trained.at(lora::lora_b_name(l, Projection(p)))});
  return [&s, &base, a, adapted, trained](const ParamSpec& p) {
    if (trained.count(p.name)) return s.master(p);
    Tensor w = base.tensor(p);
    auto it = adapted.find(p.name);
    return it == adapted.end() ? w : lora::merge_lora(w, s.master(it->second.first), s.master(it->second.second), a.scale());
  };
}

}  // namespace

void export_safetensors(const ExportOptions& o) {
  const Source s = open_source(o);
  ModelConfig config = s.config;
  config.torch_dtype = o.dtype == DType::BF16 ? "bfloat16" : o.dtype == DType::F16 ? "float16" : "float32";
  std::optional<Base> base;
  std::function<Tensor(const ParamSpec&)> value = [&s](const ParamSpec& p) { return s.master(p); };
  if (s.params.adapter) {
    base.emplace(s);
    value = merged_values(s, *base);
  }

  fs::create_directories(o.out);
  const std::vector<ParamSpec> params = model_parameters(config);
  std::vector<TensorEntry> entries;
  for (const ParamSpec& p : params) entries.push_back({p.name, o.dtype, p.shape});
  ShardedSafetensorsWriter writer(o.out, entries, o.max_shard_bytes, {{"format", "pt"}});
  for (const ParamSpec& p : params) writer.write(p.name, ops::cast(value(p), o.dtype));
  writer.finish();
  std::ofstream(fs::path(o.out) / "config.json") << config.to_json().dump(2) << "\n";
  copy_tokenizer_files(s.job.model, o.out);
  spdlog::info("exported {} tensors{} from {} to {} ({} shard file(s))", params.size(),
               s.params.adapter ? " (the LoRA adapters merged into the base)" : "", o.checkpoint, o.out,
               writer.shard_files().size());
}

void export_peft(const ExportOptions& o) {
  const Source s = open_source(o);
  TS_CHECK(s.params.adapter, "--checkpoint {}: not a LoRA checkpoint (its job has no lora section); export it with "
           "--format safetensors", o.checkpoint);
  const std::string base = s.job.model.path.empty() ? std::string() : fs::absolute(s.job.model.path).string();
  lora::write_peft_adapter(o.out, s.config, *s.params.adapter, base, [&s](const ParamSpec& p) { return s.master(p); },
                           o.dtype);
  spdlog::info("exported the LoRA adapter of {} to {} (PEFT: {}, {})", o.checkpoint, o.out, lora::kPeftConfigFile,
               lora::kPeftWeightsFile);
}

}  // namespace tessera
