// CUDA attention (forward and backward) against the CPU reference on fresh random inputs:
// tensor-core path (bf16/f16, head dims 32/64/96/128), row path (f32, and bf16 at head dim 80), sequence
// lengths with tails, GQA and plain heads, with and without packed segments in several layouts; and
// the document bounds of packed rows against their CPU reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/attention_variants.h"
#include "kernels/ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);

// How the documents of a packed row lie (segment ids [b, s]):
enum class Docs {
  None,        // no segment ids
  Random,      // nondecreasing, a boundary every ~8 tokens in rows 0, 3, ..., ~100 in rows 1, 4, ...,
               // ~1000 in rows 2, 5, ...: tiles across boundaries and tiles inside one document
  OneToken,    // every token its own document: each query sees only itself
  TileEdges,   // boundaries one before, at and one after multiples of 64 (the kernels' tiles)
  Short,       // documents of 1 to 20 tokens
  Single,      // one document per row: ids all equal, but not zero
  Decreasing,  // ids of row 0 repeat in runs apart ((i / 50) % 3), so that a document is not one
               // run and queries see keys of earlier runs; the other rows as Random
};

const char* docs_name(Docs docs) {
  const char* names[] = {"none", "random", "one_token", "tile_edges", "short", "single", "decreasing"};
  return names[int(docs)];
}

std::vector<int32_t> document_ids(Docs docs, int64_t b, int64_t s, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<int32_t> ids(b * s);
  for (int64_t r = 0; r < b; ++r) {
    const uint64_t mean_length = r % 3 == 0 ? 8 : r % 3 == 1 ? 100 : 1000;
    int32_t id = 0;
    int64_t next_edge = 63, doc_end = 0;  // TileEdges, Short
    for (int64_t i = 0; i < s; ++i) {
      int32_t& out = ids[r * s + i];
      switch (docs) {
        case Docs::None:
        case Docs::Random: out = id += (i > 0 && gen() % mean_length == 0); break;
        case Docs::OneToken: out = int32_t(i); break;
        case Docs::TileEdges:
          if (i == next_edge) {
            ++id;
            next_edge = (next_edge / 64 + 1) * 64 + int64_t(gen() % 3) - 1;
          }
          out = id;
          break;
        case Docs::Short:
          if (i == doc_end) doc_end = i + 1 + int64_t(gen() % 20), ++id;
          out = id;
          break;
        case Docs::Single: out = 7; break;
        case Docs::Decreasing:
          out = r == 0 ? int32_t(i / 50 % 3) : id += (i > 0 && gen() % mean_length == 0);
          break;
      }
    }
  }
  return ids;
}

Tensor random_segments(Docs docs, int64_t b, int64_t s, uint64_t seed) {
  if (docs == Docs::None) return Tensor();
  return Tensor::from_vector(document_ids(docs, b, s, seed), {b, s}, DType::I32);
}

struct Heads {
  int64_t q, kv;
};

// Sets the Hopper kernel variants (TESSERA_ATTN_FWD / _BWD) for its lifetime.
struct VariantScope {
  VariantScope(int forward, int backward) {
    setenv("TESSERA_ATTN_FWD", ("v" + std::to_string(forward)).c_str(), 1);
    setenv("TESSERA_ATTN_BWD", ("v" + std::to_string(backward)).c_str(), 1);
  }
  ~VariantScope() {
    unsetenv("TESSERA_ATTN_FWD");
    unsetenv("TESSERA_ATTN_BWD");
  }
};

