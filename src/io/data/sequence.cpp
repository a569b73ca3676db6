#include "io/data/sequence.h"

namespace tessera::data {

Sequence unpack_record(const int32_t* record, int64_t seq_len) {
  Sequence s;
  s.ids.assign(record, record + seq_len);
  s.labels.assign(record + seq_len, record + 2 * seq_len);
  s.positions.assign(record + 2 * seq_len, record + 3 * seq_len);
  s.segment_ids.resize(seq_len);
  int32_t segment = 0;
  for (int64_t i = 0; i < seq_len; ++i) {
    if (i > 0 && s.positions[i] == 0) ++segment;
    s.segment_ids[i] = segment;
  }
  return s;
}

}  // namespace tessera::data
