#include "engine/train_step.h"

#include <chrono>

#include "core/error.h"
#include "core/stream.h"
#include "model/transformer.h"

namespace tessera {

namespace {

// Marks on the step's timeline: CUDA timing events on the device's current stream (what the step's
// kernels run on), host clock readings on the CPU, where every op is done when it returns.
class StepTimeline {
 public:
  explicit StepTimeline(Device device) : device_(device) {}
  void mark(size_t at) {
    if (device_.is_cuda())
      events_[at].record(current_stream(device_.index));
    else
      clocks_[at] = std::chrono::steady_clock::now();
  }
  // Seconds between two marks; waits for the later one.
  double seconds(size_t from, size_t to) const {
    if (!device_.is_cuda()) return std::chrono::duration<double>(clocks_[to] - clocks_[from]).count();
    events_[to].synchronize();
    return elapsed_ms(events_[from], events_[to]) / 1e3;
  }

 private:
  Device device_;
  Event events_[4] = {Event(true), Event(true), Event(true), Event(true)};
  std::chrono::steady_clock::time_point clocks_[4];
};

}  // namespace

StepStats train_step(ZeroStore& store, Communicator& host_comm, const std::vector<TokenBatch>& micro_batches,
                     const ops::AdamWStep& adam, double clip_norm, RecomputePlan recompute,
                     const PassDropout& lora_dropout, ParamSource* source) {
  // [targets, loss sum] over the whole global batch.
  Tensor totals = Tensor::from_vector<float>({0.0f, 0.0f}, {2}, DType::F32);
  double local_targets = 0;
  for (const TokenBatch& b : micro_batches) local_targets += static_cast<double>(b.num_targets);
  Tensor count = Tensor::from_vector<float>({static_cast<float>(local_targets)}, {1}, DType::F32);
  host_comm.all_reduce(count, ReduceOp::Sum).wait();
  const double targets = count.data_as<float>()[0];
  // No targets in the whole global batch: every rank sees the same count and skips the step alike
  // (no forward, no backward, no update).
  if (targets == 0) return {.loss = 0, .grad_norm = 0, .skipped = true, .targets = 0};

  const RunOptions options{.backward = true,
                           .recompute = recompute,
                           .grad_scale = static_cast<float>(1.0 / targets),
                           .lora_dropout = lora_dropout};
  StepTimeline timeline(store.device());
  timeline.mark(0);
  double local_loss = 0;
  for (const TokenBatch& b : micro_batches) {
    if (&b == &micro_batches.back()) store.final_backward();
    double loss_sum = 0;
    run_model(store.config(), source ? *source : store, b, options, &loss_sum);
    local_loss += loss_sum;
  }
  timeline.mark(1);
  const double behind = store.take_behind_seconds();  // the last step's updates, done by now
  Tensor loss = Tensor::from_vector<float>({static_cast<float>(local_loss)}, {1}, DType::F32);
  host_comm.all_reduce(loss, ReduceOp::Sum).wait();

  const auto optimizer_start = std::chrono::steady_clock::now();
  const double blocked = Work::blocked_seconds();
  const StepResult result = store.step(adam, clip_norm, [&] { timeline.mark(2); });
  const double optimizer_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - optimizer_start).count() -
      (Work::blocked_seconds() - blocked);
  timeline.mark(3);
  return {.loss = loss.data_as<float>()[0] / targets,
          .grad_norm = result.grad_norm,
          .skipped = result.skipped,
          .targets = static_cast<int64_t>(targets),
          .optimizer_seconds = optimizer_seconds,
          .forward_backward_seconds = timeline.seconds(0, 1),
          .update_seconds = timeline.seconds(1, 3),
          .norm_seconds = timeline.seconds(1, 2),
          .behind_seconds = behind};
}

}  // namespace tessera
