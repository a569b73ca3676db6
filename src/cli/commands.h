// Each `tessera` subcommand adds itself to the app; its callback does the work.
#pragma once

#include <CLI/CLI.hpp>

namespace tessera::cli {

void add_version_command(CLI::App& app);
void add_env_command(CLI::App& app);
void add_config_command(CLI::App& app);
void add_selftest_command(CLI::App& app);
void add_forward_command(CLI::App& app);
void add_tokenize_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_estimate_memory_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_prepare_data_command(CLI::App& app);

}  // namespace tessera::cli
