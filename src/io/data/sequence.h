// Packed training sequences. In memory and in prepare-data shards a sequence is one record of
// 3 * seq_len int32: ids, then labels, then positions. Segment ids are not stored: a segment
// starts wherever the position is 0, which packing guarantees (see packer.h).
#pragma once

#include <cstdint>
#include <vector>

namespace tessera::data {

struct Sequence {
  std::vector<int32_t> ids, positions, labels, segment_ids;  // each seq_len long
};

constexpr int32_t kIgnoreLabel = -100;

// Unpacks one record (3 * seq_len int32) into a Sequence, deriving the segment ids.
Sequence unpack_record(const int32_t* record, int64_t seq_len);

}  // namespace tessera::data
