// The learning rate at an optimizer step: linear warmup, then constant, linear or cosine decay
// to min_lr at the last step.
#pragma once

#include <cstdint>
#include <string>

#include "engine/config/job_config.h"

namespace tessera {

// `step` counts from 1 to train.steps (the horizon; train.stop_after does not change it).
double learning_rate(const TrainSection& train, int64_t step);

// Resuming `checkpoint`, saved by a run whose schedule spanned `saved_horizon` steps (0: unknown,
// an older checkpoint): an error when train.steps is another horizon and the schedule decays (the
// lr would jump at the first resumed step), unless train.schedule.allow_new_horizon.
void check_schedule_horizon(const TrainSection& train, int64_t saved_horizon, const std::string& checkpoint);

}  // namespace tessera
