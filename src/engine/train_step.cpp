#include "engine/train_step.h"

#include "core/error.h"
#include "model/transformer.h"

namespace tessera {

StepStats train_step(ZeroStore& store, Communicator& host_comm, const std::vector<TokenBatch>& micro_batches,
                     const ops::AdamWStep& adam, double clip_norm, bool activation_checkpointing,
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
                           .activation_checkpointing = activation_checkpointing,
                           .grad_scale = static_cast<float>(1.0 / targets),
                           .lora_dropout = lora_dropout};
  double local_loss = 0;
  for (const TokenBatch& b : micro_batches) {
    double loss_sum = 0;
    run_model(store.config(), source ? *source : store, b, options, &loss_sum);
    local_loss += loss_sum;
  }
  Tensor loss = Tensor::from_vector<float>({static_cast<float>(local_loss)}, {1}, DType::F32);
  host_comm.all_reduce(loss, ReduceOp::Sum).wait();

  const StepResult result = store.step(adam, clip_norm);
  return {loss.data_as<float>()[0] / targets, result.grad_norm, result.skipped, static_cast<int64_t>(targets)};
}

}  // namespace tessera