// Runs forward and backward on the GPU and checks them against the CPU reference, under every
// Hopper kernel variant where those can run (bf16/f16 at head dims 64 and 128).
void expect_matches_cpu(DType dtype, int64_t b, int64_t s, Heads heads, int64_t d, Docs docs) {
  const uint64_t seed = fresh_seed();
  const float scale = 1.0f / std::sqrt(float(d));
  const double tol = dtype == DType::F32 ? 1e-4 : 2e-2;

  Tensor q = random_tensor({b, s, heads.q, d}, dtype, gpu, seed);
  Tensor k = random_tensor({b, s, heads.kv, d}, dtype, gpu, seed + 1);
  Tensor v = random_tensor({b, s, heads.kv, d}, dtype, gpu, seed + 2);
  Tensor dout = random_tensor(q.shape(), dtype, gpu, seed + 3);
  Tensor seg = random_segments(docs, b, s, seed + 4);
  Tensor gpu_seg = seg.defined() ? seg.to(gpu) : Tensor();

  // The reference sees the same (rounded) inputs in f32 and keeps its results in f32.
  auto f32 = [](const Tensor& t) { return ops::cast(t.to(Device::cpu()), DType::F32); };
  Tensor cq = f32(q), ck = f32(k), cv = f32(v), cdout = f32(dout);
  Tensor ref_out = Tensor::empty(q.shape(), DType::F32), ref_lse = Tensor::empty({b, heads.q, s}, DType::F32);
  ops::attention_forward(ref_out, ref_lse, cq, ck, cv, scale, seg);
  Tensor ref_dq = Tensor::empty(q.shape(), DType::F32), ref_dk = Tensor::empty(k.shape(), DType::F32),
         ref_dv = Tensor::empty(v.shape(), DType::F32);
  ops::attention_backward(ref_dq, ref_dk, ref_dv, cdout, cq, ck, cv, ref_out, ref_lse, scale, seg);
  // Where a query sees only itself (S = 1, or a one-token segment) its softmax is constant and the
  // true dq and dk are exactly zero: their errors are measured against the scale of dv instead.
  auto error_vs = [](const Tensor& got, const Tensor& want, const Tensor& scale) {
    const double norm_want = std::sqrt(squared_norm(want)), norm_scale = std::sqrt(squared_norm(scale));
    return relative_error(got, want) * norm_want / std::max(norm_want, norm_scale);
  };

  const bool hopper_kernels = dtype != DType::F32 && (d == 64 || d == 128);
  for (int variant = 1; variant <= (hopper_kernels ? kAttentionBackwardVariants : 1); ++variant) {
    const VariantScope scope(std::min(variant, kAttentionForwardVariants), variant);
    Tensor out = Tensor::empty(q.shape(), dtype, gpu), lse = Tensor::empty({b, heads.q, s}, DType::F32, gpu);
    ops::attention_forward(out, lse, q, k, v, scale, gpu_seg);
    Tensor dq = Tensor::empty(q.shape(), dtype, gpu), dk = Tensor::empty(k.shape(), dtype, gpu),
           dv = Tensor::empty(v.shape(), dtype, gpu);
    ops::fill(dq, 3.0f);  // written, not accumulated
    ops::fill(dk, 3.0f);
    ops::fill(dv, 3.0f);
    ops::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, scale, gpu_seg);

    const std::string where = "variant v" + std::to_string(variant) + ", seed " + std::to_string(seed);
    EXPECT_LT(relative_error(out, ref_out), tol) << "out, " << where;
    EXPECT_LT(relative_error(lse, ref_lse), 1e-5) << "lse, " << where;
    EXPECT_LT(error_vs(dq, ref_dq, ref_dv), tol) << "dq, " << where;
    EXPECT_LT(error_vs(dk, ref_dk, ref_dv), tol) << "dk, " << where;
    EXPECT_LT(relative_error(dv, ref_dv), tol) << "dv, " << where;
  }
}

using Param = std::tuple<DType, int64_t /*head dim*/, int64_t /*seq*/, Heads, bool /*segments*/>;

class CudaAttention : public ::testing::TestWithParam<Param> {};

TEST_P(CudaAttention, ForwardAndBackwardMatchCpu) {
  TS_REQUIRE_GPU();
  const auto [dtype, d, s, heads, with_segments] = GetParam();
  const int64_t b = 2;
  expect_matches_cpu(dtype, b, s, heads, d, with_segments ? Docs::Random : Docs::None);
}

std::string case_name(const ::testing::TestParamInfo<Param>& info) {
  const auto [dtype, d, s, heads, with_segments] = info.param;
  return std::string(dtype_name(dtype)) + "_d" + std::to_string(d) + "_s" + std::to_string(s) + "_h" +
         std::to_string(heads.q) + "kv" + std::to_string(heads.kv) + (with_segments ? "_segments" : "");
}

INSTANTIATE_TEST_SUITE_P(Bf16AndF32, CudaAttention,
                         ::testing::Combine(::testing::Values(DType::BF16, DType::F32),
                                            ::testing::Values<int64_t>(64, 128, 96, 80),
                                            ::testing::Values<int64_t>(1, 17, 128, 257),
                                            ::testing::Values(Heads{8, 2}, Heads{4, 4}), ::testing::Bool()),
                         case_name);

INSTANTIATE_TEST_SUITE_P(F16, CudaAttention,
                         ::testing::Combine(::testing::Values(DType::F16), ::testing::Values<int64_t>(32, 128),
                                            ::testing::Values<int64_t>(17, 257), ::testing::Values(Heads{8, 2}),
                                            ::testing::Bool()),
                         case_name);

