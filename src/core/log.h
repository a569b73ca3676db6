// Logging through spdlog with the rank in every line. Rank 0 logs from `info` up; other ranks
// only warnings and errors, so a job speaks once unless something is wrong on some rank.
// TESSERA_LOG_LEVEL (trace, debug, info, warn, error) overrides the level on every rank.
#pragma once

#include <spdlog/spdlog.h>

namespace tessera {

void init_logging(int rank, int world_size);

}  // namespace tessera
