// CUDA paged KV cache ops against the CPU reference on fresh random inputs: paged_kv_write fills
// exactly the CPU's cache; paged_attention, under each form (TESSERA_PAGED_ATTN v1 and v2: 4 warps
// a CTA, or up to 16 for small grids), over shuffled block tables (unwritten slots NaN) for
// contexts 1..4097 around block and tile edges, GQA ratios 1/2/3/4/7/8/16, head dims 64/128/256,
// blocks of 1..32 slots, sliding windows, batches 1..64 mixing decode steps and prefill chunks,
// split (flash-decoding) and unsplit grids; rope_paged_attention (decode steps with their RoPE,
// Qwen3's q/k norms and padding rows) in one launch (v3) bit for bit as rope_kv_write then
// paged_attention on the GPU, and within rounding of the CPU's; and its stacked form (q, k and v
// as one gemm's rows, kernels/stacked_ops.h) bit for bit as the three tensors, under both.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "kernels/stacked_ops.h"
#include "paged_cache.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);
const Device cpu = Device::cpu();

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

// Sets TESSERA_PAGED_ATTN (v1, v2, v3) for its lifetime.
struct FormScope {
  explicit FormScope(int form) { setenv("TESSERA_PAGED_ATTN", ("v" + std::to_string(form)).c_str(), 1); }
  ~FormScope() { unsetenv("TESSERA_PAGED_ATTN"); }
};

// Close to the CPU's fp32 output, row by row where rows[t] (all rows when empty).
void expect_close_output(const Tensor& out, const Tensor& ref_out, uint64_t seed, double tolerance,
                         const std::vector<bool>& rows = {}) {
  const auto all_got = host_f32(out), all_want = host_f32(ref_out);
  const size_t row = all_got.size() / out.size(0);
  std::vector<float> got, want;
  for (size_t i = 0; i < all_got.size(); ++i)
    if (rows.empty() || rows[i / row]) got.push_back(all_got[i]), want.push_back(all_want[i]);
  size_t nans = 0;
  double max_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    nans += std::isnan(got[i]);
    max_diff = std::max(max_diff, std::abs(double(got[i]) - want[i]));
  }
  EXPECT_EQ(nans, 0u) << "seed " << seed;
  EXPECT_LT(relative_error(got, want), tolerance) << "seed " << seed;
  EXPECT_LT(max_diff, 4 * tolerance) << "seed " << seed;
}

// paged_attention on the GPU under forms v1, v2 and v4 (v3 runs v2's kernel) against the CPU's.
void check_case(const Case& c) {
  const uint64_t seed = fresh_seed();
  const PagedBatch b = make_paged_batch(c.lengths, c.queries, c.hq, c.hkv, c.d, c.block_size, seed);
  const float scale = 1.0f / std::sqrt(float(c.d));
  // The device gets the inputs in c.dtype; the reference the same rounded values in f32.
  auto low = [&](const Tensor& t) { return ops::cast(t, c.dtype); };
  auto f32 = [](const Tensor& t) { return ops::cast(t, DType::F32); };
  const Tensor q = low(b.q), k_rows = low(b.k_rows), v_rows = low(b.v_rows);

  const Cache ref = written_cache(b, f32(k_rows), f32(v_rows), b.slots);
  Tensor ref_out = Tensor::empty(q.shape(), DType::F32);
  ops::paged_attention(f32(q), ref.k, ref.v, b.block_tables, b.query_seq, b.query_pos, c.window, scale, ref_out);

  const Cache dev = written_cache(b, k_rows.to(gpu), v_rows.to(gpu), b.slots.to(gpu));
  expect_same_cache(dev.k, ref.k, seed);
  expect_same_cache(dev.v, ref.v, seed);
  for (int form : {1, 2, 4}) {
    SCOPED_TRACE(::testing::Message() << "TESSERA_PAGED_ATTN=v" << form);
    const FormScope scope(form);
    Tensor out = Tensor::empty(q.shape(), c.dtype, gpu);
    ops::paged_attention(q.to(gpu), dev.k, dev.v, b.block_tables.to(gpu), b.query_seq.to(gpu), b.query_pos.to(gpu),
                         c.window, scale, out);
    // bf16 output rounding (2^-9 relative) on values below ~3 in size, plus fp32 summation order.
    expect_close_output(out, ref_out, seed, 5e-3);
  }
}

