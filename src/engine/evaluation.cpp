#include "engine/evaluation.h"

#include <algorithm>

#include "core/error.h"
#include "model/transformer.h"

namespace tessera {

EvalTotals eval_loss(const ModelConfig& config, ParamSource& source, const std::vector<TokenBatch>& batches) {
  EvalTotals totals;
  for (const TokenBatch& b : batches) {
    if (b.num_targets == 0) continue;  // all prompt or padding: nothing to score
    double sum = 0;
    run_model(config, source, b, {}, &sum);
    totals.loss_sum += sum;
    totals.targets += b.num_targets;
  }
  return totals;
}

EvalTotals evaluate_dataset(const ModelConfig& config, ParamSource& source, const data::DataLoader& data,
                            int64_t batch_size, Communicator& host, const World& world, Device device) {
  TS_CHECK(batch_size > 0, "evaluation batch size must be positive, got {}", batch_size);
  const int64_t n = data.num_sequences(), batches = (n + batch_size - 1) / batch_size;
  // Slot b holds batch b's loss sum and targets; every other rank leaves it 0, so the sum is exact.
  Tensor slots = Tensor::from_vector<float>(std::vector<float>(2 * batches, 0.0f), {2 * batches}, DType::F32);
  float* s = slots.data_as<float>();
  for (int64_t b = world.rank; b < batches; b += world.size) {
    const int64_t first = b * batch_size;
    TokenBatch batch = make_token_batch(data.sequences(first, std::min(n, first + batch_size)), device);
    batch.first_token = first * data.seq_len();
    const EvalTotals t = eval_loss(config, source, {batch});
    s[2 * b] = static_cast<float>(t.loss_sum);
    s[2 * b + 1] = static_cast<float>(t.targets);
  }
  host.all_reduce(slots, ReduceOp::Sum).wait();
  EvalTotals totals;
  for (int64_t b = 0; b < batches; ++b) {
    totals.loss_sum += s[2 * b];
    totals.targets += static_cast<int64_t>(s[2 * b + 1]);
  }
  return totals;
}

}  // namespace tessera
