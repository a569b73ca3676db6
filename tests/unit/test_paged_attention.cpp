// The CPU paged KV cache ops against a plain contiguous attention computed here in double:
// random lengths, GQA ratios 1/2/4, head dims 64/128, sliding windows, shuffled block tables,
// mixed decode and prefill queries; paged_kv_write's slots read back; attention_forward agrees on a
// whole prefill; bad arguments get errors naming what is wrong.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "error_text.h"
#include "kernels/ops.h"
#include "paged_cache.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

// A cache for batch b, every slot NaN until written: a read of a slot nobody wrote shows in the output.
struct Cache {
  Tensor k, v;
};

Cache filled_cache(const PagedBatch& b) {
  Cache c{Tensor::empty({b.num_blocks, b.block_size, b.hkv, b.d}, DType::F32),
          Tensor::empty({b.num_blocks, b.block_size, b.hkv, b.d}, DType::F32)};
  ops::fill(c.k, std::numeric_limits<float>::quiet_NaN());
  ops::fill(c.v, std::numeric_limits<float>::quiet_NaN());
  ops::paged_kv_write(b.k_rows, b.v_rows, b.slots, c.k, c.v);
  return c;
}

// Softmax attention of each query token over the contiguous rows of its sequence, in double.
std::vector<float> contiguous_attention(const PagedBatch& b, int64_t window, double scale) {
  const auto q = b.q.to_vector<float>(), k = b.k_rows.to_vector<float>(), v = b.v_rows.to_vector<float>();
  const auto seqs = b.query_seq.to_vector<int32_t>(), positions = b.query_pos.to_vector<int32_t>();
  const int64_t group = b.hq / b.hkv;
  std::vector<float> out(q.size());
  for (int64_t t = 0; t < b.tokens(); ++t) {
    const int64_t pos = positions[t], first = window > 0 ? std::max<int64_t>(0, pos - window + 1) : 0;
    for (int64_t h = 0; h < b.hq; ++h) {
      const float* qi = &q[(t * b.hq + h) * b.d];
      auto row = [&](const std::vector<float>& x, int64_t p) {
        return &x[((b.seq_start[seqs[t]] + p) * b.hkv + h / group) * b.d];
      };
      std::vector<double> scores;
      double max = -1e300;
      for (int64_t p = first; p <= pos; ++p) {
        double dot = 0;
        for (int64_t i = 0; i < b.d; ++i) dot += double(qi[i]) * row(k, p)[i];
        scores.push_back(scale * dot);
        max = std::max(max, scores.back());
      }
      double sum = 0;
      for (double& s : scores) sum += s = std::exp(s - max);
      for (int64_t i = 0; i < b.d; ++i) {
        double acc = 0;
        for (int64_t p = first; p <= pos; ++p) acc += scores[p - first] * row(v, p)[i];
        out[(t * b.hq + h) * b.d + i] = float(acc / sum);
      }
    }
  }
  return out;
}

double max_abs_diff(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double diff = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i)
    diff = std::isnan(got[i]) ? INFINITY : std::max(diff, std::abs(double(got[i]) - want[i]));
  return diff;
}

Tensor run_paged_attention(const PagedBatch& b, const Cache& c, int64_t window, float scale) {
  Tensor out = Tensor::empty(b.q.shape(), DType::F32);
  ops::paged_attention(b.q, c.k, c.v, b.block_tables, b.query_seq, b.query_pos, window, scale, out);
  return out;
}

using Param = std::tuple<int64_t /*gqa ratio*/, int64_t /*head dim*/, int64_t /*window*/>;

class PagedAttentionCpu : public ::testing::TestWithParam<Param> {};

TEST_P(PagedAttentionCpu, MatchesContiguousAttention) {
  const auto [ratio, d, window] = GetParam();
  const uint64_t seed = fresh_seed();
  std::mt19937_64 gen(seed);
  // Lengths at and around block edges plus random ones; two decode steps, the rest prefill chunks.
  std::vector<int64_t> lengths = {1, 16, 17, 15, 1 + int64_t(gen() % 100), 1 + int64_t(gen() % 300)};
  std::vector<int64_t> queries = {1, 1};
  for (size_t s = 2; s < lengths.size(); ++s) queries.push_back(1 + int64_t(gen() % lengths[s]));
  const int64_t hkv = 2;
  const PagedBatch b = make_paged_batch(lengths, queries, hkv * ratio, hkv, d, 16, seed);
  const float scale = 1.0f / std::sqrt(float(d));

  const Tensor out = run_paged_attention(b, filled_cache(b), window, scale);
  EXPECT_LT(max_abs_diff(out.to_vector<float>(), contiguous_attention(b, window, scale)), 2e-5) << "seed " << seed;
}

INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionCpu,
                         ::testing::Combine(::testing::Values(1, 2, 4), ::testing::Values(64, 128),
                                            ::testing::Values(0, 1, 23)),
                         [](const auto& info) {
                           return "gqa" + std::to_string(std::get<0>(info.param)) + "_d" +
                                  std::to_string(std::get<1>(info.param)) + "_window" +
                                  std::to_string(std::get<2>(info.param));
                         });

