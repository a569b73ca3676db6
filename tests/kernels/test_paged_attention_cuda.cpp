// CUDA paged KV cache ops against the CPU reference on fresh random inputs: paged_kv_write fills
// exactly the CPU's cache; paged_attention over shuffled block tables (unwritten slots NaN) for
// contexts 1..4097 around block edges, GQA ratios 1/2/3/4/8/16, head dims 64/128/256, sliding
// windows, batches mixing decode steps and prefill chunks, split (flash-decoding) and unsplit grids.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "paged_cache.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);

struct Case {
  std::vector<int64_t> lengths, queries;
  int64_t hq, hkv, d, window, block_size = 16;
  DType dtype = DType::BF16;
};

// The cache of batch b on `device` in `dtype`, every slot NaN until paged_kv_write fills it.
struct Cache {
  Tensor k, v;
};

Cache written_cache(const PagedBatch& b, const Tensor& k_rows, const Tensor& v_rows, const Tensor& slots) {
  const Shape shape{b.num_blocks, b.block_size, b.hkv, b.d};
  Cache c{Tensor::empty(shape, k_rows.dtype(), k_rows.device()), Tensor::empty(shape, k_rows.dtype(), k_rows.device())};
  ops::fill(c.k, std::numeric_limits<float>::quiet_NaN());
  ops::fill(c.v, std::numeric_limits<float>::quiet_NaN());
  ops::paged_kv_write(k_rows, v_rows, slots, c.k, c.v);
  return c;
}

// Equal element by element, NaN (unwritten) where the other is NaN.
void expect_same_cache(const Tensor& got, const Tensor& want, uint64_t seed) {
  const auto g = host_f32(got), w = host_f32(want);
  ASSERT_EQ(g.size(), w.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < g.size(); ++i)
    mismatches += std::isnan(w[i]) ? !std::isnan(g[i]) : g[i] != w[i];
  EXPECT_EQ(mismatches, 0u) << "seed " << seed;
}

void check_case(const Case& c) {
  const uint64_t seed = fresh_seed();
  const PagedBatch b = make_paged_batch(c.lengths, c.queries, c.hq, c.hkv, c.d, c.block_size, seed);
  const float scale = 1.0f / std::sqrt(float(c.d));
  // The device gets the inputs in c.dtype; the reference the same rounded values in f32.
  auto low = [&](const Tensor& t) { return ops::cast(t, c.dtype); };
  auto f32 = [](const Tensor& t) { return ops::cast(t, DType::F32); };
  const Tensor q = low(b.q), k_rows = low(b.k_rows), v_rows = low(b.v_rows);

  const Cache dev = written_cache(b, k_rows.to(gpu), v_rows.to(gpu), b.slots.to(gpu));
  Tensor out = Tensor::empty(q.shape(), c.dtype, gpu);
  ops::paged_attention(q.to(gpu), dev.k, dev.v, b.block_tables.to(gpu), b.query_seq.to(gpu), b.query_pos.to(gpu),
                       c.window, scale, out);

  const Cache ref = written_cache(b, f32(k_rows), f32(v_rows), b.slots);
  Tensor ref_out = Tensor::empty(q.shape(), DType::F32);
  ops::paged_attention(f32(q), ref.k, ref.v, b.block_tables, b.query_seq, b.query_pos, c.window, scale, ref_out);

  expect_same_cache(dev.k, ref.k, seed);
  expect_same_cache(dev.v, ref.v, seed);
  const auto got = host_f32(out), want = ref_out.to_vector<float>();
  size_t nans = 0;
  double max_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    nans += std::isnan(got[i]);
    max_diff = std::max(max_diff, std::abs(double(got[i]) - want[i]));
  }
  EXPECT_EQ(nans, 0u) << "seed " << seed;
  // bf16 output rounding (2^-9 relative) on values below ~3 in size, plus fp32 summation order.
  EXPECT_LT(relative_error(got, want), 5e-3) << "seed " << seed;
  EXPECT_LT(max_diff, 2e-2) << "seed " << seed;
}

// Contexts around block edges and long ones, each a decode step (one query at its last position),
// beside two prefill chunks (the last 37 of 300, a whole 64-token prompt).
const std::vector<int64_t> kLengths = {1, 15, 16, 17, 255, 1000, 4097, 300, 64};
const std::vector<int64_t> kQueries = {1, 1, 1, 1, 1, 1, 1, 37, 64};

using Param = std::tuple<int64_t /*gqa ratio*/, int64_t /*head dim*/, int64_t /*window*/>;

class CudaPagedAttention : public ::testing::TestWithParam<Param> {};

