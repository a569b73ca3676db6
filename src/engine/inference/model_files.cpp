#include "engine/inference/model_files.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "engine/export_source.h"
#include "engine/gguf_loader.h"
#include "kernels/ops.h"
#include "lora/apply.h"
#include "lora/peft.h"
#include "model/inference_model.h"

namespace tessera::inference {

namespace fs = std::filesystem;

namespace {

// A Tessera checkpoint folder (config.yaml + state.h5), read through ExportSource: a LoRA
// checkpoint comes out merged.
LoadedModel load_checkpoint(const std::string& folder, DType dtype, Device device, std::string& tokenizer) {
  const ExportSource source = ExportSource::checkpoint(folder);
  LoadedModel m{source.config(), make_params(source.config(), dtype, device, false)};
  for (const ParamSpec& p : source.params()) {
    const Tensor& slot = param_slot(m.params, p.name);
    ops::copy(slot, source.read(p).to(device).view(slot.shape()));
  }
  tokenizer = source.tokenizer();
  return m;
}

std::shared_ptr<const tok::Tokenizer> open_tokenizer(const std::string& where) {
  if (where.empty()) return nullptr;
  if (where == "bytes") return std::make_shared<tok::Tokenizer>(tok::Tokenizer::bytes());
  return std::make_shared<tok::Tokenizer>(tok::Tokenizer::from_file(where));
}

}  // namespace

LoadedInferenceModel load_inference_model(const ModelFiles& f) {
  TS_CHECK(fs::exists(f.model), "--model {}: no such file or folder", f.model);
  TS_CHECK(f.dtype == DType::F32 || f.dtype == DType::BF16, "--dtype: fp32 or bf16");
  TS_CHECK(!f.device.is_cpu() || f.dtype == DType::F32, "--dtype bf16: the CPU backend computes in fp32");
  std::string tokenizer;
  LoadedModel m;
  if (fs::is_directory(f.model) && fs::exists(fs::path(f.model) / "config.yaml") &&
      !fs::exists(fs::path(f.model) / "config.json")) {
    m = load_checkpoint(f.model, f.dtype, f.device, tokenizer);
  } else {
    // Quantized projections (a quantized checkpoint's, a GGUF file's q8_0 / q4_0) stay packed.
    m = load_model_file(f.model, f.dtype, f.device, QuantizedWeights::packed);
    if (fs::is_directory(f.model) && fs::exists(fs::path(f.model) / "tokenizer.json")) tokenizer = f.model;
  }
  if (!f.adapter.empty()) {
    const lora::PeftAdapter adapter = lora::read_peft_adapter(f.adapter, m.config);
    lora::attach_adapter(m.params, m.config, adapter, f.dtype, f.device);
  }
  LoadedInferenceModel out;
  out.tokenizer = open_tokenizer(tokenizer);
  out.name = fs::path(f.model).lexically_normal().filename().string();
  if (out.name.empty()) out.name = fs::path(f.model).lexically_normal().parent_path().filename().string();
  const ModelConfig config = m.config;
  out.model = std::make_shared<InferenceModel>(config, std::make_shared<OwnedParams>(std::move(m.params)), f.device,
                                               f.dtype);
  spdlog::info("generate: {} ({} layers, hidden {}) on {} in {}", f.model, config.num_hidden_layers,
               config.hidden_size, f.device.str(), dtype_name(f.dtype));
  return out;
}

}  // namespace tessera::inference
