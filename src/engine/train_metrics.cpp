#include "engine/train_metrics.h"

#include "core/error.h"
#include "core/log.h"
#include "engine/metrics/gpu_metrics.h"
#include "engine/train_log.h"

namespace tessera {

using Clock = std::chrono::steady_clock;

struct TrainMetrics::State {
  bool stepped = false;
  StepLog step;
  StepFigures figures;
  double tokens = 0;
  int64_t skipped = 0;
  int64_t eval_step = -1;
  double eval_loss = 0;
  int64_t checkpoints = 0, checkpoint_step = -1;
  Clock::time_point checkpoint_time;
  std::vector<RankFigures> ranks;
};

namespace {

// A counter mirroring a total kept elsewhere.
void mirror(metrics::Counter& counter, double total) {
  if (total > counter.value()) counter.inc(total - counter.value());
}

}  // namespace

TrainMetrics::TrainMetrics(const metrics::ServeFn& serve, const std::string& host, int port)
    : state_(std::make_unique<State>()) {
  TS_CHECK(serve, "log.metrics_port: this program cannot serve HTTP (tessera train can)");
  registry_.on_collect([this] { collect(); });
  add_gpu_metrics(registry_);
  endpoint_ = with_context("log.metrics_port", [&] { return serve(registry_, host, port); });
  spdlog::info("metrics: serving http://{}:{}/metrics and /health", host, endpoint_->port());
}

TrainMetrics::~TrainMetrics() = default;

void TrainMetrics::step(const StepLog& s, const StepFigures& f) {
  std::lock_guard lock(mutex_);
  State& st = *state_;
  st.stepped = true;
  st.step = s;
  st.figures = f;
  st.tokens += static_cast<double>(s.tokens);
  st.skipped += s.skipped ? 1 : 0;
}

void TrainMetrics::eval(int64_t step, double eval_loss) {
  std::lock_guard lock(mutex_);
  state_->eval_step = step;
  state_->eval_loss = eval_loss;
}

void TrainMetrics::checkpoint(int64_t step) {
  std::lock_guard lock(mutex_);
  ++state_->checkpoints;
  state_->checkpoint_step = step;
  state_->checkpoint_time = Clock::now();
}

void TrainMetrics::ranks(std::vector<RankFigures> all) {
  std::lock_guard lock(mutex_);
  state_->ranks = std::move(all);
}

void TrainMetrics::collect() {
  std::lock_guard lock(mutex_);
  const State& st = *state_;
  metrics::Registry& r = registry_;
  if (st.stepped) {
    const StepLog& s = st.step;
    r.gauge("tessera_train_step", "The last step done").set(double(s.step));
    r.gauge("tessera_train_total_steps", "The steps the job runs to (train.steps)").set(double(s.total_steps));
    r.gauge("tessera_train_loss", "Training loss of the last step (mean over the global batch's targets)").set(s.loss);
    r.gauge("tessera_train_learning_rate", "Learning rate of the last step").set(s.lr);
    r.gauge("tessera_train_grad_norm", "Global gradient norm of the last step, before clipping").set(s.grad_norm);
    r.gauge("tessera_train_step_seconds", "Wall time of the last step").set(s.seconds);
    r.gauge("tessera_train_tokens_per_second", "Tokens per second of the last step (whole global batch)")
        .set(st.figures.tokens_per_s);
    r.gauge("tessera_train_tflops_per_rank", "Model TFLOP/s per rank of the last step").set(st.figures.tflops_per_rank);
    if (st.figures.mfu >= 0)
      r.gauge("tessera_train_mfu_ratio", "Model FLOPs utilisation of the last step (of the GPU's dense bf16 peak)")
          .set(st.figures.mfu);
    mirror(r.counter("tessera_train_tokens_total", "Tokens trained on by this process"), st.tokens);
    mirror(r.counter("tessera_train_skipped_steps_total", "Steps skipped by this process: gradients not finite"),
           double(st.skipped));
  }
  if (st.eval_step >= 0) {
    r.gauge("tessera_train_eval_step", "The step of the last evaluation").set(double(st.eval_step));
    r.gauge("tessera_train_eval_loss", "Loss on data.eval at the last evaluation").set(st.eval_loss);
  }
  mirror(r.counter("tessera_train_checkpoints_total", "Checkpoints written by this process"), double(st.checkpoints));
  if (st.checkpoint_step >= 0) {
    r.gauge("tessera_train_last_checkpoint_step", "The step of the last checkpoint written").set(double(st.checkpoint_step));
    r.gauge("tessera_train_last_checkpoint_age_seconds", "Seconds since the last checkpoint was written")
        .set(std::chrono::duration<double>(Clock::now() - st.checkpoint_time).count());
  }
  for (size_t i = 0; i < st.ranks.size(); ++i) {
    const RankFigures& f = st.ranks[i];
    const metrics::Labels rank{{"rank", std::to_string(i)}};
    r.gauge("tessera_train_memory_bytes", "Memory held by tensors on the rank's training device (last log step)", rank)
        .set(f.memory_bytes);
    r.gauge("tessera_train_memory_peak_bytes", "Peak memory held by tensors on the rank's training device", rank)
        .set(f.peak_memory_bytes);
    r.gauge("tessera_train_host_memory_bytes", "Host memory held by the rank's tensors and pinned buffers", rank)
        .set(f.host_memory_bytes);
    mirror(r.counter("tessera_train_nvme_read_bytes_total", "Bytes the rank read from its NVMe offload files", rank),
           f.nvme_read_bytes);
    mirror(r.counter("tessera_train_nvme_written_bytes_total", "Bytes the rank wrote to its NVMe offload files", rank),
           f.nvme_written_bytes);
    if (f.gpu_utilization >= 0) {
      r.gauge("tessera_train_gpu_utilization_ratio", "The rank's GPU: fraction of the last sample period a kernel ran",
              rank).set(f.gpu_utilization);
      r.gauge("tessera_train_gpu_power_watts", "The rank's GPU: power draw", rank).set(f.gpu_power_watts);
    }
    const std::pair<const char*, double> phases[] = {{"compute", f.seconds.compute},
                                                     {"collectives", f.seconds.collectives},
                                                     {"optimizer", f.seconds.optimizer},
                                                     {"checkpoint", f.seconds.checkpoint},
                                                     {"data", f.seconds.data}};
    for (const auto& [phase, seconds] : phases)
      mirror(r.counter("tessera_train_phase_seconds_total",
                       "Seconds the rank spent in each phase of training: compute, waiting on collectives, the "
                       "optimizer step, checkpoints, data loading",
                       {{"rank", std::to_string(i)}, {"phase", phase}}),
             seconds);
  }
}

}  // namespace tessera
