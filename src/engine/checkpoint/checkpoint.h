// Checkpoints that do not depend on the world size and never look complete when they are not.
//
// A checkpoint is the folder <dir>/step-<N> holding state.h5 (every parameter's fp32 master weights
// and Adam moments, whole, under its HF name), trainer_state.json (step, skipped steps, data-loader
// state, lr schedule horizon, world size) and config.yaml (the resolved job). It is written under a temporary name by
// all ranks (each its own slices), fsync'd, sealed with COMPLETE (SHA-256 of every file), then
// renamed into place; only then are older ones beyond checkpoint.keep_last deleted. A job saved on
// any number of ranks resumes on any other.
#pragma once

#include <string>

#include "comm/communicator.h"
#include "io/data/data_loader.h"
#include "zero/zero_store.h"

namespace tessera::checkpoint {

struct TrainerState {
  int64_t step = 0;
  int64_t skipped_steps = 0;
  data::LoaderState loader;  // where the sample stream goes on
  int64_t schedule_steps = 0;  // the lr schedule's horizon (train.steps); 0 in older checkpoints
};

// Every rank calls it; host is the MPI communicator over all ranks. Returns the folder written.
std::string save(const std::string& dir, ZeroStore& store, const TrainerState& state, const std::string& config_yaml,
                 int64_t keep_last, Communicator& host);

// The checkpoint to resume from: `resume` is auto (the newest complete and intact step-<N> in
// `dir`; incomplete or corrupted ones are named in a warning and skipped), never, or a folder
// (which must be complete and intact). "" when there is none. Every rank gets the same answer.
std::string find(const std::string& dir, const std::string& resume, Communicator& host);

// Loads this rank's slices of the state (any world size) and returns the trainer state.
TrainerState load(const std::string& folder, ZeroStore& store);

}  // namespace tessera::checkpoint
