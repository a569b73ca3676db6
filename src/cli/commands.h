// Each `tessera` subcommand adds itself to the app; its callback does the work.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

namespace tessera::cli {

// A job config file (positional) and its `--set key=value` overrides, as the commands that run
// or inspect a job take them; filled in when the command line is parsed.
struct JobArgs {
  std::string file;
  std::vector<std::string> overrides;
};
std::shared_ptr<JobArgs> add_job_args(CLI::App* cmd);

void add_version_command(CLI::App& app);
void add_env_command(CLI::App& app);
void add_config_command(CLI::App& app);
void add_selftest_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_estimate_memory_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_prepare_data_command(CLI::App& app);

}  // namespace tessera::cli
