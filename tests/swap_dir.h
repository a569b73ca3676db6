// A fresh folder for swap files under the build tree (a real disk, unlike /tmp on some machines),
// named after the running test and removed afterwards.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace tessera::testing_util {

struct SwapDir {
  SwapDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = std::filesystem::path(TESSERA_BIN_DIR).parent_path() / "nvme-tests" /
           (std::string(info->name()) + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~SwapDir() { std::filesystem::remove_all(path); }
  std::filesystem::path path;
};

}  // namespace tessera::testing_util
