// `tessera config FILE [--set key=value ...]`: validates a job config and prints it resolved,
// defaults and overrides included.
#include <cstdio>

#include "cli/commands.h"
#include "engine/config/job_config.h"

namespace tessera::cli {

void add_config_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("config", "Validate a job config and print it with defaults and --set applied");
  auto file = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("file", *file, "YAML job config")->required();
  cmd->add_option("--set", *overrides, "Override a key: --set train.steps=6 (repeatable)");
  cmd->callback([file, overrides] { std::fputs(to_yaml(load_job_config(*file, *overrides)).c_str(), stdout); });
}

}  // namespace tessera::cli
