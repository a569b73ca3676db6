#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

namespace tessera {

void init_logging(int rank, int world_size) {
  // stderr, so that commands which print data (ids, JSON) keep stdout clean.
  spdlog::drop("tessera");
  auto logger = spdlog::stderr_color_mt("tessera");
  if (world_size > 1)
    logger->set_pattern(fmt::format("[%H:%M:%S.%e] [rank {}] [%^%l%$] %v", rank));
  else
    logger->set_pattern("[%H:%M:%S.%e] [%^%l%$] %v");
  logger->set_level(rank == 0 ? spdlog::level::info : spdlog::level::warn);
  if (const char* level = std::getenv("TESSERA_LOG_LEVEL")) logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
}

}  // namespace tessera
