// The fused packed gemv (kernels/cuda/gemv_packed.cu, and its tensor-core variants of
// gemv_packed_mma.cu, each run through TESSERA_PACKED_GEMV) against the CPU reference on fresh
// random inputs: every scheme (int4 in each group size, symmetric and not), M from 1 to 9 (v1's
// m-tiles of 4, the mma kernel's 8 columns, a partial last tile), N not a multiple of the rows of
// a thread block (4-8, 16) and N large enough for each warp count, K of several rounds of units
// with a partial last one, A in f32, bf16
// and f16, C in f32 or A's dtype, alpha, beta and a bias. The reference is the exact product of
// the dequantized fp32 weights and A (what v1 sums in fp32), so v1's f32 outputs agree to
// accumulation order; the mma kernels round each weight to A's dtype first (as the dequantize
// path does), so their outputs agree to the rounding of A's dtype and of C's.
// Auto picks the fused kernel for small M and falls back where it cannot run (a misaligned A), with
// the same result.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "kernels/ops.h"
#include "kernels/packed_gemv_variant.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);

Tensor zeros(Shape shape, DType dtype) {
  Tensor t = Tensor::empty(std::move(shape), dtype);
  ops::fill(t, 0.0f);
  return t;
}

struct Case {
  QuantSpec spec;
  int64_t n, k;
};

// C = alpha A dequantize(W)^T + beta C + bias, in fp32 on the CPU.
Tensor reference(const Tensor& a, const PackedTensor& w, const Tensor& c, float alpha, float beta, const Tensor& bias) {
  const Tensor out = ops::cast(c, DType::F32);
  ops::gemm(out, ops::cast(a, DType::F32), quant::dequantize(w, DType::F32), false, true, alpha, beta,
            ops::cast(bias, DType::F32));
  return out;
}

double tolerance(DType c) { return c == DType::F32 ? 2e-5 : c == DType::BF16 ? 1e-2 : 2e-3; }

// Each fused variant in turn (an f32 A and nf4 run v1 in every one; auto takes v1 for int8, q8_0
// and q4_0 at M <= 2 (rows, fp32 sums too, for int8 at M 1 here: N <= K), group for int4 at M <= 2,
// mma otherwise; wide and wide4 are mma reading int4
// 32 weights a load, group wide4 with the scales applied to each group's fp32 sum at M <= 2,
// stream that arithmetic by persistent blocks at M <= 2, wide4 beyond, with each ring depth), and
// three with K split over clusters of blocks
// (TESSERA_PACKED_GEMV_SPLIT=auto: the narrow N here splits wherever K has the rounds), and stream
// with 1, 2 or 4 warps a tile or as many as auto takes (TESSERA_PACKED_STREAM_TILE_WARPS), and
// stream without its symmetric int4 policy (TESSERA_PACKED_STREAM_SYMMETRIC=0: symmetric weights as asymmetric ones).
const PackedGemvVariant kVariants[] = {
    {.gemv = "auto"},
    {.gemv = "v1"},
    {.gemv = "mma"},
    {.gemv = "wide"},
    {.gemv = "wide4"},
    {.gemv = "group"},
    {.gemv = "stream"},
    {.gemv = "mma", .split = "auto"},
    {.gemv = "wide4", .split = "auto"},
    {.gemv = "group", .split = "auto"},
    {.gemv = "stream", .depth = "2"},
    {.gemv = "stream", .depth = "6"},
    {.gemv = "stream", .chains = "2"},
    {.gemv = "stream", .depth = "6", .chains = "2"},
    {.gemv = "stream", .tile_warps = "1"},
    {.gemv = "stream", .tile_warps = "2"},
    {.gemv = "stream", .tile_warps = "4"},
    {.gemv = "stream", .depth = "6", .tile_warps = "1"},
    {.gemv = "stream", .tile_warps = "auto"},
    {.gemv = "stream", .symmetric = "0"},
    {.gemv = "stream", .chains = "2", .symmetric = "0"}};

class CudaFusedGemv : public ::testing::TestWithParam<std::tuple<Case, DType, int64_t>> {};

