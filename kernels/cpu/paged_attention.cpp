// CPU reference of the paged KV cache: paged_kv_write copies rows into their slots;
// paged_attention is the textbook softmax(scale * q k^T) v of each query token over the keys of its
// sequence, found through the block table, in fp32.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

void paged_kv_write(const Tensor& k, const Tensor& v, const Tensor& slots, const Tensor& k_cache,
                    const Tensor& v_cache, const PagedShape& s) {
  const int32_t* slot = slots.data_as<int32_t>();
  const size_t row_bytes = static_cast<size_t>(s.hkv * s.d) * dtype_size(k.dtype());
  for (int64_t t = 0; t < s.tokens; ++t) {
    if (slot[t] == -1) continue;  // a padding row
    TS_CHECK(slot[t] >= 0 && slot[t] < s.slots(), "paged_kv_write: slots[{}] = {} is outside the cache's {} slots", t,
             slot[t], s.slots());
    std::memcpy(static_cast<char*>(k_cache.data()) + slot[t] * row_bytes,
                static_cast<const char*>(k.data()) + t * row_bytes, row_bytes);
    std::memcpy(static_cast<char*>(v_cache.data()) + slot[t] * row_bytes,
                static_cast<const char*>(v.data()) + t * row_bytes, row_bytes);
  }
}

namespace {

// The cache slot of each key position 0..pos of one sequence, checked against the cache.
std::vector<int64_t> key_slots(const int32_t* table, int64_t seq, int64_t pos, const PagedShape& s) {
  std::vector<int64_t> slots(pos + 1);
  for (int64_t p = 0; p <= pos; ++p) {
    const int64_t block = table[seq * s.max_blocks + p / s.block_size];
    TS_CHECK(block >= 0 && block < s.blocks, "paged_attention: block_tables[{}, {}] = {} is outside the cache's {} blocks",
             seq, p / s.block_size, block, s.blocks);
    slots[p] = block * s.block_size + p % s.block_size;
  }
  return slots;
}

}  // namespace

void paged_attention(const Tensor& q, const Tensor& k_cache, const Tensor& v_cache, const Tensor& block_tables,
                     const Tensor& query_seq, const Tensor& query_pos, int64_t window, float scale, const Tensor& out,
                     const PagedShape& s) {
  const int32_t* table = block_tables.data_as<int32_t>();
  const int32_t* seqs = query_seq.data_as<int32_t>();
  const int32_t* positions = query_pos.data_as<int32_t>();
  std::vector<std::vector<int64_t>> slots(s.tokens);
  for (int64_t t = 0; t < s.tokens; ++t) {
    TS_CHECK(seqs[t] >= 0 && seqs[t] < s.seqs, "paged_attention: query_seq[{}] = {} is not a row of the {} block tables",
             t, seqs[t], s.seqs);
    TS_CHECK(positions[t] >= 0 && positions[t] < s.max_blocks * s.block_size,
             "paged_attention: query_pos[{}] = {} is outside [0, {}) (max_blocks_per_seq {} x block_size {})", t,
             positions[t], s.max_blocks * s.block_size, s.max_blocks, s.block_size);
    slots[t] = key_slots(table, seqs[t], positions[t], s);
  }

  F32In qf(q), kf(k_cache), vf(v_cache);
  F32Out of(out, false);
  const int64_t kv_row = s.hkv * s.d;
#pragma omp parallel for collapse(2)
  for (int64_t t = 0; t < s.tokens; ++t) {
    for (int64_t h = 0; h < s.hq; ++h) {
      const int64_t pos = positions[t];
      const int64_t first = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
      const int64_t kvh = h / s.group();
      const float* qi = qf.data() + (t * s.hq + h) * s.d;
      std::vector<float> scores(pos + 1 - first);
      float max = -std::numeric_limits<float>::infinity();
      for (int64_t p = first; p <= pos; ++p) {
        const float* kp = kf.data() + slots[t][p] * kv_row + kvh * s.d;
        float dot = 0.0f;
        for (int64_t d = 0; d < s.d; ++d) dot += qi[d] * kp[d];
        max = std::max(max, scores[p - first] = scale * dot);
      }
      float sum = 0.0f;
      for (float& score : scores) sum += score = std::exp(score - max);
      float* oi = of.data() + (t * s.hq + h) * s.d;
      std::fill_n(oi, s.d, 0.0f);
      for (int64_t p = first; p <= pos; ++p) {
        const float* vp = vf.data() + slots[t][p] * kv_row + kvh * s.d;
        const float weight = scores[p - first] / sum;
        for (int64_t d = 0; d < s.d; ++d) oi[d] += weight * vp[d];
      }
    }
  }
  of.commit();
}

}  // namespace tessera::cpu
