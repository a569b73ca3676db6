// The int8 rows gemv (kernels/cuda/gemv_packed_rows.cu, TESSERA_PACKED_GEMV=rows) against the CPU
// reference on fresh random inputs, with each row's K in 1, 2 or 4 pieces
// (TESSERA_PACKED_ROWS_SEGMENTS, and auto): one weight through gemm_packed (A in bf16, f16 and
// f32, C in f32 or A's dtype, alpha, beta and a bias; M 1-5 and 8: launches of 1, 2 and 4 rows of A
// with a partial last one), q/k/v stacks through project_many_packed and gate/up with the SwiGLU
// through project_swiglu_packed, both also with more rows than the resident blocks take at once.
// Shapes: a single row, rows no multiple of the block's 4 items, K of one load (16), of a partial
// last round (1040, 4112) and long enough for 4 pieces (16400: the last piece shorter than the
// others). q8_0 under rows runs v1: the same numbers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/ops.h"
#include "kernels/packed_gemv_variant.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);
const Device cpu = Device::cpu();
const QuantSpec kInt8{QuantScheme::Int8}, kQ8_0{QuantScheme::Q8_0};
const char* const kSegments[] = {"auto", "1", "2", "4"};

// TESSERA_PACKED_GEMV=rows with `segments` pieces asked for while in scope.
struct RowsVariant {
  explicit RowsVariant(const char* segments) { set_packed_gemv_variant({.gemv = "rows", .segments = segments}); }
  ~RowsVariant() { unset_packed_gemv_variant(); }
};

Tensor nans(Shape shape, DType dtype) { return testing_util::nans(std::move(shape), dtype, gpu); }

double tolerance(DType c) { return c == DType::F32 ? 2e-5 : c == DType::BF16 ? 1e-2 : 2e-3; }

struct Shape2 {
  int64_t n, k;
};

void check_gemm(const QuantSpec& spec, Shape2 shape, DType a_dtype, int64_t m) {
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(spec.scheme) << " N " << shape.n << " K " << shape.k << " A "
                                    << dtype_name(a_dtype) << " M " << m << " seed " << seed);
  const PackedTensor w = quant::quantize(random_tensor({shape.n, shape.k}, DType::F32, cpu, seed, 0.05f), spec);
  const PackedTensor w_gpu = w.to(gpu);
  const Tensor a = random_tensor({m, shape.k}, a_dtype, cpu, seed + 1);
  const Tensor a_gpu = a.to(gpu), w_f32 = quant::dequantize(w, DType::F32), a_f32 = ops::cast(a, DType::F32);
  for (DType c_dtype : {DType::F32, a_dtype}) {
    SCOPED_TRACE(dtype_name(c_dtype));
    const Tensor bias = random_tensor({shape.n}, c_dtype, cpu, seed + 2);
    const Tensor c0 = random_tensor({m, shape.n}, c_dtype, cpu, seed + 3);
    for (auto [alpha, beta, with_bias] : {std::tuple{1.0f, 0.0f, false}, std::tuple{0.5f, 0.75f, true}}) {
      SCOPED_TRACE(::testing::Message() << "alpha " << alpha << " beta " << beta);
      const Tensor want = ops::cast(c0, DType::F32);
      ops::gemm(want, a_f32, w_f32, false, true, alpha, beta,
                with_bias ? ops::cast(bias, DType::F32) : Tensor());
      for (const char* segments : kSegments) {
        SCOPED_TRACE(::testing::Message() << "segments " << segments);
        const RowsVariant rows(segments);
        // beta 0 must not read C: a C of NaNs stays out of the result.
        const Tensor got = beta == 0.0f ? nans({m, shape.n}, c_dtype) : c0.to(gpu);
        ops::gemm_packed(got, a_gpu, w_gpu, true, alpha, beta, with_bias ? bias.to(gpu) : Tensor(),
                         PackedGemmKernel::Fused);
        EXPECT_LT(relative_error(host_f32(got), host_f32(want)), tolerance(c_dtype));
      }
    }
  }
}

TEST(CudaGemvPackedRows, MatchesTheDequantizedProduct) {
  TS_REQUIRE_GPU();
  const std::vector<Shape2> int8_shapes = {{37, 1040}, {5, 16}, {1, 4112}, {300, 4112}, {37, 16400}};
  const std::vector<Shape2> q8_0_shapes = {{37, 1056}, {300, 4128}};  // whole llama.cpp blocks of 32
  for (const QuantSpec& spec : {kInt8, kQ8_0})
    for (Shape2 shape : spec.scheme == QuantScheme::Int8 ? int8_shapes : q8_0_shapes)
      for (DType a_dtype : {DType::BF16, DType::F16, DType::F32})
        for (int64_t m : {1, 2, 3, 4, 5, 8}) check_gemm(spec, shape, a_dtype, m);
}

