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

}  // namespace tessera
