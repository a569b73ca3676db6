#include "engine/export.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "engine/export_source.h"
#include "engine/sha256sums.h"
#include "io/atomic_file.h"
#include "io/safetensors_writer.h"
#include "io/staged_folder.h"
#include "kernels/ops.h"
#include "lora/peft.h"

namespace tessera {

namespace fs = std::filesystem;

void copy_tokenizer_files(const ExportSource& source, const std::string& folder) {
  const fs::path out(folder);
  const std::string dir = source.tokenizer_folder();
  if (dir.empty()) {
    spdlog::warn("export: the job uses the built-in byte tokenizer; no tokenizer files to copy");
    return;
  }
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"})
    if (fs::exists(fs::path(dir) / name))
      fs::copy_file(fs::path(dir) / name, out / name, fs::copy_options::overwrite_existing);
}

void export_safetensors(const ExportOptions& o) {
  const ExportSource source = ExportSource::checkpoint(o.checkpoint);
  StagedFolder out(o.out);
  ModelConfig config = source.config();
  config.torch_dtype = o.dtype == DType::BF16 ? "bfloat16" : o.dtype == DType::F16 ? "float16" : "float32";

  std::vector<TensorEntry> entries;
  for (const ParamSpec& p : source.params()) entries.push_back({p.name, o.dtype, p.shape});
  ShardedSafetensorsWriter writer(out.path(), entries, o.max_shard_bytes, {{"format", "pt"}});
  for (const ParamSpec& p : source.params()) writer.write(p.name, ops::cast(source.read(p), o.dtype));
  writer.finish();
  write_file_atomically((fs::path(out.path()) / "config.json").string(), config.to_json().dump(2) + "\n");
  copy_tokenizer_files(source, out.path());
  write_sha256sums(out.path(), files_in(out.path()));
  out.commit();
  spdlog::info("exported {} tensors{} from {} to {} ({} shard file(s))", source.params().size(),
               source.merge_note(), o.checkpoint, o.out,
               writer.shard_files().size());
}

void export_peft(const ExportOptions& o) {
  const ExportSource source = ExportSource::checkpoint(o.checkpoint);
  TS_CHECK(source.adapter(), "--checkpoint {}: not a LoRA checkpoint (its job has no lora section); export it with "
           "--format safetensors", o.checkpoint);
  const std::string base = source.base_model().empty() ? std::string() : fs::absolute(source.base_model()).string();
  StagedFolder out(o.out);
  lora::write_peft_adapter(out.path(), source.config(), *source.adapter(), base,
                           [&](const ParamSpec& p) { return source.read_trained(p); }, o.dtype);
  write_sha256sums(out.path(), files_in(out.path()));
  out.commit();
  spdlog::info("exported the LoRA adapter of {} to {} (PEFT: {}, {})", o.checkpoint, o.out, lora::kPeftConfigFile,
               lora::kPeftWeightsFile);
  if (source.adapter()->base_quant)
    spdlog::info("the adapter was trained on a {} base: applied to the original base it gives close to, not exactly, "
                 "what was trained (the merged export merges into dequantize(base))",
                 quant_scheme_name(*source.adapter()->base_quant));
}

}  // namespace tessera
