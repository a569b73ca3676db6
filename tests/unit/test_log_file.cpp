// log_file: the log also goes to a file that rotates at its size, keeping a bounded number.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "core/log.h"

using namespace tessera;
namespace fs = std::filesystem;

TEST(LogFile, RotatesAndKeepsCount) {
  const fs::path dir = fs::temp_directory_path() / ("tessera-log-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  init_logging(0, 1);
  add_log_file((dir / "serve").string(), 2000, 2);
  for (int i = 0; i < 200; ++i) spdlog::info("access: line {} of a long-running server's log", i);
  spdlog::default_logger()->flush();
  EXPECT_TRUE(fs::exists(dir / "serve"));
  EXPECT_TRUE(fs::exists(dir / "serve.1"));
  EXPECT_TRUE(fs::exists(dir / "serve.2"));
  EXPECT_FALSE(fs::exists(dir / "serve.3"));
  EXPECT_LE(fs::file_size(dir / "serve"), 2000u);
  init_logging(0, 1);  // the console alone again for the other tests
  EXPECT_THROW(add_log_file("/proc/no/such/dir/serve.log", 2000, 2), Error);
  init_logging(0, 1);
  fs::remove_all(dir);
}