TEST_P(CudaPagedAttention, MixedDecodeAndPrefillMatchCpu) {
  TS_REQUIRE_GPU();
  const auto [ratio, d, window] = GetParam();
  check_case({kLengths, kQueries, 4 * ratio, 4, d, window});
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaPagedAttention,
                         ::testing::Combine(::testing::Values(1, 2, 4, 8), ::testing::Values(64, 128),
                                            ::testing::Values(0, 100)),
                         [](const auto& info) {
                           return "gqa" + std::to_string(std::get<0>(info.param)) + "_d" +
                                  std::to_string(std::get<1>(info.param)) + "_window" +
                                  std::to_string(std::get<2>(info.param));
                         });

// Decode steps only, one per sequence (the decode path as the generator calls it), long and
// short contexts at batch 1 (most splits) and batch 64 (fewest).
// Padding rows (slot -1, as a decode step padded to its CUDA graph's batch size) are not
// written, on either backend; the other rows land exactly where the CPU puts them.
TEST(CudaPagedAttentionOps, KvWriteSkipsPaddingRows) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  const PagedBatch b = make_paged_batch({9, 30}, {3, 2}, 4, 2, 64, 16, seed);
  std::vector<int32_t> slots = b.slots.to_vector<int32_t>();
  slots[1] = slots[3] = -1;
  const Tensor padded = Tensor::from_vector(slots, {int64_t(slots.size())}, DType::I32);
  const Tensor k = ops::cast(b.k_rows, DType::BF16), v = ops::cast(b.v_rows, DType::BF16);
  const Cache want = written_cache(b, k, v, padded);
  const Cache got = written_cache(b, k.to(gpu), v.to(gpu), padded.to(gpu));
  expect_same_cache(got.k, want.k, seed);
  expect_same_cache(got.v, want.v, seed);
  const int64_t row = b.hkv * b.d;
  const auto cpu_k = host_f32(want.k);
  EXPECT_TRUE(std::isnan(cpu_k[b.slots.to_vector<int32_t>()[1] * row])) << "a padding row was written";
}

TEST(CudaPagedAttentionOps, DecodeBatches) {
  TS_REQUIRE_GPU();
  check_case({{4097}, {1}, 32, 8, 128, 0});
  check_case({{1}, {1}, 32, 8, 64, 0});
  std::vector<int64_t> lengths, queries;
  for (int64_t i = 0; i < 64; ++i) lengths.push_back(1 + (i * 677) % 2100), queries.push_back(1);
  check_case({lengths, queries, 32, 8, 128, 0});
  check_case({lengths, queries, 8, 8, 64, 333});
}

// A long prefill chunk: enough CTAs that the grid is not split.
TEST(CudaPagedAttentionOps, LongPrefillChunk) {
  TS_REQUIRE_GPU();
  check_case({{900, 5}, {700, 1}, 16, 4, 128, 0});
  check_case({{900}, {700}, 8, 2, 64, 257});
}

// Head groups that are not a power of two or exceed one CTA, head dim 256, f16, odd block sizes.
TEST(CudaPagedAttentionOps, OtherLayouts) {
  TS_REQUIRE_GPU();
  check_case({kLengths, kQueries, 24, 8, 128, 0});                   // 3 heads per kv head
  check_case({kLengths, kQueries, 32, 2, 64, 0});                    // 16: two CTAs per kv head
  check_case({kLengths, kQueries, 8, 1, 256, 50});                   // MQA, head dim 256
  check_case({kLengths, kQueries, 8, 2, 128, 0, 16, DType::F16});    // f16
  check_case({kLengths, kQueries, 8, 2, 64, 0, 5});                  // blocks of 5 slots
  check_case({{70, 1, 33}, {20, 1, 33}, 4, 2, 128, 17, 32});         // blocks of 32
}

TEST(CudaPagedAttentionOps, RejectsWhatItCannotRun) {
  TS_REQUIRE_GPU();
  const PagedBatch b = make_paged_batch({20}, {1}, 4, 2, 96, 16, fresh_seed());
  const Cache c = written_cache(b, ops::cast(b.k_rows, DType::BF16).to(gpu), ops::cast(b.v_rows, DType::BF16).to(gpu),
                                b.slots.to(gpu));
  Tensor out = Tensor::empty(b.q.shape(), DType::BF16, gpu);
  try {
    ops::paged_attention(ops::cast(b.q, DType::BF16).to(gpu), c.k, c.v, b.block_tables.to(gpu),
                         b.query_seq.to(gpu), b.query_pos.to(gpu), 0, 1.0f, out);
    FAIL() << "head dim 96 ran";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "paged_attention: CUDA supports head dims 64, 128 and 256, got 96");
  }
}

}  // namespace
