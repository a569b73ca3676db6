// CUDA attention (forward and backward) against the CPU reference on fresh random inputs:
// tensor-core path (bf16/f16, head dims 32/64/96/128), row path (f32, and bf16 at head dim 80), sequence
// lengths with tails, GQA and plain heads, with and without packed segments.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);

// Nondecreasing ids, as packed sequences have: a document boundary every ~8 tokens in even rows,
// every ~100 in odd ones, so that the kernels meet both tiles across boundaries and tiles inside
// one document (Params::one_segment).
Tensor random_segments(int64_t b, int64_t s, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::vector<int32_t> ids(b * s);
  for (int64_t r = 0; r < b; ++r) {
    const uint64_t mean_length = r % 2 == 0 ? 8 : 100;
    int32_t id = 0;
    for (int64_t i = 0; i < s; ++i) ids[r * s + i] = id += (i > 0 && gen() % mean_length == 0);
  }
  return Tensor::from_vector(ids, {b, s}, DType::I32);
}

struct Heads {
  int64_t q, kv;
};

using Param = std::tuple<DType, int64_t /*head dim*/, int64_t /*seq*/, Heads, bool /*segments*/>;

class CudaAttention : public ::testing::TestWithParam<Param> {};

TEST_P(CudaAttention, ForwardAndBackwardMatchCpu) {
  TS_REQUIRE_GPU();
  const auto [dtype, d, s, heads, with_segments] = GetParam();
  const int64_t b = 2;
  const uint64_t seed = fresh_seed();
  const float scale = 1.0f / std::sqrt(float(d));
  const double tol = dtype == DType::F32 ? 1e-4 : 2e-2;

  Tensor q = random_tensor({b, s, heads.q, d}, dtype, gpu, seed);
  Tensor k = random_tensor({b, s, heads.kv, d}, dtype, gpu, seed + 1);
  Tensor v = random_tensor({b, s, heads.kv, d}, dtype, gpu, seed + 2);
  Tensor dout = random_tensor(q.shape(), dtype, gpu, seed + 3);
  Tensor seg = with_segments ? random_segments(b, s, seed + 4) : Tensor();
  Tensor gpu_seg = with_segments ? seg.to(gpu) : Tensor();

  Tensor out = Tensor::empty(q.shape(), dtype, gpu), lse = Tensor::empty({b, heads.q, s}, DType::F32, gpu);
  ops::attention_forward(out, lse, q, k, v, scale, gpu_seg);
  Tensor dq = Tensor::empty(q.shape(), dtype, gpu), dk = Tensor::empty(k.shape(), dtype, gpu),
         dv = Tensor::empty(v.shape(), dtype, gpu);
  ops::fill(dq, 3.0f);  // written, not accumulated
  ops::fill(dk, 3.0f);
  ops::fill(dv, 3.0f);
  ops::attention_backward(dq, dk, dv, dout, q, k, v, out, lse, scale, gpu_seg);

  // The reference sees the same (rounded) inputs in f32 and keeps its results in f32.
  auto f32 = [](const Tensor& t) { return ops::cast(t.to(Device::cpu()), DType::F32); };
  Tensor cq = f32(q), ck = f32(k), cv = f32(v), cdout = f32(dout);
  Tensor ref_out = Tensor::empty(q.shape(), DType::F32), ref_lse = Tensor::empty(lse.shape(), DType::F32);
  ops::attention_forward(ref_out, ref_lse, cq, ck, cv, scale, seg);
  Tensor ref_dq = Tensor::empty(q.shape(), DType::F32), ref_dk = Tensor::empty(k.shape(), DType::F32),
         ref_dv = Tensor::empty(v.shape(), DType::F32);
  ops::attention_backward(ref_dq, ref_dk, ref_dv, cdout, cq, ck, cv, ref_out, ref_lse, scale, seg);

  EXPECT_LT(relative_error(out, ref_out), tol) << "out, seed " << seed;
  EXPECT_LT(relative_error(lse, ref_lse), 1e-5) << "lse, seed " << seed;
  // Where a query sees only itself (S = 1, or a one-token segment) its softmax is constant and the
  // true dq and dk are exactly zero: their errors are measured against the scale of dv instead.
  auto error_vs = [](const Tensor& got, const Tensor& want, const Tensor& scale) {
    const double norm_want = std::sqrt(squared_norm(want)), norm_scale = std::sqrt(squared_norm(scale));
    return relative_error(got, want) * norm_want / std::max(norm_want, norm_scale);
  };
  EXPECT_LT(error_vs(dq, ref_dq, ref_dv), tol) << "dq, seed " << seed;
  EXPECT_LT(error_vs(dk, ref_dk, ref_dv), tol) << "dk, seed " << seed;
  EXPECT_LT(relative_error(dv, ref_dv), tol) << "dv, seed " << seed;
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

// A long sequence through the tensor-core kernels: many key tiles per query tile and atomics
// into dq from many CTAs.
TEST(CudaAttentionLong, Bf16Sequence1000MatchesCpu) {
  TS_REQUIRE_GPU();
  const int64_t b = 1, s = 1000, hq = 4, hkv = 1, d = 128;
  const uint64_t seed = fresh_seed();
  const float scale = 1.0f / std::sqrt(float(d));
  Tensor q = random_tensor({b, s, hq, d}, DType::BF16, gpu, seed);
  Tensor k = random_tensor({b, s, hkv, d}, DType::BF16, gpu, seed + 1);
  Tensor v = random_tensor({b, s, hkv, d}, DType::BF16, gpu, seed + 2);
  Tensor out = Tensor::empty(q.shape(), DType::BF16, gpu), lse = Tensor::empty({b, hq, s}, DType::F32, gpu);
  ops::attention_forward(out, lse, q, k, v, scale);
  Tensor ref_out = Tensor::empty(q.shape(), DType::F32), ref_lse = Tensor::empty(lse.shape(), DType::F32);
  ops::attention_forward(ref_out, ref_lse, ops::cast(q.to(Device::cpu()), DType::F32),
                         ops::cast(k.to(Device::cpu()), DType::F32), ops::cast(v.to(Device::cpu()), DType::F32),
                         scale);
  EXPECT_LT(relative_error(out, ref_out), 2e-2) << "seed " << seed;
  EXPECT_LT(relative_error(lse, ref_lse), 1e-5) << "seed " << seed;
}

TEST(CudaAttentionChecks, HeadDimAbove256IsAClearError) {
  TS_REQUIRE_GPU();
  Tensor q = Tensor::empty({1, 4, 1, 264}, DType::BF16, gpu);
  Tensor out = Tensor::empty(q.shape(), DType::BF16, gpu), lse = Tensor::empty({1, 1, 4}, DType::F32, gpu);
  ops::fill(q, 0.5f);
  EXPECT_THROW(ops::attention_forward(out, lse, q, q, q, 0.1f), Error);
}

}  // namespace
