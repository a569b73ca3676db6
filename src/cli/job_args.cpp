#include "cli/commands.h"

namespace tessera::cli {

std::shared_ptr<JobArgs> add_job_args(CLI::App* cmd) {
  auto args = std::make_shared<JobArgs>();
  cmd->add_option("config", args->file, "YAML job config")->required();
  cmd->add_option("--set", args->overrides, "Override a key: --set train.steps=6 (repeatable)");
  return args;
}

}  // namespace tessera::cli