// Long sequences through the Hopper kernels, forward and backward: many key tiles per query tile,
// dq added from many CTAs, GQA, a tail tile, and the three kinds of document packing.
TEST(CudaAttentionLong, Bf16Sequence1000MatchesCpu) {
  TS_REQUIRE_GPU();
  const int64_t b = 3, s = 1000;
  for (int64_t d : {64, 128})
    for (bool with_segments : {false, true}) {
      SCOPED_TRACE("head dim " + std::to_string(d) + (with_segments ? ", segments" : ""));
      expect_matches_cpu(DType::BF16, b, s, Heads{4, 1}, d, with_segments ? Docs::Random : Docs::None);
    }
}

// Every layout of packed documents through every Hopper variant: the tiles each CTA visits come
// from the documents' bounds (v6 forward, v7 backward), so a bound one row too tight shows here.
using DocsParam = std::tuple<Docs, int64_t /*head dim*/, int64_t /*seq*/>;
class CudaAttentionDocuments : public ::testing::TestWithParam<DocsParam> {};

TEST_P(CudaAttentionDocuments, ForwardAndBackwardMatchCpu) {
  TS_REQUIRE_GPU();
  const auto [docs, d, s] = GetParam();
  expect_matches_cpu(DType::BF16, 3, s, Heads{4, 2}, d, docs);
}

std::string docs_case_name(const ::testing::TestParamInfo<DocsParam>& info) {
  const auto [docs, d, s] = info.param;
  return std::string(docs_name(docs)) + "_d" + std::to_string(d) + "_s" + std::to_string(s);
}

INSTANTIATE_TEST_SUITE_P(Layouts, CudaAttentionDocuments,
                         ::testing::Combine(::testing::Values(Docs::OneToken, Docs::TileEdges, Docs::Short,
                                                              Docs::Single, Docs::Decreasing),
                                            ::testing::Values<int64_t>(64, 128), ::testing::Values<int64_t>(200, 700)),
                         docs_case_name);

// ops::document_bounds on the GPU against the CPU reference, for every layout and lengths below,
// at and above the kernel's 1024 chunks (one row per thread, and several).
TEST(CudaAttentionDocumentBounds, MatchesCpu) {
  TS_REQUIRE_GPU();
  for (Docs docs : {Docs::Random, Docs::OneToken, Docs::TileEdges, Docs::Short, Docs::Single, Docs::Decreasing})
    for (int64_t s : {1, 5, 1000, 1024, 1025, 5000}) {
      const uint64_t seed = fresh_seed();
      SCOPED_TRACE(std::string(docs_name(docs)) + ", s " + std::to_string(s) + ", seed " + std::to_string(seed));
      const int64_t b = 4;
      const Tensor seg = random_segments(docs, b, s, seed);
      Tensor want = Tensor::empty({2, b, s}, DType::I32);
      Tensor got = Tensor::from_vector(std::vector<int32_t>(2 * b * s, 5), {2, b, s}, DType::I32).to(gpu);  // all written
      ops::document_bounds(want, seg);
      ops::document_bounds(got, seg.to(gpu));
      EXPECT_EQ(got.to(Device::cpu()).to_vector<int32_t>(), want.to_vector<int32_t>());
    }
}

TEST(CudaAttentionChecks, UnknownKernelVariantIsAClearError) {
  TS_REQUIRE_GPU();
  Tensor q = random_tensor({1, 64, 1, 64}, DType::BF16, gpu, fresh_seed());
  Tensor out = Tensor::empty(q.shape(), DType::BF16, gpu), lse = Tensor::empty({1, 1, 64}, DType::F32, gpu);
  setenv("TESSERA_ATTN_FWD", "v9", 1);
  try {
    ops::attention_forward(out, lse, q, q, q, 0.125f);
    ADD_FAILURE() << "no error for TESSERA_ATTN_FWD=v9";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TESSERA_ATTN_FWD"), std::string::npos) << e.what();
  }
  unsetenv("TESSERA_ATTN_FWD");
}

TEST(CudaAttentionChecks, HeadDimAbove256IsAClearError) {
  TS_REQUIRE_GPU();
  Tensor q = Tensor::empty({1, 4, 1, 264}, DType::BF16, gpu);
  Tensor out = Tensor::empty(q.shape(), DType::BF16, gpu), lse = Tensor::empty({1, 1, 4}, DType::F32, gpu);
  ops::fill(q, 0.5f);
  EXPECT_THROW(ops::attention_forward(out, lse, q, q, q, 0.1f), Error);
}

}  // namespace
