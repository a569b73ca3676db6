// The one-line error of loading a job config, for the tests of the config's keys.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/config/job_config.h"
#include "error_text.h"

namespace tessera::testing_util {

// The error of loading a job file holding `yaml` with `overrides` applied (kNoError when it
// loads), the file shown as job.yaml.
inline std::string job_config_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("tessera-job-" + std::to_string(::getpid()) + ".yaml")).string();
  std::ofstream(path) << yaml;
  return error_of([&] { load_job_config(path, overrides); }, path, "job.yaml");
}

}  // namespace tessera::testing_util
