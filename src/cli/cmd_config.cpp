// `tessera config FILE [--set key=value ...]`: validates a job config and prints it resolved,
// defaults and overrides included.
#include <cstdio>

#include "cli/commands.h"
#include "engine/config/job_config.h"

namespace tessera::cli {

void add_config_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("config", "Validate a job config and print it with defaults and --set applied");
  auto job = add_job_args(cmd);
  cmd->callback([job] { std::fputs(to_yaml(load_job_config(job->file, job->overrides)).c_str(), stdout); });
}

}  // namespace tessera::cli
