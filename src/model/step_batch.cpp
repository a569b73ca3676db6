#include "model/step_batch.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace tessera {

StepLayout exact_layout(const StepInput& in) {
  size_t width = 1;
  for (const BlockTable* t : in.block_tables) width = std::max(width, t->size());
  return {static_cast<int64_t>(in.ids.size()), static_cast<int64_t>(in.block_tables.size()),
          static_cast<int64_t>(in.logit_rows.size()), static_cast<int64_t>(width)};
}

bool is_decode_step(const StepInput& in) {
  const size_t n = in.ids.size();
  if (n == 0 || in.block_tables.size() != n || in.logit_rows.size() != n || in.seq.size() != n) return false;
  for (size_t t = 0; t < n; ++t)
    if (in.seq[t] != static_cast<int32_t>(t) || in.logit_rows[t] != static_cast<int64_t>(t)) return false;
  return true;
}

int64_t decode_bucket(int64_t n) {
  TS_CHECK(n > 0, "decode_bucket: {} tokens", n);
  if (n > 256) return (n + 127) / 128 * 128;
  int64_t b = 1;
  while (b < n) b *= 2;
  return b;
}

int64_t decode_width(int64_t n) {
  int64_t w = 16;
  while (w < n) w *= 2;
  return w;
}

StepLayout padded_decode_layout(int64_t bucket, int64_t width) { return {bucket, bucket, bucket, width}; }

void pack_step(const StepInput& in, const StepLayout& L, int64_t block_size, int64_t vocab, int32_t* out,
               int64_t adapters) {
  const int64_t T = static_cast<int64_t>(in.ids.size()), S = static_cast<int64_t>(in.block_tables.size()),
                R = static_cast<int64_t>(in.logit_rows.size());
  TS_CHECK(T > 0 && in.seq.size() == in.ids.size() && in.pos.size() == in.ids.size(),
           "InferenceModel::step: {} ids, {} sequence indices, {} positions", T, in.seq.size(), in.pos.size());
  TS_CHECK(in.full_logits.empty() || in.full_logits.size() == in.logit_rows.size(),
           "InferenceModel::step: {} full_logits flags for {} logit rows", in.full_logits.size(), R);
  TS_CHECK(L.tokens >= T && L.seqs >= S && L.rows >= R && L.seqs - S >= L.tokens - T && L.rows - R >= L.tokens - T,
           "InferenceModel::step: a layout of {} tokens, {} sequences, {} rows cannot hold {}, {}, {}", L.tokens,
           L.seqs, L.rows, T, S, R);
  TS_CHECK(in.sampling.empty() || in.sampling.size() == in.logit_rows.size(),
           "InferenceModel::step: {} sampling rows for {} logit rows", in.sampling.size(), R);
  TS_CHECK(in.adapter.empty() || static_cast<int64_t>(in.adapter.size()) == S,
           "InferenceModel::step: {} adapter indices for {} sequences", in.adapter.size(), S);
  for (int32_t n : in.adapter)
    TS_CHECK(n >= -1 && n < adapters, "InferenceModel::step: adapter {} (the model holds {})", n, adapters);
  std::fill(out, out + L.size(), 0);
  int32_t* ids = out + L.ids();
  int32_t* pos = out + L.pos();
  int32_t* seq = out + L.seq();
  int32_t* slots = out + L.slots();
  int32_t* rows = out + L.logit_rows();
  int32_t* tables = out + L.tables();
  for (int64_t t = 0; t < T; ++t) {
    TS_CHECK(in.seq[t] >= 0 && in.seq[t] < S, "InferenceModel::step: token {} of sequence {} (of {})", t, in.seq[t], S);
    TS_CHECK(in.ids[t] >= 0 && in.ids[t] < vocab, "token id {} is outside the vocabulary of {}", in.ids[t], vocab);
    const BlockTable& table = *in.block_tables[in.seq[t]];
    const int64_t block = in.pos[t] / block_size;
    TS_CHECK(in.pos[t] >= 0 && block < static_cast<int64_t>(table.size()),
             "InferenceModel::step: position {} has no KV block ({} reserved)", in.pos[t], table.size());
    ids[t] = in.ids[t];
    pos[t] = in.pos[t];
    seq[t] = in.seq[t];
    slots[t] = static_cast<int32_t>(table[block] * block_size + in.pos[t] % block_size);
  }
  for (int64_t r = 0; r < R; ++r) {
    TS_CHECK(in.logit_rows[r] >= 0 && in.logit_rows[r] < T, "InferenceModel::step: logit row {} of {} tokens",
             in.logit_rows[r], T);
    rows[r] = static_cast<int32_t>(in.logit_rows[r]);
  }
  for (int64_t s = 0; s < S; ++s) {
    const BlockTable& table = *in.block_tables[s];
    TS_CHECK(static_cast<int64_t>(table.size()) <= L.width, "InferenceModel::step: sequence {} has {} blocks, the "
             "layout's tables {}", s, table.size(), L.width);
    std::copy(table.begin(), table.end(), tables + s * L.width);
  }
  if (L.adapters) {
    int32_t* adapter = out + L.adapter();
    std::fill(adapter, adapter + L.tokens, -1);
    if (!in.adapter.empty())
      for (int64_t t = 0; t < T; ++t) adapter[t] = in.adapter[in.seq[t]];
  }
  if (!in.sampling.empty()) std::memcpy(out + L.sampling(), in.sampling.data(), in.sampling.size() * sizeof(SamplingRow));
  // Padding: token T + i is sequence S + i (an all-zero table) at position 0, never written, and
  // logit row R + i.
  for (int64_t i = 0; T + i < L.tokens; ++i) {
    seq[T + i] = static_cast<int32_t>(S + i);
    slots[T + i] = -1;
    rows[R + i] = static_cast<int32_t>(T + i);
  }
}

}  // namespace tessera