TEST(PagedAttentionCpuOps, OddBlockSizeAndLongContext) {
  const uint64_t seed = fresh_seed();
  const PagedBatch b = make_paged_batch({700, 3, 40}, {1, 3, 7}, 8, 2, 32, 5, seed);
  const Cache c = filled_cache(b);
  for (int64_t window : {0, 64}) {
    const Tensor out = run_paged_attention(b, c, window, 0.3f);
    EXPECT_LT(max_abs_diff(out.to_vector<float>(), contiguous_attention(b, window, 0.3)), 2e-5)
        << "window " << window << ", seed " << seed;
  }
}

TEST(PagedAttentionCpuOps, KvWriteFillsExactlyTheSlots) {
  const uint64_t seed = fresh_seed();
  const PagedBatch b = make_paged_batch({5, 33}, {1, 1}, 2, 2, 8, 16, seed);
  const Cache c = filled_cache(b);
  const auto k = c.k.to_vector<float>(), v = c.v.to_vector<float>();
  const auto k_rows = b.k_rows.to_vector<float>(), v_rows = b.v_rows.to_vector<float>();
  const auto slots = b.slots.to_vector<int32_t>();
  const int64_t row = b.hkv * b.d;
  std::vector<bool> written(b.num_blocks * b.block_size, false);
  for (size_t r = 0; r < slots.size(); ++r) {
    written[slots[r]] = true;
    for (int64_t i = 0; i < row; ++i) {
      ASSERT_EQ(k[slots[r] * row + i], k_rows[r * row + i]) << "row " << r << ", seed " << seed;
      ASSERT_EQ(v[slots[r] * row + i], v_rows[r * row + i]) << "row " << r << ", seed " << seed;
    }
  }
  for (size_t slot = 0; slot < written.size(); ++slot) {
    if (written[slot]) continue;
    EXPECT_TRUE(std::isnan(k[slot * row]) && std::isnan(v[slot * row])) << "slot " << slot;
  }
}

TEST(PagedAttentionCpuOps, KvWriteSkipsPaddingRows) {
  const PagedBatch b = make_paged_batch({5, 33}, {2, 1}, 2, 2, 8, 16, fresh_seed());
  std::vector<int32_t> slots = b.slots.to_vector<int32_t>();
  const int32_t skipped = slots[1];
  slots[1] = -1;
  Tensor k = Tensor::empty({b.num_blocks, b.block_size, b.hkv, b.d}, DType::F32), v = Tensor::empty(k.shape(), DType::F32);
  ops::fill(k, 7.0f);
  ops::fill(v, 7.0f);
  ops::paged_kv_write(b.k_rows, b.v_rows, Tensor::from_vector(slots, {int64_t(slots.size())}, DType::I32), k, v);
  const int64_t row = b.hkv * b.d;
  const auto kk = k.to_vector<float>(), rows = b.k_rows.to_vector<float>();
  for (int64_t i = 0; i < row; ++i) {
    EXPECT_EQ(kk[skipped * row + i], 7.0f) << "the padding row was written";
    EXPECT_EQ(kk[slots[2] * row + i], rows[2 * row + i]);
  }
  slots[1] = -2;
  EXPECT_THROW(ops::paged_kv_write(b.k_rows, b.v_rows, Tensor::from_vector(slots, {int64_t(slots.size())}, DType::I32), k, v), Error);
}

TEST(PagedAttentionCpuOps, WholePrefillEqualsAttentionForward) {
  const uint64_t seed = fresh_seed();
  const int64_t s = 45, hq = 4, hkv = 2, d = 64;
  PagedBatch b = make_paged_batch({s}, {s}, hq, hkv, d, 16, seed);
  // attention_forward wants the queries in order: position i at row i.
  std::vector<int32_t> positions(s);
  for (int64_t i = 0; i < s; ++i) positions[i] = int32_t(i);
  b.query_pos = Tensor::from_vector(positions, {s}, DType::I32);
  const float scale = 0.125f;
  const Tensor out = run_paged_attention(b, filled_cache(b), 0, scale);

  Tensor ref = Tensor::empty({1, s, hq, d}, DType::F32), lse = Tensor::empty({1, hq, s}, DType::F32);
  ops::attention_forward(ref, lse, b.q.view({1, s, hq, d}), b.k_rows.view({1, s, hkv, d}),
                         b.v_rows.view({1, s, hkv, d}), scale);
  EXPECT_LT(max_abs_diff(out.to_vector<float>(), ref.to_vector<float>()), 1e-5) << "seed " << seed;
}

