#include "core/log.h"

#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>

#include "core/error.h"

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

void add_log_file(const std::string& path, size_t max_bytes, size_t max_files) {
  std::shared_ptr<spdlog::sinks::rotating_file_sink_mt> sink;
  try {
    sink = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(path, max_bytes, max_files);
  } catch (const spdlog::spdlog_ex& e) {
    fail("log_file {}: cannot write it: {}", path, e.what());
  }
  sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");  // dates: files outlive a day
  auto logger = spdlog::default_logger();
  logger->sinks().push_back(sink);
  logger->flush_on(spdlog::level::info);
}

}  // namespace tessera
