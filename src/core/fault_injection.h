// A test hook for failures that are hard to cause on purpose (a full disk, a kill half-way through
// deleting a folder). TESSERA_FAULT_INJECT=<point> makes the code at that point fail as the real
// failure would: a write whose file is named <point> (state.h5, trainer_state.json, config.yaml,
// COMPLETE, the metrics file's name, ...) fails with ENOSPC; kill:<file> kills the process with
// SIGKILL at that write instead (a job or export killed mid-write: files written through
// AtomicFile are killed half-way through a write); "prune" stops a checkpoint's deletion right
// after its first step. Unset, it costs one getenv per checked write.
#pragma once

#include <string>
#include <string_view>

namespace tessera {

// True when TESSERA_FAULT_INJECT is set to `point`.
bool fault_injected(std::string_view point);

// ENOSPC when TESSERA_FAULT_INJECT names the file `path` (its last component), else 0; with
// kill:<that name>, the process dies here by SIGKILL.
int injected_write_error(const std::string& path);

// strerror(error), with " (injected by TESSERA_FAULT_INJECT)" when `injected`.
std::string error_text(int error, bool injected = false);

}  // namespace tessera
