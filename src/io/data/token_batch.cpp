#include "core/error.h"
#include "io/data/data_loader.h"

namespace tessera::data {

TokenBatch make_token_batch(const std::vector<Sequence>& sequences, Device device) {
  TS_CHECK(!sequences.empty(), "make_token_batch: no sequences");
  TokenBatch b;
  b.batch = static_cast<int64_t>(sequences.size());
  b.seq = static_cast<int64_t>(sequences[0].ids.size());
  std::vector<int32_t> ids, positions, labels, segments;
  for (const Sequence& s : sequences) {
    TS_CHECK(static_cast<int64_t>(s.ids.size()) == b.seq && s.positions.size() == s.ids.size() &&
                 s.labels.size() == s.ids.size() && s.segment_ids.size() == s.ids.size(),
             "make_token_batch: sequences differ in length ({} and {} tokens)", b.seq, s.ids.size());
    ids.insert(ids.end(), s.ids.begin(), s.ids.end());
    positions.insert(positions.end(), s.positions.begin(), s.positions.end());
    labels.insert(labels.end(), s.labels.begin(), s.labels.end());
    segments.insert(segments.end(), s.segment_ids.begin(), s.segment_ids.end());
  }
  for (int32_t l : labels) b.num_targets += l != kIgnoreLabel;
  const int64_t n = b.tokens();
  b.ids = Tensor::from_vector(ids, {n}, DType::I32).to(device);
  b.positions = Tensor::from_vector(positions, {n}, DType::I32).to(device);
  b.labels = Tensor::from_vector(labels, {n}, DType::I32).to(device);
  b.segment_ids = Tensor::from_vector(segments, {b.batch, b.seq}, DType::I32).to(device);
  return b;
}

}  // namespace tessera::data
