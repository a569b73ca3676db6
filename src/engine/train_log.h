// What a training run tells people: a log line per logged step on rank 0 (step/total, loss, lr,
// grad norm, tokens/s, model TFLOP/s and MFU, memory, ETA), on a terminal a progress line
// rewritten every step in between, and, when log.metrics_file is set, one JSON object per logged
// step in that file (with peak_memory_gib; eval rows add eval_loss), read back by `tessera plot`. A
// metrics file that cannot be written (a full disk) is logged as an error when it happens and again
// at the end; training goes on without it.
#pragma once

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "core/device.h"

namespace tessera {

class TrainMetrics;

struct StepLog {
  int64_t step = 0, total_steps = 0;
  double loss = 0, lr = 0, grad_norm = 0;
  int64_t tokens = 0;     // tokens processed this step (whole global batch)
  double seconds = 0;     // wall time of this step
  double flops = 0;       // model FLOPs of this step (whole global batch)
  // This rank's device time of the step's forward + backward and of what follows it, the part of
  // that until the gradient norm is read, and the last step's AdamW behind (StepStats); the host's
  // time making the step's batches.
  double forward_backward_seconds = 0, update_seconds = 0, norm_seconds = 0, behind_seconds = 0;
  double data_seconds = 0;
  int world = 1;
  bool skipped = false;
};

class TrainLog {
 public:
  TrainLog(bool speaker, const std::string& metrics_file, int64_t every_steps, Device device);
  ~TrainLog();
  void step(const StepLog& s);  // every step; logs every `every_steps` and at the last
  void eval(int64_t step, double eval_loss);
  bool logs(int64_t step, int64_t total_steps) const { return step % every_steps_ == 0 || step == total_steps; }
  // Rank 0's metrics endpoint (log.metrics_port), given the same figures as the log; may be null.
  void set_metrics(TrainMetrics* metrics) { metrics_endpoint_ = metrics; }

 private:
  // Appends one row to the metrics file and flushes it; a failure is logged and ends the file.
  void write_row(int64_t step, const nlohmann::ordered_json& row);

  bool speaker_;
  std::string metrics_file_;
  std::string metrics_error_;  // why the metrics file stopped, "" while it is fine
  int64_t every_steps_;
  Device device_;
  double peak_tflops_;  // the device's dense bf16 peak, 0 when unknown (no MFU then)
  bool terminal_;
  std::FILE* metrics_ = nullptr;
  TrainMetrics* metrics_endpoint_ = nullptr;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  int64_t first_step_ = -1;  // the first step this run did (a resumed run starts mid-way)
};

}  // namespace tessera