// Contexts around block and tile edges and long ones, each a decode step (one query at its last
// position), beside two prefill chunks (the last 37 of 300, a whole 64-token prompt).
const std::vector<int64_t> kLengths = {1, 2, 15, 16, 17, 255, 256, 257, 1000, 4096, 300, 64};
const std::vector<int64_t> kQueries = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 37, 64};

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

// Decode contexts around block (16) and tile-round (64, 256 keys) edges and long ones.
const std::vector<int64_t> kDecodeLengths = {1, 2, 15, 16, 17, 255, 256, 257, 1000, 4096};

struct Heads {
  int64_t hq, hkv, d;
};
// The 1B and 8B Llama layers, no grouping, Qwen2-0.5B's 7 heads a group, 70B's 8.
const Heads kHeads[] = {{32, 8, 64}, {32, 8, 128}, {8, 8, 128}, {14, 2, 64}, {64, 8, 128}};

// Decode steps only, one per sequence (the decode path as the generator calls it): every context
// alone at batch 1 (v2's widest CTAs, split from 257 keys on), batches of 2..16 mixing them, and
// batch 64 (the fewest splits, 4 warps a CTA).
TEST(CudaPagedAttentionOps, DecodeBatches) {
  TS_REQUIRE_GPU();
  for (const Heads& h : kHeads) {
    for (int64_t length : kDecodeLengths) {
      SCOPED_TRACE(::testing::Message() << "heads " << h.hq << "/" << h.hkv << " d " << h.d << " context " << length);
      check_case({{length}, {1}, h.hq, h.hkv, h.d, 0});
    }
    for (int64_t batch : {2, 3, 5, 8, 16}) {
      SCOPED_TRACE(::testing::Message() << "heads " << h.hq << "/" << h.hkv << " d " << h.d << " batch " << batch);
      std::vector<int64_t> lengths, queries;
      for (int64_t i = 0; i < batch; ++i) lengths.push_back(kDecodeLengths[(i * 7 + batch) % 10]), queries.push_back(1);
      check_case({lengths, queries, h.hq, h.hkv, h.d, batch % 2 ? 0 : 200});
    }
  }
  check_case({{4097}, {1}, 32, 8, 128, 0});
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
  check_case({kLengths, kQueries, 16, 2, 256, 0});                   // 8 heads a group at head dim 256
  check_case({{300, 17}, {1, 1}, 4, 2, 256, 0});                     // head dim 256, few CTAs
  check_case({kLengths, kQueries, 8, 2, 128, 0, 16, DType::F16});    // f16
  check_case({kLengths, kQueries, 8, 2, 64, 0, 5});                  // blocks of 5 slots
  check_case({{70, 1, 33}, {20, 1, 33}, 4, 2, 128, 17, 32});         // blocks of 32
  check_case({{300, 17, 1}, {1, 1, 1}, 8, 2, 64, 0, 1});             // blocks of one slot
}

// rope_paged_attention's inputs: each sequence's history in the cache (keys and values already
// turned), its new token's raw q, k and v, and padding rows as pack_step makes them (a sequence
// of their own whose table is all block 0, position 0, slot -1).
struct RopeCase {
  std::vector<int64_t> lengths;  // keys of each sequence, the new one included
  int64_t hq, hkv, d, window = 0, padding = 0;
  bool qk_norm = false;
  DType norm_dtype = DType::BF16;
  int64_t block_size = 16;
  DType dtype = DType::BF16;
};

struct RopeRun {
  Tensor out, k_cache, v_cache;
};

