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

// A position in the sample stream: each epoch's seeded shuffle of all sequences, read in order,
// one global batch after the other (a tail shorter than the next batch waits for a later epoch's
// shuffle). Small, goes into checkpoints: a resumed job goes on from exactly here, whatever its
// global batch.
struct LoaderState {
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
  LoaderState state_after(int64_t steps_done, int64_t global_batch) const;
  // The same from a position in the stream (a checkpoint's): batch `k` after `from`, and the
  // position after `k` batches. From start() they are the two above.
  std::vector<Sequence> global_batch(const LoaderState& from, int64_t k, int64_t global_batch, int64_t begin,
                                     int64_t end) const;
  LoaderState state_after(const LoaderState& from, int64_t k, int64_t global_batch) const;
  LoaderState start() const { return {seed_, 0, 0}; }
  // Global batches per epoch; an error naming the file when there are fewer sequences than one
  // global batch (call it before training starts to fail early).
  int64_t batches_per_epoch(int64_t global_batch) const;

 private:
  const std::vector<int64_t>& order(uint64_t seed, int64_t epoch) const;  // the epoch's shuffle (cached)
  LoaderState batch_start(LoaderState from, int64_t k, int64_t global_batch) const;  // where batch k begins

  std::string path_;
  uint64_t seed_;
  int64_t seq_len_ = 0, count_ = 0;
  const int32_t* records_ = nullptr;  // count_ records of 3 * seq_len_ int32 (sequence.h)
  std::shared_ptr<void> owner_;       // keeps records_ alive

  mutable std::mutex mutex_;
  mutable int64_t cached_epoch_ = -1;
  mutable uint64_t cached_seed_ = 0;
  mutable std::vector<int64_t> cached_order_;
};


}  // namespace tessera::data
