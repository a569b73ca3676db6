// Checkpoints that do not depend on the world size and never look complete when they are not.
//
// A checkpoint is the folder <dir>/step-<N> holding state.h5 (every parameter's fp32 master weights
// and Adam moments, whole, under its HF name), trainer_state.json (step, skipped steps, data-loader
// state, lr schedule horizon, world size, lineage) and config.yaml (the resolved job). It is written
// under a temporary name by all ranks (each its own slices), every write, flush and close checked,
// fsync'd, sealed with
// COMPLETE (SHA-256 of every file, read back), then renamed into place; only then are older ones of
// the same lineage beyond checkpoint.keep_last deleted. A save that fails is an error on every rank
// naming the file and the cause, and leaves the checkpoints before it as they were. A job saved on
// any number of ranks resumes on any other.
#pragma once

#include <string>

#include "comm/communicator.h"
#include "engine/checkpoint/trainer_state.h"
#include "zero/zero_store.h"

namespace tessera::checkpoint {

// Every rank calls it; host is the MPI communicator over all ranks. Returns the folder written;
// throws (on every rank) when it could not be written, without pruning.
std::string save(const std::string& dir, ZeroStore& store, const TrainerState& state, const std::string& config_yaml,
                 int64_t keep_last, Communicator& host);

// The checkpoint to resume from: `resume` is auto (the newest complete and intact step-<N> in
// `dir`; incomplete or corrupted ones are named in a warning and skipped), never, or a folder
// (which must be complete and intact). "" when there is none. Every rank gets the same answer.
std::string find(const std::string& dir, const std::string& resume, Communicator& host);

// find(), after the checks a job makes before step 1 (every rank; errors on every rank): `dir`
// ("" for none) must be a writable folder with room for a checkpoint of `store`; names in it that
// are not checkpoints are warned about; and when the job would start from step 0 while `dir`
// holds step-<N> folders (resume never, or none of them intact), it fails naming them, unless
// `overwrite`, which deletes them.
std::string start(const std::string& dir, const std::string& resume, bool overwrite, const ZeroStore& store,
                  Communicator& host);

// Loads this rank's slices of the state (any world size) and returns the trainer state.
TrainerState load(const std::string& folder, ZeroStore& store);

}  // namespace tessera::checkpoint
