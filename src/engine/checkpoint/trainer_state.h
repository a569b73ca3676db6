// trainer_state.json: where in training a checkpoint stands (step, skipped steps, data-loader
// state, lr schedule horizon, world size, a LoRA job's base) and the lineage it belongs to: an id made when a job
// starts from step 0 and kept by every job resumed from it, so checkpoint.keep_last deletes only
// its own run's folders.
#pragma once

#include <string>

#include "engine/checkpoint/base_weights.h"
#include "io/data/data_loader.h"

namespace tessera::checkpoint {

inline constexpr const char* kTrainerFile = "trainer_state.json";

struct TrainerState {
  int64_t step = 0;
  int64_t skipped_steps = 0;
  data::LoaderState loader;    // where the sample stream goes on
  int64_t schedule_steps = 0;  // the lr schedule's horizon (train.steps); 0 in older checkpoints
  std::string lineage;  // "" in checkpoints written before lineages existed
  BaseWeights base;     // a LoRA job's frozen base; empty otherwise and in older checkpoints
};

std::string trainer_state_json(const TrainerState& state, int world_size);

// folder/trainer_state.json; an unreadable or malformed file is an error naming it.
TrainerState read_trainer_state(const std::string& folder);

// A new lineage id: 16 random hex digits.
std::string new_lineage();

}  // namespace tessera::checkpoint
