#include "engine/model_folder.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "engine/checkpoint/manifest.h"
#include "engine/config/job_config.h"
#include "engine/export_source.h"
#include "engine/gguf_loader.h"
#include "engine/sha256sums.h"
#include "io/gguf_reader.h"
#include "kernels/ops.h"

namespace tessera {

namespace fs = std::filesystem;

ModelKind model_kind(const std::string& path) {
  TS_CHECK(fs::exists(path), "--model {}: no such file or folder", path);
  if (!fs::is_directory(path)) {
    TS_CHECK(is_gguf_file(path), "--model {}: a file but not a GGUF model (expected a model folder or a .gguf file)",
             path);
    return ModelKind::gguf;
  }
  if (fs::exists(fs::path(path) / "state.h5") && fs::exists(fs::path(path) / "config.yaml")) return ModelKind::checkpoint;
  TS_CHECK(fs::exists(fs::path(path) / "config.json"),
           "--model {}: neither a Hugging Face model folder (no config.json) nor a Tessera checkpoint (no config.yaml "
           "and state.h5)", path);
  return ModelKind::hf_folder;
}

namespace {

RunnableModel from_checkpoint(const std::string& folder, DType dtype, Device device, bool verify) {
  // verify_model_files checked the manifest; a LoRA checkpoint's base is checked unless --no-verify.
  const ExportSource source = ExportSource::checkpoint(folder, /*verify=*/false, /*check_base=*/verify);
  RunnableModel m;
  m.config = source.config();
  const std::vector<ParamSpec>& specs = source.params();
  size_t i = 0;
  for_each_param(m.config, m.params, [&](const std::string&, Tensor& slot) {
    slot = ops::cast(source.read(specs.at(i++)), dtype).to(device);
  });
  const std::string& tokenizer = source.tokenizer();
  TS_CHECK(!tokenizer.empty(), "{}: the checkpoint's job names no tokenizer (model.tokenizer)", folder);
  m.tokenizer = open_tokenizer(tokenizer);
  m.job_data = load_job_config((fs::path(folder) / "config.yaml").string()).data;
  return m;
}

RunnableModel from_hf_folder(const std::string& folder, DType dtype, Device device, bool own_tokenizer) {
  TS_CHECK(!own_tokenizer || fs::exists(fs::path(folder) / "tokenizer.json"),
           "--model {}: no tokenizer.json (name one with --tokenizer, or 'bytes' for the built-in byte tokenizer)",
           folder);
  RunnableModel m;
  static_cast<LoadedModel&>(m) = load_hf_model(folder, dtype, device);
  if (own_tokenizer) m.tokenizer = tok::Tokenizer::from_file(folder);
  return m;
}

RunnableModel from_gguf(const std::string& path, DType dtype, Device device) {
  RunnableModel m;
  static_cast<LoadedModel&>(m) = load_gguf_model(path, dtype, device);
  m.tokenizer = gguf_tokenizer(gguf::File::open(path));
  return m;
}

}  // namespace

void verify_model_files(const std::string& path) {
  const ModelKind kind = model_kind(path);
  if (kind == ModelKind::checkpoint) {
    const std::string problem = checkpoint::verify_manifest(path);
    TS_CHECK(problem.empty(), "{}: not an intact checkpoint: {}", path, problem);
  } else if (kind == ModelKind::hf_folder) {
    const int verified = verify_sha256sums(path);
    if (verified > 0) spdlog::info("{}: {} file(s) match {}", path, verified, kSha256SumsFile);
    else spdlog::info("{}: no {}; its files are not verified", path, kSha256SumsFile);
  }
}

tok::Tokenizer open_tokenizer(const std::string& path) {
  return path == "bytes" ? tok::Tokenizer::bytes() : tok::Tokenizer::from_file(path);
}

RunnableModel load_runnable_model(const std::string& path, DType dtype, Device device, bool verify,
                                  const std::string& tokenizer) {
  const ModelKind kind = model_kind(path);
  if (verify) verify_model_files(path);
  else spdlog::warn("{}: weight files not verified (--no-verify)", path);
  RunnableModel m = kind == ModelKind::checkpoint ? from_checkpoint(path, dtype, device, verify)
                    : kind == ModelKind::gguf    ? from_gguf(path, dtype, device)
                                                  : from_hf_folder(path, dtype, device, tokenizer.empty());
  if (!tokenizer.empty()) m.tokenizer = open_tokenizer(tokenizer);
  TS_CHECK(m.tokenizer.vocab_size() <= m.config.vocab_size, "--model {}: the tokenizer has {} ids but the model's "
           "vocabulary is {}", path, m.tokenizer.vocab_size(), m.config.vocab_size);
  return m;
}

}  // namespace tessera
