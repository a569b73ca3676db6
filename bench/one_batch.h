// What the engine benchmarks share: the Generator's options for one batch of `batch` requests run
// to the end on the calling thread (no queue waits, the whole prompt prefilled in one step).
#pragma once

#include <algorithm>
#include <cstdint>

#include "engine/inference/generator.h"

namespace tessera {

inline inference::GeneratorOptions one_batch_options(int64_t batch, int64_t prompt, int64_t fresh) {
  inference::GeneratorOptions options;
  options.max_batch_size = batch;
  options.max_batch_tokens = std::max<int64_t>(2048, batch * prompt);
  options.max_seq_len = prompt + fresh;
  options.max_queue = batch;
  options.worker_thread = false;
  return options;
}

}  // namespace tessera
