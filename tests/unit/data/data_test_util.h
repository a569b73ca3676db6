// Helpers shared by the data tests: scratch files and error matching.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "error_text.h"
#include "test_dir.h"
#include "io/data/data_options.h"
#include "io/data/sequence.h"

namespace tessera::data::testing {

inline std::string data_path(const std::string& rel) { return std::string(TESSERA_TEST_DATA) + "/" + rel; }

// A fresh folder per test under the system temp folder.
inline std::filesystem::path scratch_dir() { return testing_util::fresh_test_dir("tessera-data"); }

inline std::string write_file(const std::filesystem::path& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
  return path.string();
}

inline DataOptions data_section(const std::string& train, int64_t seq_len, const std::string& format = "auto") {
  DataOptions d;
  d.train = train;
  d.seq_len = seq_len;
  d.format = format;
  return d;
}

using testing_util::error_of;
using testing_util::kNoError;

inline std::vector<int32_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace tessera::data::testing
