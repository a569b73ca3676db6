// A job checked against its model before anything is allocated: the sequence length within the
// model's positions, and the per-rank memory estimate (memory_estimate.h) within what the host
// has. A model too large for the machine is one line naming its sizes, not an OOM kill. Warns
// when checkpoint.every_steps is set without a checkpoint.dir.
#pragma once

#include "comm/world.h"
#include "engine/config/job_config.h"
#include "model/model_config.h"

namespace tessera {

// `host_bytes`: the host's physical memory (0: read it from the system).
void check_job_fits(const JobConfig& job, const ModelConfig& model, const World& world, Device device,
                    double host_bytes = 0);

}  // namespace tessera