// q/k/v stacks (rows that are no multiple of the block's items; biases) against the CPU's
// project_many_packed.
TEST(CudaGemvPackedRows, StacksMatchTheReference) {
  TS_REQUIRE_GPU();
  struct Stack {
    int64_t k;
    std::vector<int64_t> n;
  };
  // The last two: more items than an H200's resident blocks take at once (each block walks several,
  // the next one's first loads issued during the last), K whole and in 2 or 4 pieces.
  for (const Stack& st : {Stack{1040, {37, 13, 21}}, Stack{4112, {9, 30, 5}}, Stack{16400, {7, 3}},
                          Stack{1040, {6000, 2300}}, Stack{16400, {900, 300}}})
    for (int64_t m : {1, 2, 3, 4, 8}) {
      const uint64_t seed = fresh_seed();
      SCOPED_TRACE(::testing::Message() << "K " << st.k << " weights " << st.n.size() << " M " << m << " seed "
                                        << seed);
      const Tensor x = random_tensor({m, st.k}, DType::BF16, cpu, seed);
      std::vector<PackedTensor> w, w_gpu;
      std::vector<Tensor> b, b_gpu, want;
      for (size_t i = 0; i < st.n.size(); ++i) {
        w.push_back(quant::quantize(random_tensor({st.n[i], st.k}, DType::F32, cpu, seed + 1 + i, 0.05f), kInt8));
        w_gpu.push_back(w.back().to(gpu));
        b.push_back(random_tensor({st.n[i]}, DType::BF16, cpu, seed + 10 + i));
        b_gpu.push_back(b.back().to(gpu));
        want.push_back(Tensor::empty({m, st.n[i]}, DType::BF16));
      }
      std::vector<const PackedTensor*> ws, ws_gpu;
      for (size_t i = 0; i < w.size(); ++i) ws.push_back(&w[i]), ws_gpu.push_back(&w_gpu[i]);
      ops::project_many_packed(want, x, ws, b);
      for (const char* segments : kSegments) {
        SCOPED_TRACE(::testing::Message() << "segments " << segments);
        const RowsVariant rows(segments);
        std::vector<Tensor> got;
        for (int64_t n : st.n) got.push_back(nans({m, n}, DType::BF16));
        ops::project_many_packed(got, x.to(gpu), ws_gpu, b_gpu);
        for (size_t i = 0; i < got.size(); ++i)
          EXPECT_LT(relative_error(got[i], want[i]), rounding_tolerance(DType::BF16)) << "weight " << i;
      }
    }
}

// gate/up with the SwiGLU (one row, rows no multiple of the block's items) against the CPU's
// project_swiglu_packed.
TEST(CudaGemvPackedRows, SwigluMatchesTheReference) {
  TS_REQUIRE_GPU();
  // The last two: more items than the resident blocks take at once, as in StacksMatchTheReference.
  for (Shape2 shape : {Shape2{37, 1184}, Shape2{1, 1024}, Shape2{300, 4112}, Shape2{21, 16400}, Shape2{4500, 1024},
                       Shape2{900, 16400}})
    for (int64_t m : {1, 2, 3, 4, 8}) {
      const uint64_t seed = fresh_seed();
      SCOPED_TRACE(::testing::Message() << "F " << shape.n << " K " << shape.k << " M " << m << " seed " << seed);
      const Tensor x = random_tensor({m, shape.k}, DType::BF16, cpu, seed);
      const auto weight = [&](uint64_t at) {
        return quant::quantize(random_tensor({shape.n, shape.k}, DType::F32, cpu, seed + at, 0.05f), kInt8);
      };
      const PackedTensor gate = weight(1), up = weight(2);
      const PackedTensor gate_gpu = gate.to(gpu), up_gpu = up.to(gpu);
      const Tensor want = Tensor::empty({m, shape.n}, DType::BF16);
      ops::project_swiglu_packed(want, x, gate, up);
      for (const char* segments : kSegments) {
        SCOPED_TRACE(::testing::Message() << "segments " << segments);
        const RowsVariant rows(segments);
        const Tensor got = nans({m, shape.n}, DType::BF16);
        ops::project_swiglu_packed(got, x.to(gpu), gate_gpu, up_gpu);
        // A few outputs near zero make a norm-relative error loose; each must still be close.
        EXPECT_LT(relative_error(got, want), m * shape.n >= 16 ? rounding_tolerance(DType::BF16) : 2e-2);
      }
    }
}

TEST(CudaGemvPackedRows, AnUnknownSegmentCountIsAnError) {
  TS_REQUIRE_GPU();
  const PackedTensor w = quant::quantize(random_tensor({8, 64}, DType::F32, cpu, 1, 0.05f), kInt8).to(gpu);
  const Tensor a = random_tensor({1, 64}, DType::BF16, gpu, 2), c = nans({1, 8}, DType::BF16);
  const RowsVariant rows("3");
  try {
    ops::gemm_packed(c, a, w, true, 1.0f, 0.0f, Tensor(), PackedGemmKernel::Fused);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TESSERA_PACKED_ROWS_SEGMENTS"), std::string::npos) << e.what();
  }
}

}  // namespace
