#include "io/data/data_loader.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "core/error.h"
#include "io/data/fingerprint.h"
#include "io/data/pack_file.h"
#include "io/data/shard.h"
#include "io/data/shuffle.h"

namespace tessera::data {

DataLoader::DataLoader(const DataOptions& data, const tok::Tokenizer& tokenizer, uint64_t seed, Split split)
    : path_(split == Split::train ? data.train : data.eval), seed_(seed), seq_len_(data.seq_len) {
  const char* key = split == Split::train ? "data.train" : "data.eval";
  TS_CHECK(!path_.empty(), "{} is not set: name a .jsonl or text file, or a prepare-data folder", key);
  TS_CHECK(std::filesystem::exists(path_), "{}: no such file or folder ({})", path_, key);
  if (std::filesystem::is_directory(path_)) {
    path_ = (std::filesystem::path(path_) / (split == Split::train ? "train.tsd" : "eval.tsd")).string();
    auto shard = std::make_shared<Shard>(Shard::open(path_));
    const ShardHeader& h = shard->header();
    TS_CHECK(h.seq_len == seq_len_, "{}: prepared with seq_len {} but data.seq_len is {} (run prepare-data again)",
             path_, h.seq_len, seq_len_);
    TS_CHECK(h.vocab_size == tokenizer.vocab_size() && h.fingerprint == tokenizer_fingerprint(tokenizer),
             "{}: prepared with another tokenizer (run prepare-data again)", path_);
    count_ = h.count;
    records_ = shard->record(0);
    owner_ = shard;
  } else {
    auto records = std::make_shared<std::vector<int32_t>>();
    const PackStats stats = pack_file(path_, data, tokenizer, [&](std::vector<int32_t>&& rows) {
      records->insert(records->end(), rows.begin(), rows.end());
    });
    if (stats.bad_lines > 0)
      spdlog::warn("{}: skipped {} bad lines (data.skip_bad_lines); the first: {}", path_, stats.bad_lines,
                   stats.first_bad);
    count_ = static_cast<int64_t>(records->size()) / (3 * seq_len_);
    records_ = records->data();
    owner_ = records;
    spdlog::info("{}: {} {} documents packed into {} sequences of {} tokens ({} targets)", path_,
                 stats.documents, format_name(stats.format), count_, seq_len_, stats.targets);
  }
  TS_CHECK(count_ > 0, "{}: no training examples", path_);
}

int64_t DataLoader::batches_per_epoch(int64_t global_batch) const {
  TS_CHECK(global_batch > 0, "global batch must be positive, got {}", global_batch);
  TS_CHECK(count_ >= global_batch, "{}: {} sequences of {} tokens, fewer than one global batch of {}", path_,
           count_, seq_len_, global_batch);
  return count_ / global_batch;
}

const std::vector<int64_t>& DataLoader::order(uint64_t seed, int64_t epoch) const {
  if (epoch != cached_epoch_ || seed != cached_seed_) {
    cached_order_ = shuffled_order(count_, seed, epoch);
    cached_epoch_ = epoch;
    cached_seed_ = seed;
  }
  return cached_order_;
}

LoaderState DataLoader::batch_start(LoaderState from, int64_t k, int64_t global_batch) const {
  const int64_t per_epoch = batches_per_epoch(global_batch);
  TS_CHECK(k >= 0 && from.epoch >= 0 && from.position >= 0, "global_batch: batch {} after epoch {} position {}", k,
           from.epoch, from.position);
  if (from.position + global_batch > count_) from = {from.seed, from.epoch + 1, 0};  // the tail waits
  const int64_t left = (count_ - from.position) / global_batch;  // batches left in this epoch, >= 1
  if (k < left) return {from.seed, from.epoch, from.position + k * global_batch};
  k -= left;
  return {from.seed, from.epoch + 1 + k / per_epoch, (k % per_epoch) * global_batch};
}

std::vector<Sequence> DataLoader::global_batch(int64_t step, int64_t global_batch, int64_t begin, int64_t end) const {
  TS_CHECK(step >= 0, "global_batch: step {} is negative", step);
  return this->global_batch(start(), step, global_batch, begin, end);
}

std::vector<Sequence> DataLoader::global_batch(const LoaderState& from, int64_t k, int64_t global_batch, int64_t begin,
                                               int64_t end) const {
  const LoaderState at = batch_start(from, k, global_batch);
  TS_CHECK(0 <= begin && begin <= end && end <= global_batch,
           "global_batch: slice [{}, {}) is not within a batch of {}", begin, end, global_batch);
  std::vector<Sequence> out;
  std::lock_guard<std::mutex> lock(mutex_);
  const std::vector<int64_t>& perm = order(at.seed, at.epoch);
  for (int64_t i = begin; i < end; ++i)
    out.push_back(unpack_record(records_ + perm[at.position + i] * 3 * seq_len_, seq_len_));
  return out;
}

LoaderState DataLoader::state_after(int64_t steps_done, int64_t global_batch) const {
  return state_after(start(), steps_done, global_batch);
}

LoaderState DataLoader::state_after(const LoaderState& from, int64_t k, int64_t global_batch) const {
  if (k == 0) return from;
  LoaderState last = batch_start(from, k - 1, global_batch);
  last.position += global_batch;
  return last;
}

}  // namespace tessera::data
