// `tessera estimate-memory JOB.yaml --ranks N`: per-rank memory by ZeRO stage, before running.
#include <cstdio>

#include "cli/commands.h"
#include "cli/flag_checks.h"
#include "engine/memory_estimate.h"
#include "engine/model_loader.h"

namespace tessera::cli {

namespace {

double gib(double bytes) { return bytes / 1073741824.0; }

void print_estimate(const std::string& file, const std::vector<std::string>& overrides, int ranks) {
  const JobConfig job = load_job_config(file, overrides);
  const ModelConfig model = job_model_config(job.model);
  std::printf("per-rank memory (GiB) on %d rank(s), micro-batch %ld x %ld tokens, %s%s\n", ranks,
              job.train.micro_batch_size, job.data.seq_len, job.train.dtype.c_str(),
              job.train.activation_checkpointing   ? ", activation checkpointing"
              : job.train.recompute_norms_swiglu ? ", norms and SwiGLU recomputed"
                                                 : "");
  std::printf("%-6s %9s %9s %9s %9s %9s %11s %9s %9s %9s\n", "stage", "working", "master", "adam m,v", "grads",
              "gathered", "activations", "device", "host", "disk");
  for (const MemoryEstimate& e : estimate_memory(model, job, ranks))
    std::printf("%-6d %9.2f %9.2f %9.2f %9.2f %9.2f %11.2f %9.2f %9.2f %9.2f%s\n", e.stage, gib(e.working),
                gib(e.master), gib(e.moments), gib(e.gradients), gib(e.gathered), gib(e.activations), gib(e.total()),
                gib(e.host), gib(e.disk), e.stage == job.zero.stage ? "  <- zero.stage" : "");
  std::printf("zero.offload_optimizer.device: %s (gradients: %s), zero.offload_params.device: %s (stage 3 only)\n"
              "host = pinned memory, disk = swap files, per rank\n",
              job.zero.offload_optimizer.device.c_str(), job.zero.offload_optimizer.gradients.c_str(),
              job.zero.offload_params.device.c_str());
}

}  // namespace

void add_estimate_memory_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("estimate-memory", "Per-rank memory of a job by ZeRO stage, before running it");
  auto job = add_job_args(cmd);
  auto ranks = std::make_shared<int>(1);
  cmd->add_option("--ranks", *ranks, "number of ranks")->check(positive())->capture_default_str();
  cmd->callback([job, ranks] { print_estimate(job->file, job->overrides, *ranks); });
}

}  // namespace tessera::cli
