// `tessera train`: data-parallel ZeRO training of a Hugging Face model (or one initialised from
// model.init) on JSONL or text data, as a job config describes.
#pragma once

#include "comm/world.h"
#include "engine/config/job_config.h"
#include "engine/metrics/endpoint.h"

namespace tessera {

struct TrainSummary {
  int64_t steps_done = 0;
  double last_loss = 0;
  int64_t skipped_steps = 0;  // steps whose gradients were not finite
  bool interrupted = false;   // stopped early by SIGINT/SIGTERM/SIGUSR2
};

// serve: how rank 0 serves log.metrics_port (the CLI passes engine/server's MetricsListener);
// without it a job that sets the port fails at once.
TrainSummary run_training(const JobConfig& config, const World& world, const metrics::ServeFn& serve = {});

}  // namespace tessera
