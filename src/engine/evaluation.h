// The loss of a model over packed sequences, computed one way for both of its users: the trainer's
// periodic eval (eval.batches global batches of data.eval) and `tessera eval` (every sequence of a
// data file). Tokens are counted as the trainer counts them: the targets (labels that are not
// -100), so a prompt's tokens in prompt/completion or chat data do not count.
#pragma once

#include <cmath>
#include <vector>

#include "comm/communicator.h"
#include "comm/world.h"
#include "io/data/data_loader.h"
#include "model/model_config.h"
#include "model/param_source.h"
#include "model/token_batch.h"

namespace tessera {

struct EvalTotals {
  double loss_sum = 0;  // summed next-token cross-entropy (nats)
  int64_t targets = 0;
  double loss() const { return loss_sum / static_cast<double>(std::max<int64_t>(1, targets)); }
  double perplexity() const { return std::exp(loss()); }
};

// The forward of each batch; its summed loss and targets, on this rank (a batch without targets,
// all prompt or padding, adds nothing).
EvalTotals eval_loss(const ModelConfig& config, ParamSource& source, const std::vector<TokenBatch>& batches);

// Every sequence of `data` once, in batches of `batch_size` consecutive sequences dealt round robin
// over the ranks. Each batch's sums go into a slot of its own and are added in batch order after
// the all-reduce, so the totals are the same, bit for bit, on any number of ranks.
EvalTotals evaluate_dataset(const ModelConfig& config, ParamSource& source, const data::DataLoader& data,
                            int64_t batch_size, Communicator& host, const World& world, Device device);

}  // namespace tessera