TEST(PagedAttentionCpuOps, BadArgumentsAreNamed) {
  const PagedBatch b = make_paged_batch({20, 4}, {1, 2}, 4, 2, 8, 16, fresh_seed());
  Cache c = filled_cache(b);
  Tensor out = Tensor::empty(b.q.shape(), DType::F32);
  auto attend = [&](const Tensor& q, const Tensor& tables, const Tensor& seq, const Tensor& pos, Tensor& o,
                    int64_t window = 0) {
    return error_of([&] { ops::paged_attention(q, c.k, c.v, tables, seq, pos, window, 1.0f, o); });
  };
  EXPECT_EQ(attend(b.q, b.block_tables, b.query_seq, b.query_pos, out), kNoError);

  Tensor bf16_q = ops::cast(b.q, DType::BF16);
  EXPECT_NE(attend(bf16_q, b.block_tables, b.query_seq, b.query_pos, out).find("q bf16[3, 4, 8] cpu must have the dtype"),
            std::string::npos);
  Tensor q5 = Tensor::empty({3, 5, 8}, DType::F32), out5 = Tensor::empty({3, 5, 8}, DType::F32);
  EXPECT_EQ(attend(q5, b.block_tables, b.query_seq, b.query_pos, out5),
            "paged_attention: 5 query heads are not a multiple of 2 kv heads");
  Tensor wrong_d = Tensor::empty({3, 4, 16}, DType::F32);
  EXPECT_EQ(attend(wrong_d, b.block_tables, b.query_seq, b.query_pos, out),
            "paged_attention: q is f32[3, 4, 16] cpu, expected [3, 4, 8]");
  Tensor out_short = Tensor::empty({2, 4, 8}, DType::F32);
  EXPECT_EQ(attend(b.q, b.block_tables, b.query_seq, b.query_pos, out_short),
            "paged_attention: out is f32[2, 4, 8] cpu, expected [3, 4, 8]");
  EXPECT_EQ(attend(b.q, Tensor::empty({2, 3}, DType::F32), b.query_seq, b.query_pos, out),
            "paged_attention: block_tables must be int32, got f32[2, 3] cpu");
  EXPECT_EQ(attend(b.q, b.block_tables, b.query_seq.narrow(0, 2), b.query_pos, out),
            "paged_attention: query_seq is i32[2] cpu, expected [3]");
  EXPECT_EQ(attend(b.q, b.block_tables, b.query_seq, b.query_pos, out, -1),
            "paged_attention: window must be >= 0 (0: no sliding window), got -1");

  // Indices are checked against the cache on the CPU.
  const std::vector<int32_t> seqs = b.query_seq.to_vector<int32_t>();
  std::vector<int32_t> bad_seq = seqs;
  bad_seq[1] = 2;
  EXPECT_EQ(attend(b.q, b.block_tables, Tensor::from_vector(bad_seq, {3}, DType::I32), b.query_pos, out),
            "paged_attention: query_seq[1] = 2 is not a row of the 2 block tables");
  std::vector<int32_t> bad_pos = b.query_pos.to_vector<int32_t>();
  bad_pos[0] = 48;  // 3 blocks of 16 per table row
  EXPECT_EQ(attend(b.q, b.block_tables, b.query_seq, Tensor::from_vector(bad_pos, {3}, DType::I32), out),
            "paged_attention: query_pos[0] = 48 is outside [0, 48) (max_blocks_per_seq 3 x block_size 16)");
  std::vector<int32_t> pos_in_unassigned = b.query_pos.to_vector<int32_t>();
  pos_in_unassigned[0] = 40;  // a position in the table's -1 column
  const std::string unassigned =
      attend(b.q, b.block_tables, b.query_seq, Tensor::from_vector(pos_in_unassigned, {3}, DType::I32), out);
  EXPECT_NE(unassigned.find("] = -1 is outside the cache's 6 blocks"), std::string::npos) << unassigned;

  Tensor k3 = Tensor::empty({1, 2, 8}, DType::F32), slot = Tensor::from_vector(std::vector<int32_t>{96}, {1}, DType::I32);
  EXPECT_EQ(error_of([&] { ops::paged_kv_write(k3, k3, slot, c.k, c.v); }),
            "paged_kv_write: slots[0] = 96 is outside the cache's 96 slots");
  Tensor k_bf16 = ops::cast(k3, DType::BF16);
  EXPECT_EQ(error_of([&] { ops::paged_kv_write(k_bf16, k_bf16, slot, c.k, c.v); }),
            "paged_kv_write: k bf16[1, 2, 8] cpu must have the dtype of the cache f32[6, 16, 2, 8] cpu");
  Tensor v_cache3 = Tensor::empty({6, 16, 2}, DType::F32);
  EXPECT_EQ(error_of([&] { ops::paged_kv_write(k3, k3, slot, c.k, v_cache3); }),
            "paged_kv_write: v_cache is f32[6, 16, 2] cpu, expected [6, 16, 2, 8]");
  Tensor slot64 = Tensor::from_vector(std::vector<int64_t>{0}, {1}, DType::I64);
  EXPECT_EQ(error_of([&] { ops::paged_kv_write(k3, k3, slot64, c.k, c.v); }),
            "paged_kv_write: slots must be int32, got i64[1] cpu");
}

}  // namespace
