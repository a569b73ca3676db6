#include "engine/schedule.h"

#include <cmath>
#include <numbers>

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

}  // namespace tessera
