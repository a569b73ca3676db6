// `mpirun -np N tessera train JOB.yaml [--set key=value ...]`: ZeRO data-parallel training.
#include "cli/commands.h"
#include "engine/trainer.h"

namespace tessera::cli {

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train or fine-tune a model as a job config describes (run under mpirun)");
  auto job = add_job_args(cmd);
  cmd->callback([job] { run_training(load_job_config(job->file, job->overrides), World::init()); });
}

}  // namespace tessera::cli
