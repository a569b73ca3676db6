// `mpirun -np N tessera train JOB.yaml [--set key=value ...]`: ZeRO data-parallel training.
#include "cli/commands.h"
#include "engine/trainer.h"

namespace tessera::cli {

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train or fine-tune a model as a job config describes (run under mpirun)");
  auto file = std::make_shared<std::string>();
  auto overrides = std::make_shared<std::vector<std::string>>();
  cmd->add_option("config", *file, "YAML job config")->required();
  cmd->add_option("--set", *overrides, "Override a key: --set train.steps=6 (repeatable)");
  cmd->callback([file, overrides] {
    const JobConfig job = load_job_config(*file, *overrides);
    run_training(job, World::init());
  });
}

}  // namespace tessera::cli
