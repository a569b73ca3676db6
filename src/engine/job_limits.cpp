#include "engine/job_limits.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include "core/error.h"
#include "engine/memory_estimate.h"
#include "model/model_config_params.h"

namespace tessera {

namespace {

double physical_memory() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0;
}

double gib(double bytes) { return bytes / 1073741824.0; }

}  // namespace

void check_job_fits(const JobConfig& job, const ModelConfig& model, const World& world, Device device,
                    double host_bytes) {
  TS_CHECK(job.data.seq_len <= model.max_position_embeddings,
           "data.seq_len ({}) is above the model's max_position_embeddings ({}): positions past it were never "
           "trained; lower data.seq_len",
           job.data.seq_len, model.max_position_embeddings);

  // A warning, not an error: `--set checkpoint.dir=` is how a job is run without checkpoints.
  if (job.checkpoint.every_steps > 0 && job.checkpoint.dir.empty())
    spdlog::warn("checkpoint.every_steps is {} but checkpoint.dir is empty: no checkpoint will be written",
                 job.checkpoint.every_steps);

  const MemoryEstimate e = estimate_memory(model, job, world.size).at(static_cast<size_t>(job.zero.stage));
  // What lives in host memory: the pinned pools of offload, and on the CPU backend everything.
  const double per_rank = e.host + (device.is_cpu() ? e.total() : 0.0);
  const double need = per_rank * world.local_size;
  const double have = host_bytes > 0 ? host_bytes : physical_memory();
  if (have <= 0 || need <= have) return;
  double params = 0;
  for (const ParamSpec& p : model_parameters(model)) params += static_cast<double>(shape_numel(p.shape));
  fail("the model (num_hidden_layers {}, hidden_size {}, intermediate_size {}, vocab_size {}: {:.3g} parameters) "
       "needs about {:.1f} GiB of host memory per rank at ZeRO stage {} on {} rank(s), {:.1f} GiB for the {} on "
       "this host, which has {:.1f} GiB (see tessera estimate-memory)",
       model.num_hidden_layers, model.hidden_size, model.intermediate_size, model.vocab_size, params,
       gib(per_rank), job.zero.stage, world.size, gib(need), world.local_size == 1 ? "one rank" : "ranks", gib(have));
}

}  // namespace tessera
