// Training data for the trainer: packed sequences of data.train (a data file, tokenized when the
// loader starts and kept in memory, or a prepare-data folder, memory-mapped), served as global
// batches that do not depend on the world size.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/device.h"
#include "io/data/data_options.h"
#include "io/data/sequence.h"
#include "io/tokenizer/tokenizer.h"

namespace tessera::data {

struct LoaderState {  // small, goes into checkpoints
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t position = 0;  // sequences of this epoch already served
};

enum class Split { train, eval };

class DataLoader {
 public:
  // Opens data.train (or data.eval), tokenizes and packs. Every data error surfaces here, before
  // training starts. A prepare-data folder must match data.seq_len and the tokenizer.
  DataLoader(const DataOptions& data, const tok::Tokenizer& tokenizer, uint64_t seed, Split split = Split::train);

  int64_t num_sequences() const { return count_; }
  int64_t seq_len() const { return seq_len_; }
  const std::string& path() const { return path_; }

  // Global batch `step` is `global_batch` sequences of a seeded shuffle of all sequences,
  // reshuffled every epoch; an epoch is num_sequences / global_batch batches (the remainder waits
  // for a later epoch's shuffle). Returns sequences [begin, end) of that batch: the same
  // (seed, step, global_batch) gives the same sequences whatever the world size or micro-batching.
  std::vector<Sequence> global_batch(int64_t step, int64_t global_batch, int64_t begin, int64_t end) const;
  // Sequences [begin, end) in the order they were packed (no shuffle): evaluation's order.
  std::vector<Sequence> sequences(int64_t begin, int64_t end) const;
  LoaderState state_after(int64_t steps_done, int64_t global_batch) const;
  // Global batches per epoch; an error naming the file when there are fewer sequences than one
  // global batch (call it before training starts to fail early).
  int64_t batches_per_epoch(int64_t global_batch) const;

 private:
  const std::vector<int64_t>& order(int64_t epoch) const;  // the epoch's shuffle (cached)

  std::string path_;
  uint64_t seed_;
  int64_t seq_len_ = 0, count_ = 0;
  const int32_t* records_ = nullptr;  // count_ records of 3 * seq_len_ int32 (sequence.h)
  std::shared_ptr<void> owner_;       // keeps records_ alive

  mutable std::mutex mutex_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_order_;
};


}  // namespace tessera::data