void check_rope_attention(const RopeCase& c) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " sequences " << c.lengths.size() << " (first "
                                    << c.lengths[0] << ") padding " << c.padding << " heads " << c.hq << "/" << c.hkv
                                    << " d " << c.d << " window " << c.window << " qk_norm " << c.qk_norm
                                    << " block " << c.block_size << " " << dtype_name(c.dtype));
  const int64_t seqs = int64_t(c.lengths.size()), tokens = seqs + c.padding;
  const PagedBatch b =
      make_paged_batch(c.lengths, std::vector<int64_t>(seqs, 1), c.hq, c.hkv, c.d, c.block_size, seed);
  // Each sequence's last key is its new token's: that slot stays NaN until the op writes it.
  std::vector<int32_t> history = b.slots.to_vector<int32_t>(), slots(tokens, -1), seq(tokens), pos(tokens, 0);
  const auto query_seq = b.query_seq.to_vector<int32_t>(), query_pos = b.query_pos.to_vector<int32_t>();
  for (int64_t t = 0; t < seqs; ++t) {
    const int64_t row = b.seq_start[query_seq[t]] + query_pos[t];
    slots[t] = history[row];
    history[row] = -1;
    seq[t] = query_seq[t];
    pos[t] = query_pos[t];
  }
  const int64_t width = b.block_tables.size(1);
  std::vector<int32_t> tables = b.block_tables.to_vector<int32_t>();
  tables.resize(tokens * width, 0);
  for (int64_t t = seqs; t < tokens; ++t) seq[t] = int32_t(t);
  auto ints = [](const std::vector<int32_t>& v, Shape shape) { return Tensor::from_vector(v, shape, DType::I32); };
  const Tensor history_slots = ints(history, {int64_t(history.size())}), new_slots = ints(slots, {tokens});
  const Tensor seq_t = ints(seq, {tokens}), pos_t = ints(pos, {tokens}), tables_t = ints(tables, {tokens, width});

  const Tensor q = random_tensor({tokens, c.hq, c.d}, c.dtype, cpu, seed + 5);
  const Tensor k = random_tensor({tokens, c.hkv, c.d}, c.dtype, cpu, seed + 6);
  const Tensor v = random_tensor({tokens, c.hkv, c.d}, c.dtype, cpu, seed + 7);
  const Tensor k_history = ops::cast(b.k_rows, c.dtype), v_history = ops::cast(b.v_rows, c.dtype);
  Tensor q_norm, k_norm;
  if (c.qk_norm) {
    q_norm = random_tensor({c.d}, c.norm_dtype, cpu, seed + 8);
    k_norm = random_tensor({c.d}, c.norm_dtype, cpu, seed + 9);
  }
  const Tensor freq = inverse_frequencies(c.d, 500000.0);
  const float scaling = c.d == 64 ? 1.0f : 1.2f, eps = 1e-6f, scale = 1.0f / std::sqrt(float(c.d));
  // One step on `device` in `dtype` (the CPU: f32 of the same rounded values), on fresh copies;
  // `stacked`: with q, k and v as one tensor's rows.
  auto run = [&](Device device, DType dtype, bool stacked = false) {
    auto in = [&](const Tensor& t) { return ops::cast(t, dtype).to(device); };
    auto norm = [&](const Tensor& t) {  // the CPU's norm weights are f32, the GPU's as given
      return !t.defined() ? t : device.is_cpu() ? ops::cast(t, DType::F32) : t.to(device);
    };
    const Cache cache = written_cache(b, in(k_history), in(v_history), history_slots.to(device));
    RopeRun r{Tensor::empty(q.shape(), dtype, device), cache.k, cache.v};
    if (stacked) {
      ops::rope_paged_attention_stacked(in(stacked_rows({q, k, v})), pos_t.to(device), freq.to(device), scaling,
                                        norm(q_norm), norm(k_norm), eps, new_slots.to(device), r.k_cache, r.v_cache,
                                        tables_t.to(device), seq_t.to(device), c.window, scale, r.out);
      return r;
    }
    Tensor qd = in(q).clone(), kd = in(k).clone();
    ops::rope_paged_attention(qd, kd, in(v), pos_t.to(device), freq.to(device), scaling, norm(q_norm), norm(k_norm),
                              eps, new_slots.to(device), r.k_cache, r.v_cache, tables_t.to(device), seq_t.to(device),
                              c.window, scale, r.out);
    return r;
  };
  const RopeRun want = run(cpu, DType::F32);
  auto run_form = [&](int form, bool stacked = false) {
    const FormScope scope(form);
    return run(gpu, c.dtype, stacked);
  };
  const RopeRun plain = run_form(2), fused = run_form(3), early = run_form(4);
  // Equal bit for bit (padding rows' outputs are unspecified).
  const auto expect_same_run = [&](const RopeRun& got, const RopeRun& want, const char* what) {
    const auto g = host_f32(got.out), w = host_f32(want.out);
    size_t differ = 0;
    for (size_t i = 0; i < size_t(seqs * c.hq * c.d); ++i) differ += !(g[i] == w[i]);
    EXPECT_EQ(differ, 0u) << "seed " << seed << ": outputs of " << what;
    expect_same_cache(got.k_cache, want.k_cache, seed);
    expect_same_cache(got.v_cache, want.v_cache, seed);
  };
  // The single launch gives the two ops' numbers; the stacked rows the three tensors', either way.
  expect_same_run(fused, plain, "the one launch (v3) and the two ops");
  expect_same_run(early, plain, "the one launch (v4) and the two ops");
  expect_same_run(run_form(2, true), plain, "the two ops on stacked rows and on three tensors");
  expect_same_run(run_form(4, true), early, "the one launch (v4) on stacked rows and on three tensors");
  // And the CPU's within rounding: the GPU rounds q and k to the dtype after the norm and RoPE.
  std::vector<bool> real(tokens, false);
  std::fill_n(real.begin(), seqs, true);
  expect_close_output(fused.out, want.out, seed, 1e-2, real);
  expect_same_cache(fused.v_cache, want.v_cache, seed);
  expect_close(fused.k_cache, want.k_cache, c.dtype, false, "k_cache");
}

