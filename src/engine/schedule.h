// The learning rate at an optimizer step: linear warmup, then constant, linear or cosine decay
// to min_lr at the last step.
#pragma once

#include <cstdint>

#include "engine/config/job_config.h"

namespace tessera {

// `step` counts from 1 to total_steps.
double learning_rate(const TrainSection& train, int64_t step);

}  // namespace tessera
