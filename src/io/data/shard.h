// prepare-data shards: a 64-byte header, then `count` records of 3 * seq_len int32 (ids, labels,
// positions; see sequence.h), all little-endian. Memory-mapped at training time, and checked
// whole when opened: the checksum, then every record (ids and labels within the vocabulary,
// positions counting up from 0 within each segment, the targets count), so a damaged shard is
// refused by name before training. Version 1 shards (no checksum) are refused: prepare again.
//
//   offset  size  field
//        0     8  magic "TSRDATA\0"
//        8     4  version (2)
//       12     4  header size in bytes (64)
//       16     8  seq_len
//       24     8  count: number of sequences
//       32     8  vocab size of the tokenizer
//       40     8  tokenizer fingerprint (see fingerprint.h)
//       48     8  targets: labels that are not -100, over all sequences
//       56     8  checksum: FNV-1a (64-bit, over little-endian int32 words) of the body, then of
//                 header bytes 0-55
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace tessera::data {

struct ShardHeader {
  int64_t seq_len = 0, count = 0, vocab_size = 0;
  uint64_t fingerprint = 0;
  int64_t targets = 0;
};

// Writes `path` through `path.tmp`, renamed into place by commit(): a shard is whole or absent.
class ShardWriter {
 public:
  ShardWriter(std::string path, const ShardHeader& header);
  ~ShardWriter();
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;

  void append(const std::vector<int32_t>& records);  // whole records
  void commit(int64_t targets);

 private:
  std::string path_, tmp_;
  ShardHeader header_;
  std::FILE* file_ = nullptr;
  uint64_t body_hash_;
};

// A shard mapped read-only.
class Shard {
 public:
  static Shard open(const std::string& path);
  const ShardHeader& header() const { return header_; }
  const int32_t* record(int64_t i) const { return records_ + i * 3 * header_.seq_len; }
  // Keeps the mapping alive for views into it.
  const std::shared_ptr<void>& owner() const { return owner_; }

 private:
  ShardHeader header_;
  const int32_t* records_ = nullptr;
  std::shared_ptr<void> owner_;
};

}  // namespace tessera::data
