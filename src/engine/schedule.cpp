#include "engine/schedule.h"

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "core/log.h"

namespace tessera {

double learning_rate(const TrainSection& train, int64_t step) {
  const auto& s = train.schedule;
  if (step <= s.warmup_steps) return train.lr * static_cast<double>(step) / static_cast<double>(s.warmup_steps);
  if (s.type == "constant") return train.lr;
  const int64_t decay_steps = train.steps - s.warmup_steps;
  const double progress = decay_steps <= 0 ? 1.0 : static_cast<double>(step - s.warmup_steps) / decay_steps;
  const double shape = s.type == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return s.min_lr + (train.lr - s.min_lr) * shape;
}

void check_schedule_horizon(const TrainSection& train, int64_t saved_horizon, const std::string& checkpoint) {
  if (saved_horizon <= 0 || saved_horizon == train.steps || train.schedule.type == "constant") return;
  if (train.schedule.allow_new_horizon) {
    spdlog::warn("{}: its lr schedule spanned {} steps; it now follows train.steps {} "
                 "(train.schedule.allow_new_horizon)", checkpoint, saved_horizon, train.steps);
    return;
  }
  fail("{}: its {} lr schedule spans {} steps but train.steps is {}, so the lr would jump on resuming; keep "
       "train.steps at {} (stop a run early with train.stop_after), or set train.schedule.allow_new_horizon: true",
       checkpoint, train.schedule.type, saved_horizon, train.steps, saved_horizon);
}

}  // namespace tessera
