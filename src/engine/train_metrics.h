// What rank 0 of `tessera train` serves on log.metrics_port: GET /metrics in Prometheus' text
// format and GET /health, while the job runs. The step's figures are those of the log line and
// log.metrics_file (TrainLog hands them over every step); every rank's memory, GPU, NVMe and
// time-split figures arrive at log steps (gather_rank_figures); checkpoints as they are written.
// A scrape sees one moment: figures are kept under a lock and copied into the gauges when asked.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/metrics/endpoint.h"
#include "engine/metrics/registry.h"
#include "engine/rank_figures.h"

namespace tessera {

struct StepLog;

// The figures TrainLog derives from a StepLog.
struct StepFigures {
  double tokens_per_s = 0, tflops_per_rank = 0;
  double mfu = -1;  // -1: the device's peak is not known
};

class TrainMetrics {
 public:
  // Binds host:port through `serve` at once: a port in use is one tessera::Error naming
  // log.metrics_port, before any work starts.
  TrainMetrics(const metrics::ServeFn& serve, const std::string& host, int port);
  ~TrainMetrics();

  int port() const { return endpoint_->port(); }
  void step(const StepLog& s, const StepFigures& f);
  void eval(int64_t step, double eval_loss);
  void checkpoint(int64_t step);
  void ranks(std::vector<RankFigures> all);

 private:
  void collect();

  struct State;
  std::mutex mutex_;
  std::unique_ptr<State> state_;
  metrics::Registry registry_;
  std::unique_ptr<metrics::Endpoint> endpoint_;  // last: it stops serving before the rest goes
};

}  // namespace tessera
