#include "engine/inference/model_files.h"

#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "engine/model_folder.h"
#include "model/inference_model.h"

namespace tessera::inference {

namespace fs = std::filesystem;

LoadedInferenceModel load_inference_model(const ModelFiles& f) {
  TS_CHECK(f.dtype == DType::F32 || f.dtype == DType::BF16, "--dtype: fp32 or bf16");
  TS_CHECK(!f.device.is_cpu() || f.dtype == DType::F32, "--dtype bf16: the CPU backend computes in fp32");
  RunnableModel m = load_runnable_model(f.model, {.dtype = f.dtype,
                                                  .device = f.device,
                                                  .verify = f.verify,
                                                  .checksums = f.checksums,
                                                  .tokenizer = f.tokenizer,
                                                  .tokenizer_required = false,
                                                  .adapter = f.adapter,
                                                  .quantized = QuantizedWeights::packed});
  LoadedInferenceModel out;
  if (m.has_tokenizer) out.tokenizer = std::make_shared<const tok::Tokenizer>(std::move(m.tokenizer));
  out.name = fs::path(f.model).lexically_normal().filename().string();
  if (out.name.empty()) out.name = fs::path(f.model).lexically_normal().parent_path().filename().string();
  const ModelConfig config = m.config;
  out.model = std::make_shared<InferenceModel>(config, std::make_shared<OwnedParams>(std::move(m.params)), f.device,
                                               f.dtype);
  spdlog::info("inference: {} ({} layers, hidden {}) on {} in {}", f.model, config.num_hidden_layers,
               config.hidden_size, f.device.str(), dtype_name(f.dtype));
  if (m.packed_lm_head) out.model->use_packed_lm_head(m.packed_lm_head);  // the checkpoint's own
  return out;
}

}  // namespace tessera::inference