TEST_P(CudaFusedGemv, MatchesTheDequantizedProduct) {
  TS_REQUIRE_GPU();
  const auto [c, a_dtype, m] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(c.spec.scheme) << " g" << c.spec.group_size
                                    << (c.spec.symmetric ? " sym" : " asym") << " N " << c.n << " K " << c.k << " A "
                                    << dtype_name(a_dtype) << " M " << m << " seed " << seed);
  const PackedTensor w = quant::quantize(random_tensor({c.n, c.k}, DType::F32, Device::cpu(), seed, 0.05f), c.spec);
  const PackedTensor w_gpu = w.to(gpu);
  const Tensor a = random_tensor({m, c.k}, a_dtype, Device::cpu(), seed + 1);
  for (DType c_dtype : {DType::F32, a_dtype}) {
    SCOPED_TRACE(dtype_name(c_dtype));
    const Tensor bias = random_tensor({c.n}, c_dtype, Device::cpu(), seed + 2);
    const Tensor c0 = random_tensor({m, c.n}, c_dtype, Device::cpu(), seed + 3);
    for (auto [alpha, beta, with_bias] : {std::tuple{1.0f, 0.0f, false}, std::tuple{0.5f, 0.75f, true}}) {
      const Tensor want = reference(a, w, c0, alpha, beta, with_bias ? bias : zeros({c.n}, c_dtype));
      for (const PackedGemvVariant& v : kVariants) {
        set_packed_gemv_variant(v);
        const std::string variant = v.gemv;
        // beta 0 must not read C: a C of NaNs stays out of the result.
        const Tensor got = beta == 0.0f ? Tensor::empty({m, c.n}, c_dtype, gpu) : c0.to(gpu);
        if (beta == 0.0f) ops::fill(got, NAN);
        ops::gemm_packed(got, a.to(gpu), w_gpu, true, alpha, beta, with_bias ? bias.to(gpu) : Tensor(),
                         PackedGemmKernel::Fused);
        const bool v1 = variant == "v1" ||
                        (variant == "auto" && m <= 2 &&
                         (c.spec.scheme == QuantScheme::Int8 || c.spec.scheme == QuantScheme::Q8_0 ||
                          c.spec.scheme == QuantScheme::Q4_0));
        const bool mma = !v1 && a_dtype != DType::F32 && c.spec.scheme != QuantScheme::NF4;
        EXPECT_LT(relative_error(host_f32(got), host_f32(want)),
                  mma ? std::max(tolerance(c_dtype), tolerance(a_dtype)) : tolerance(c_dtype))
            << "alpha " << alpha << " " << describe(v);
      }
      unset_packed_gemv_variant();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Schemes, CudaFusedGemv,
    ::testing::Combine(::testing::Values(Case{{QuantScheme::Int8}, 37, 1040}, Case{{QuantScheme::Int8}, 8, 4096},
                                         Case{{QuantScheme::Int4, 32, true}, 37, 1184},
                                         Case{{QuantScheme::Int4, 32, false}, 13, 2080},
                                         Case{{QuantScheme::Int4, 32, false}, 37, 8224},
                                         Case{{QuantScheme::Int4, 64, true}, 21, 1152},
                                         Case{{QuantScheme::Int4, 64, false}, 37, 1152},
                                         Case{{QuantScheme::Int4, 128, true}, 18, 2048},
                                         // K of whole multiples of 1024 weights: one, three, two of 2048
                                         Case{{QuantScheme::Int4, 32, false}, 300, 1024},
                                         Case{{QuantScheme::Int8}, 37, 2048},
                                         Case{{QuantScheme::Int4, 32, true}, 37, 3072},
                                         Case{{QuantScheme::Int4, 64, false}, 21, 2048},
                                         Case{{QuantScheme::Int4, 128, false}, 37, 4096},
                                         Case{{QuantScheme::Int4, 128, false}, 37, 1152},
                                         Case{{QuantScheme::Q8_0}, 37, 1184}, Case{{QuantScheme::Q8_0}, 6, 96},
                                         Case{{QuantScheme::Q8_0}, 19, 4160},
                                         Case{{QuantScheme::Q4_0}, 37, 1184}, Case{{QuantScheme::Q4_0}, 5, 2080},
                                         Case{{QuantScheme::NF4}, 37, 1040}, Case{{QuantScheme::NF4}, 9, 2064},
                                         // N wide enough for blocks of 8 and 4 warps (H200: 132 SMs)
                                         Case{{QuantScheme::Int4, 128, true}, 4240, 384},
                                         Case{{QuantScheme::Int4, 32, false}, 8464, 96},
                                         Case{{QuantScheme::Q4_0}, 4240, 96}),
                       ::testing::Values(DType::BF16, DType::F32, DType::F16),
                       ::testing::Range(int64_t(1), int64_t(10))));

// ops::gemm_packed's own choice: small M fused, large M and misaligned A dequantized; all equal the
// reference. A K that is no multiple of 16 cannot be fused: forcing it is an error naming why.
TEST(CudaGemmPackedChoice, AutoEqualsTheReferenceOnEveryPath) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 70, k = 512;
  const PackedTensor w = quant::quantize(random_tensor({n, k}, DType::F32, Device::cpu(), seed, 0.05f), {QuantScheme::Q4_0});
  for (int64_t m : {int64_t(1), ops::kFusedPackedRows, ops::kFusedPackedRows + 1, int64_t(100)}) {
    SCOPED_TRACE(m);
    const Tensor a = random_tensor({m * k + 1}, DType::F32, Device::cpu(), seed + m);
    for (int64_t offset : {0, 1}) {  // offset 1: A misaligned, the dequantize path
      const Tensor a_view = a.flat_slice(offset, m * k).view({m, k});
      const Tensor got = Tensor::empty({m, n}, DType::F32, gpu);
      ops::gemm_packed(got, a.to(gpu).flat_slice(offset, m * k).view({m, k}), w.to(gpu), true);
      EXPECT_LT(relative_error(host_f32(got), host_f32(reference(a_view, w, zeros({m, n}, DType::F32), 1.0f,
                                                                 0.0f, zeros({n}, DType::F32)))),
                2e-5)
          << "offset " << offset;
    }
  }
  const PackedTensor odd = quant::quantize(random_tensor({4, 40}, DType::F32, Device::cpu(), seed), {QuantScheme::Int8});
  const Tensor out = Tensor::empty({1, 4}, DType::F32, gpu);
  try {
    ops::gemm_packed(out, random_tensor({1, 40}, DType::F32, gpu, seed), odd.to(gpu), true, 1.0f, 0.0f, Tensor(),
                     PackedGemmKernel::Fused);
    FAIL() << "a K of 40 was fused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("K = 40 is not a multiple of 16"), std::string::npos) << e.what();
  }
}