TEST(CudaRopePagedAttention, OneLaunchEqualsRopeKvWriteThenAttention) {
  TS_REQUIRE_GPU();
  for (const Heads& h : kHeads) {
    for (int64_t length : kDecodeLengths) check_rope_attention({{length}, h.hq, h.hkv, h.d});  // batch 1
    check_rope_attention({kDecodeLengths, h.hq, h.hkv, h.d, 0, 3});  // batch 10 and 3 padding rows
  }
}

TEST(CudaRopePagedAttention, Qwen3NormsWindowsAndLayouts) {
  TS_REQUIRE_GPU();
  for (int64_t length : {1, 17, 256, 1000}) {
    check_rope_attention({{length, 40}, 16, 8, 128, 0, 1, true});                   // Qwen3-0.6B
    check_rope_attention({{length}, 32, 8, 128, 0, 0, true, DType::F32});           // f32 norm weights
    check_rope_attention({{length, 300, 5}, 32, 8, 64, 100, 2});                    // sliding window
  }
  check_rope_attention({kDecodeLengths, 32, 2, 64, 0, 1});                          // 16 a group: two CTAs
  check_rope_attention({{1, 300, 17}, 8, 1, 256, 0, 1, true});                      // MQA, head dim 256
  check_rope_attention({{1, 300, 17}, 16, 2, 256, 0, 0});                           // 8 a group, head dim 256
  check_rope_attention({kDecodeLengths, 8, 2, 64, 0, 2, false, DType::BF16, 5});    // blocks of 5 slots
  check_rope_attention({{70, 1, 33}, 4, 2, 128, 17, 1, false, DType::BF16, 32});    // blocks of 32
  check_rope_attention({{30, 2}, 4, 2, 64, 0, 1, false, DType::BF16, 1});           // blocks of one slot
  check_rope_attention({{257, 16}, 8, 2, 128, 0, 1, true, DType::F16, 16, DType::F16});  // f16
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
