#include "engine/job_params.h"

#include "core/rng.h"
#include "io/safetensors.h"
#include "model/model_config_params.h"

namespace tessera {

namespace {
constexpr uint64_t kDropoutDomain = 0x9E3779B97F4A7C15ull;  // keeps dropout keys apart from init streams
}

PassDropout JobParams::dropout(uint64_t seed, int64_t step) const {
  if (!adapter || adapter->dropout == 0.0f) return {};
  const rng::Philox4 r = rng::philox(seed ^ kDropoutDomain, static_cast<uint64_t>(step));
  return {adapter->dropout, static_cast<uint64_t>(r.v[0]) | static_cast<uint64_t>(r.v[1]) << 32};
}

JobParams job_params(const JobConfig& job, const ModelConfig& config) {
  if (!job.lora) return {model_parameters(config), std::nullopt};
  const lora::AdapterSpec adapter = lora::resolve(*job.lora, config);
  return {lora::lora_parameters(config, adapter), adapter};
}

void load_weights(ZeroStore& store, const JobConfig& job, const ModelConfig& config) {
  const uint64_t seed = static_cast<uint64_t>(job.train.seed);
  if (job.model.path.empty()) return store.init_random(seed, 0.02f);
  const SafetensorsModel weights = SafetensorsModel::open(job.model.path);
  validate_checkpoint(config, weights);  // every base tensor there: none is initialised instead
  store.load(weights, seed);
}

}  // namespace tessera