// An unknown TESSERA_PACKED_GEMV is an error naming it and the choices.
TEST(CudaGemmPackedChoice, UnknownVariantIsAnError) {
  TS_REQUIRE_GPU();
  const PackedTensor w = quant::quantize(random_tensor({4, 64}, DType::F32, Device::cpu(), 1), {QuantScheme::Int8});
  const Tensor out = Tensor::empty({1, 4}, DType::BF16, gpu);
  setenv("TESSERA_PACKED_GEMV", "v9", 1);
  try {
    ops::gemm_packed(out, random_tensor({1, 64}, DType::BF16, gpu, 2), w.to(gpu), true);
    FAIL() << "TESSERA_PACKED_GEMV=v9 ran";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "TESSERA_PACKED_GEMV: unknown 'v9' (expected auto, v1, mma, wide, wide4, group, stream or rows)"),
              std::string::npos)
        << e.what();
  }
  unsetenv("TESSERA_PACKED_GEMV");
}

// The tensor-core kernels with their warps a block (TESSERA_PACKED_GEMV_WARPS) and K's split over
// a cluster of blocks (TESSERA_PACKED_GEMV_SPLIT) fixed rather than chosen by size: each gives the
// reference's product, at a K of several rounds of every count with a partial last one (and, split
// 8 ways, walkers with no round at all); an unknown count is an error naming it.
TEST(CudaGemmPackedChoice, EachWarpCountAndSplitEqualsTheReference) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 37, k = 8224;
  const Tensor weights = random_tensor({n, k}, DType::F32, Device::cpu(), seed, 0.05f);
  const Tensor a = random_tensor({3, k}, DType::BF16, Device::cpu(), seed + 1);
  for (const QuantSpec& spec : {QuantSpec{QuantScheme::Int4, 32, false}, QuantSpec{QuantScheme::Q4_0}})
    for (int64_t m : {2, 3}) {  // group takes 1-2 rows of A
      const PackedTensor w = quant::quantize(weights, spec);
      const Tensor a_rows = a.narrow(0, m);
      const Tensor want = reference(a_rows, w, zeros({m, n}, DType::F32), 1.0f, 0.0f, zeros({n}, DType::F32));
      const PackedTensor w_gpu = w.to(gpu);
      for (const char* variant : {"mma", "wide", "wide4", "group"})
        for (const char* warps : {"", "4", "8", "16"})
          for (const char* split : {"1", "2", "8", "auto"}) {
            SCOPED_TRACE(::testing::Message() << quant_scheme_name(spec.scheme) << " M " << m << " " << variant
                                              << " warps '" << warps << "' split " << split);
            set_packed_gemv_variant({.gemv = variant, .split = split, .warps = warps});
            const Tensor got = Tensor::empty({m, n}, DType::F32, gpu);
            ops::gemm_packed(got, a_rows.to(gpu), w_gpu, true, 1.0f, 0.0f, Tensor(), PackedGemmKernel::Fused);
            EXPECT_LT(relative_error(host_f32(got), host_f32(want)), tolerance(DType::BF16));
          }
    }
  unset_packed_gemv_variant();
  const int64_t m = 3;
  const PackedTensor int4 = quant::quantize(weights, {QuantScheme::Int4}).to(gpu);
  for (auto [name, value, message] :
       {std::tuple{"TESSERA_PACKED_GEMV_WARPS", "5", "TESSERA_PACKED_GEMV_WARPS: unknown '5' (expected 4, 8 or 16)"},
        std::tuple{"TESSERA_PACKED_GEMV_SPLIT", "3", "TESSERA_PACKED_GEMV_SPLIT: unknown '3' (expected 1, 2, 4, 8 or auto)"}}) {
    unsetenv("TESSERA_PACKED_GEMV_WARPS");
    unsetenv("TESSERA_PACKED_GEMV_SPLIT");
    setenv(name, value, 1);
    try {
      ops::gemm_packed(Tensor::empty({m, n}, DType::F32, gpu), a.to(gpu), int4, true, 1.0f, 0.0f, Tensor(),
                       PackedGemmKernel::Fused);
      ADD_FAILURE() << name << "=" << value << " ran";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
  }
  unsetenv("TESSERA_PACKED_GEMV_WARPS");
  unsetenv("TESSERA_PACKED_GEMV_SPLIT");
  // The stream kernel's choices (int4 at one row of A takes it).
  const int64_t chunked_k = 2048;
  const PackedTensor chunked =
      quant::quantize(random_tensor({n, chunked_k}, DType::F32, Device::cpu(), seed), {QuantScheme::Int4}).to(gpu);
  for (auto [variant, name, value, message] :
       {std::tuple{"stream", "TESSERA_PACKED_STREAM_DEPTH", "3", "TESSERA_PACKED_STREAM_DEPTH: unknown '3' (expected 2, 4 or 6)"},
        std::tuple{"stream", "TESSERA_PACKED_STREAM_CHAINS", "3",
                   "TESSERA_PACKED_STREAM_CHAINS: unknown '3' (expected 1 or 2)"},
        std::tuple{"stream", "TESSERA_PACKED_STREAM_SYMMETRIC", "2",
                   "TESSERA_PACKED_STREAM_SYMMETRIC: unknown '2' (expected 0 or 1)"},
        std::tuple{"stream", "TESSERA_PACKED_STREAM_TILE_WARPS", "3",
                   "TESSERA_PACKED_STREAM_TILE_WARPS: unknown '3' (expected 1, 2, 4, 8 or auto)"}}) {
    setenv("TESSERA_PACKED_GEMV", variant, 1);
    setenv(name, value, 1);
    try {
      ops::gemm_packed(Tensor::empty({1, n}, DType::F32, gpu), random_tensor({1, chunked_k}, DType::BF16, gpu, seed),
                       chunked, true, 1.0f, 0.0f, Tensor(), PackedGemmKernel::Fused);
      ADD_FAILURE() << name << "=" << value << " ran";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
    unsetenv(name);
  }
  unsetenv("TESSERA_PACKED_GEMV");
}

// Dequantize + gemm in blocks of rows (16 MB of workspace each: 2048 rows of 2048 f32 here, so
// three blocks, the last of 4 rows), each writing a column block of C: every scheme that has it
// (nf4 takes the whole workspace), with alpha, beta and a bias.
TEST(CudaGemmPackedChoice, ChunkedDequantizeEqualsTheReference) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const int64_t n = 4100, k = 2048, m = 33;
  const Tensor weights = random_tensor({n, k}, DType::F32, Device::cpu(), seed, 0.05f);
  const Tensor a = random_tensor({m, k}, DType::F32, Device::cpu(), seed + 1);
  const Tensor bias = random_tensor({n}, DType::F32, Device::cpu(), seed + 2);
  const Tensor c0 = random_tensor({m, n}, DType::F32, Device::cpu(), seed + 3);
  for (const QuantSpec& spec : {QuantSpec{QuantScheme::Int8}, QuantSpec{QuantScheme::Int4, 64, false},
                                QuantSpec{QuantScheme::Q4_0}, QuantSpec{QuantScheme::NF4}}) {
    SCOPED_TRACE(quant_scheme_name(spec.scheme));
    const PackedTensor w = quant::quantize(weights, spec);
    const Tensor got = c0.to(gpu);
    ops::gemm_packed(got, a.to(gpu), w.to(gpu), true, 0.5f, 0.75f, bias.to(gpu), PackedGemmKernel::DequantizeChunked);
    EXPECT_LT(relative_error(host_f32(got), host_f32(reference(a, w, c0, 0.5f, 0.75f, bias))), 2e-5);
  }
}

}  // namespace
