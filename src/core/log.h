// Logging through spdlog with the rank in every line. Rank 0 logs from `info` up; other ranks
// only warnings and errors, so a job speaks once unless something is wrong on some rank.
// TESSERA_LOG_LEVEL (trace, debug, info, warn, error) overrides the level on every rank.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace tessera {

void init_logging(int rank, int world_size);

// Also writes the log to `path`, rotating to path.1, path.2, ... at `max_bytes`, keeping
// `max_files` old files (a long-running server's log). An unwritable path is an Error.
void add_log_file(const std::string& path, size_t max_bytes, size_t max_files);

}  // namespace tessera
