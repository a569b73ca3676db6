#include "engine/export.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "engine/checkpoint/manifest.h"
#include "engine/checkpoint/state_file.h"
#include "engine/config/job_config.h"
#include "engine/model_loader.h"
#include "io/safetensors_writer.h"
#include "kernels/ops.h"

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

void export_safetensors(const ExportOptions& o) {
  const std::string problem = checkpoint::verify_manifest(o.checkpoint);
  TS_CHECK(problem.empty(), "--checkpoint {}: cannot be exported: {}", o.checkpoint, problem);
  TS_CHECK(!fs::exists(o.out) || fs::is_empty(o.out), "--out {}: exists and is not empty (nothing was overwritten)",
           o.out);
  const JobConfig job = load_job_config((fs::path(o.checkpoint) / "config.yaml").string());
  ModelConfig config = job_model_config(job.model);
  config.torch_dtype = o.dtype == DType::BF16 ? "bfloat16" : o.dtype == DType::F16 ? "float16" : "float32";

  fs::create_directories(o.out);
  const std::vector<ParamSpec> params = model_parameters(config);
  std::vector<TensorEntry> entries;
  for (const ParamSpec& p : params) entries.push_back({p.name, o.dtype, p.shape});
  checkpoint::StateFile state((fs::path(o.checkpoint) / "state.h5").string(), /*writable=*/false);
  ShardedSafetensorsWriter writer(o.out, entries, o.max_shard_bytes, {{"format", "pt"}});
  for (const ParamSpec& p : params) {
    Tensor master = Tensor::empty(p.shape, DType::F32);
    state.read("master", p, 0, master.numel(), master.data_as<float>());
    writer.write(p.name, ops::cast(master, o.dtype));
  }
  writer.finish();
  std::ofstream(fs::path(o.out) / "config.json") << config.to_json().dump(2) << "\n";
  copy_tokenizer_files(job.model, o.out);
  spdlog::info("exported {} tensors from {} to {} ({} shard file(s))", params.size(), o.checkpoint, o.out,
               writer.shard_files().size());
}

}  // namespace tessera
