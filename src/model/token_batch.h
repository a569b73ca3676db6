// A batch as the model sees it: B rows of S tokens, flattened to T = B * S rows of activations.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "io/data/sequence.h"

namespace tessera {

struct TokenBatch {
  int64_t batch = 0, seq = 0;
  Tensor ids;          // [T] int32
  Tensor positions;    // [T] int32: the position within its document (restarts in packed rows)
  Tensor labels;       // [T] int32: the token to predict, -100 where no loss is taken
  Tensor segment_ids;  // [B, S] int32, or undefined: tokens attend only within their segment
  int64_t num_targets = 0;  // labels that are not -100; the loss is their mean
  // Where its first token sits in the whole global batch of a training step (all ranks and
  // micro-batches before it): random streams counted from it (LoRA dropout) do not depend on
  // how the global batch is split.
  int64_t first_token = 0;

  int64_t tokens() const { return batch * seq; }

  // Plain causal language modelling on [B, S] ids (int64 or int32, host): every token predicts
  // the next one in its row, the last of each row predicts nothing (the transformers convention).
  static TokenBatch causal_lm(const Tensor& input_ids, Device device);
};

// Stacks packed sequences (io/data) into a batch (B = sequences, S = their common length) on `device`.
TokenBatch make_token_batch(const std::vector<data::Sequence>& sequences, Device device);

}  // namespace tessera
