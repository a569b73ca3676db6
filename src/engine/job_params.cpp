#include "engine/job_params.h"

#include <fmt/ranges.h>

#include <chrono>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "core/rng.h"
#include "engine/model_loader.h"
#include "io/safetensors.h"
#include "lora/peft.h"
#include "model/model_config_params.h"

namespace tessera {

namespace {
constexpr uint64_t kDropoutDomain = 0x9E3779B97F4A7C15ull;  // keeps dropout keys apart from init streams
}

PassDropout JobParams::dropout(uint64_t seed, int64_t step) const {
  if (!adapter || adapter->dropout == 0) return {};
  const rng::Philox4 r = rng::philox(seed ^ kDropoutDomain, static_cast<uint64_t>(step));
  return {static_cast<float>(adapter->dropout), static_cast<uint64_t>(r.v[0]) | static_cast<uint64_t>(r.v[1]) << 32};
}

JobParams job_params(const JobConfig& job, const ModelConfig& config) {
  JobParams out;
  if (job.lora) out.adapter = lora::resolve(*job.lora, config);
  out.params = out.adapter ? lora::lora_parameters(config, *out.adapter) : model_parameters(config);
  // QAT's learned scales train as the adapters do, after everything else.
  if (job.quant.qat && job.quant.qat->learnable_scales)
    for (ParamSpec& p : qat_scale_parameters(resolve_qat(*job.quant.qat, config), config)) out.params.push_back(std::move(p));
  return out;
}

namespace {

// lora.adapter must be an adapter of the job's own shape: the same tensors.
void check_same_adapter(const lora::AdapterSpec& got, const lora::AdapterSpec& want, const std::string& folder) {
  auto differ = [&](const char* key, const std::string& adapter, const std::string& job) {
    fail("lora.adapter: {} has {} {}, the job's lora.{} is {}", folder, key, adapter, key, job);
  };
  if (got.r != want.r) differ("r", std::to_string(got.r), std::to_string(want.r));
  if (got.targets != want.targets)
    differ("target_modules", fmt::format("{}", fmt::join(got.target_names(), ", ")),
           fmt::format("{}", fmt::join(want.target_names(), ", ")));
  if (got.layers != want.layers) differ("layers", "another set of layers", "not that");
  if (got.saved_modules() != want.saved_modules())
    differ("modules_to_save", fmt::format("[{}]", fmt::join(got.saved_modules(), ", ")),
           fmt::format("[{}]", fmt::join(want.saved_modules(), ", ")));
  if (got.scale() != want.scale())
    spdlog::warn("lora.adapter: {} was trained with scale {} (lora_alpha {}), this job trains with {} (lora.alpha {})",
                 folder, got.scale(), got.alpha, want.scale(), want.alpha);
}

}  // namespace

void load_weights(ZeroStore& store, const JobConfig& job, const ModelConfig& config, const JobParams& params) {
  const uint64_t seed = static_cast<uint64_t>(job.train.seed);
  std::optional<SafetensorsModel> base;
  if (!job.model.path.empty()) {
    base = SafetensorsModel::open(job.model.path);
    validate_checkpoint(config, *base);  // every base tensor there: none is initialised instead
  }
  std::optional<lora::PeftAdapter> adapter;
  if (params.adapter && !job.lora->adapter.empty()) {
    adapter = lora::read_peft_adapter(job.lora->adapter, config);
    check_same_adapter(adapter->spec, *params.adapter, job.lora->adapter);
  }
  // The adapter's tensors (and modules_to_save) from lora.adapter, the base's from model.path;
  // what neither has starts by its rule.
  // QAT's learned scales start at qat.start_step (init_learned_scales), from nothing here.
  std::set<std::string> scales;
  if (job.quant.qat)
    for (const ParamSpec& p : qat_scale_parameters(resolve_qat(*job.quant.qat, config), config)) scales.insert(p.name);
  store.load(
      [&](const ParamSpec& p) {
        if (scales.count(p.name)) return Tensor();
        if (adapter && p.trainable) return adapter->tensor(p.name);
        return base && base->contains(p.name) ? base->tensor(p.name) : Tensor();
      },
      seed, kInitStd);
}

checkpoint::BaseWeights job_base_weights(const JobConfig& job, Communicator* host) {
  if (job.model.path.empty())
    return checkpoint::init_base(job_model_config(job.model).to_json().dump(), job.train.seed);
  const auto start = std::chrono::steady_clock::now();
  checkpoint::BaseWeights base =
      host ? checkpoint::hash_base_weights(job.model.path, *host) : checkpoint::hash_base_weights(job.model.path);
  spdlog::info("base model {}: {} weight file(s) hashed in {:.1f} s", job.model.path, base.files.size(),
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return base;
}

}  // namespace tessera
