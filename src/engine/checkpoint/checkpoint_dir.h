// checkpoint.dir as a whole: which of its entries are checkpoints, whether a job can write there,
// and deleting checkpoints so that no moment leaves a folder that looks complete and is not.
// Rank-local: the checkpoint code calls these on rank 0.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace tessera::checkpoint {

struct StepFolder {
  int64_t step;
  std::filesystem::path path;
};

// The step-<N> folders of `dir`, newest first ({} when dir does not exist). Hidden names (ours:
// saves under way, folders being deleted) are skipped; so are other names, and with `warn` each
// folder that is not step-<N> and each step-... name that is not a checkpoint (step-abc, a file,
// a step beyond 2^63) is named in a warning.
std::vector<StepFolder> step_folders(const std::string& dir, bool warn = false);

// Fails unless `dir` is a folder (made when missing) that takes a write and has room for `bytes`
// more: "checkpoint.dir: DIR is not a folder", "...: cannot write there: ...", "... MiB free".
// Folders whose deletion was interrupted are removed.
void check_writable(const std::string& dir, int64_t bytes);

// Deletes a checkpoint folder: renamed to a hidden name (atomically no longer a checkpoint), then
// removed. Errors name the folder.
void discard(const std::filesystem::path& folder);

// checkpoint.keep_last after step `step` of `lineage` was saved and verified: deletes that
// lineage's checkpoints older than it beyond the newest `keep_last` (counting `step`). Folders of
// another lineage, newer ones, and ones whose trainer_state.json does not parse are never touched.
// A failed deletion is a warning.
void prune(const std::string& dir, const std::string& lineage, int64_t step, int64_t keep_last);

}  // namespace tessera::checkpoint
