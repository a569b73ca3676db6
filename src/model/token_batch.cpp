#include "model/token_batch.h"

#include "core/error.h"

namespace tessera {

TokenBatch TokenBatch::causal_lm(const Tensor& input_ids, Device device) {
  TS_CHECK(input_ids.ndim() == 2 && (input_ids.dtype() == DType::I64 || input_ids.dtype() == DType::I32),
           "input_ids must be int64 or int32 [batch, seq], got {}", input_ids.str());
  const Tensor host = input_ids.to(Device::cpu());
  TokenBatch b;
  b.batch = host.size(0);
  b.seq = host.size(1);
  TS_CHECK(b.seq >= 2, "input_ids: sequences need at least 2 tokens to predict one, got {}", b.seq);
  const int64_t n = b.tokens();
  std::vector<int32_t> ids(n), positions(n), labels(n);
  for (int64_t t = 0; t < n; ++t) {
    const int64_t v = host.dtype() == DType::I64 ? host.data_as<int64_t>()[t] : host.data_as<int32_t>()[t];
    TS_CHECK(v >= 0 && v <= INT32_MAX, "input_ids: token {} at position {} is out of range", v, t);
    ids[t] = static_cast<int32_t>(v);
    positions[t] = static_cast<int32_t>(t % b.seq);
  }
  for (int64_t t = 0; t < n; ++t) labels[t] = (t % b.seq == b.seq - 1) ? -100 : ids[t + 1];
  b.num_targets = b.batch * (b.seq - 1);
  b.ids = Tensor::from_vector(ids, {n}, DType::I32).to(device);
  b.positions = Tensor::from_vector(positions, {n}, DType::I32).to(device);
  b.labels = Tensor::from_vector(labels, {n}, DType::I32).to(device);
  return b;
}

TokenBatch make_token_batch(const std::vector<data::Sequence>& sequences, Device device) {
  TS_CHECK(!sequences.empty(), "make_token_batch: no sequences");
  TokenBatch b;
  b.batch = static_cast<int64_t>(sequences.size());
  b.seq = static_cast<int64_t>(sequences[0].ids.size());
  std::vector<int32_t> ids, positions, labels, segments;
  for (const data::Sequence& s : sequences) {
    TS_CHECK(static_cast<int64_t>(s.ids.size()) == b.seq && s.positions.size() == s.ids.size() &&
                 s.labels.size() == s.ids.size() && s.segment_ids.size() == s.ids.size(),
             "make_token_batch: sequences differ in length ({} and {} tokens)", b.seq, s.ids.size());
    ids.insert(ids.end(), s.ids.begin(), s.ids.end());
    positions.insert(positions.end(), s.positions.begin(), s.positions.end());
    labels.insert(labels.end(), s.labels.begin(), s.labels.end());
    segments.insert(segments.end(), s.segment_ids.begin(), s.segment_ids.end());
  }
  for (int32_t l : labels) b.num_targets += l != data::kIgnoreLabel;
  const int64_t n = b.tokens();
  b.ids = Tensor::from_vector(ids, {n}, DType::I32).to(device);
  b.positions = Tensor::from_vector(positions, {n}, DType::I32).to(device);
  b.labels = Tensor::from_vector(labels, {n}, DType::I32).to(device);
  b.segment_ids = Tensor::from_vector(segments, {b.batch, b.seq}, DType::I32).to(device);
  return b;
}

}  // namespace tessera
