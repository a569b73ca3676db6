// The one-line error of loading a job config, for the tests of the config's keys.
#pragma once

#include <string>
#include <vector>

#include "engine/config/job_config.h"
#include "error_text.h"
#include "test_dir.h"

namespace tessera::testing_util {

// The error of loading a job file holding `yaml` with `overrides` applied (kNoError when it
// loads), the file shown as job.yaml.
inline std::string job_config_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  const std::string path = write_temp_file("job.yaml", yaml);
  return error_of([&] { load_job_config(path, overrides); }, path, "job.yaml");
}

}  // namespace tessera::testing_util
