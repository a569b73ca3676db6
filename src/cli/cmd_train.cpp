// `mpirun -np N tessera train JOB.yaml [--set key=value ...]`: ZeRO data-parallel training; with
// log.metrics_port, rank 0 serves /metrics and /health through engine/server's MetricsListener.
#include "cli/commands.h"
#include "engine/server/http_listener.h"
#include "engine/trainer.h"

namespace tessera::cli {

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Train or fine-tune a model as a job config describes (run under mpirun)");
  auto job = add_job_args(cmd);
  cmd->callback([job] {
    const metrics::ServeFn serve = [](const metrics::Registry& registry, const std::string& host, int port) {
      return std::make_unique<server::MetricsListener>(registry, host, port);
    };
    run_training(load_job_config(job->file, job->overrides), World::init(), serve);
  });
}

}  // namespace tessera::cli
