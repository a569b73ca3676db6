// CUDA quantize and dequantize against the CPU reference, bit for bit, on fresh random inputs:
// every scheme, input and output dtype, partial blocks and odd counts, several nested NF4 scale
// blocks, and misaligned views (the one-element path of the dequantize kernels); dequantize under
// each TESSERA_DEQUANTIZE variant.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/error.h"

#include "kernels/ops.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);

void expect_same_parts(const PackedTensor& got, const PackedTensor& want) {
  const PackedTensor host = got.to(Device::cpu());
  ASSERT_EQ(host.parts.size(), want.parts.size());
  for (size_t i = 0; i < want.parts.size(); ++i)
    EXPECT_EQ(std::memcmp(host.parts[i].data(), want.parts[i].data(), want.parts[i].nbytes()), 0)
        << packed_part_specs(want.spec, want.shape)[i].name;
}

void expect_bitwise_equal(const Tensor& got, const Tensor& want) {
  const Tensor host = got.to(Device::cpu());
  ASSERT_EQ(host.nbytes(), want.nbytes());
  EXPECT_EQ(std::memcmp(host.data(), want.data(), want.nbytes()), 0) << got.str();
}

struct Case {
  QuantSpec spec;
  Shape shape;
};

}  // namespace

class CudaQuantize : public ::testing::TestWithParam<std::tuple<Case, DType>> {};

TEST_P(CudaQuantize, CodesScalesAndValuesEqualTheCpu) {
  TS_REQUIRE_GPU();
  const auto [c, dtype] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(c.spec.scheme) << shape_str(c.shape) << " "
                                    << dtype_name(dtype) << " seed " << seed);
  const Tensor x = random_tensor(c.shape, dtype, Device::cpu(), seed, 0.02f);
  const PackedTensor want = quant::quantize(x, c.spec);
  const PackedTensor got = quant::quantize(x.to(gpu), c.spec);
  expect_same_parts(got, want);
  for (const char* variant : {"runs", "units"}) {  // TESSERA_DEQUANTIZE: runs (default) reads int4 and int8 run by run
    setenv("TESSERA_DEQUANTIZE", variant, 1);
    for (DType out : {DType::F32, DType::BF16, DType::F16}) {
      SCOPED_TRACE(::testing::Message() << dtype_name(out) << " " << variant);
      expect_bitwise_equal(quant::dequantize(got, out), quant::dequantize(want, out));
      // One element in: no aligned packs, the one-element path.
      const Tensor cpu_out = Tensor::empty({want.numel() + 1}, out), gpu_out = Tensor::empty({want.numel() + 1}, out, gpu);
      ops::dequantize(cpu_out.flat_slice(1, want.numel()), want);
      ops::dequantize(gpu_out.flat_slice(1, want.numel()), got);
      expect_bitwise_equal(gpu_out.flat_slice(1, want.numel()), cpu_out.flat_slice(1, want.numel()));
    }
  }
  unsetenv("TESSERA_DEQUANTIZE");
}

// An unknown TESSERA_DEQUANTIZE is an error naming it and the choices.
TEST(CudaQuantizeEdges, UnknownDequantizeVariantIsAnError) {
  TS_REQUIRE_GPU();
  const PackedTensor w = quant::quantize(random_tensor({4, 64}, DType::F32, Device::cpu(), 1), {QuantScheme::Int4});
  setenv("TESSERA_DEQUANTIZE", "rows", 1);
  try {
    quant::dequantize(w.to(gpu), DType::BF16);
    ADD_FAILURE() << "TESSERA_DEQUANTIZE=rows ran";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("TESSERA_DEQUANTIZE: unknown 'rows' (expected units or runs)"), std::string::npos)
        << e.what();
  }
  unsetenv("TESSERA_DEQUANTIZE");
}

INSTANTIATE_TEST_SUITE_P(
    Schemes, CudaQuantize,
    ::testing::Combine(::testing::Values(Case{{QuantScheme::NF4}, {3, 70}},           // a partial block
                                         Case{{QuantScheme::NF4}, {1, 131}},          // odd: a padded nibble
                                         Case{{QuantScheme::NF4}, {300, 130}},        // 610 blocks, 3 scales
                                         Case{{QuantScheme::Int8}, {7, 333}},
                                         Case{{QuantScheme::Int8}, {64, 4096}},
                                         Case{{QuantScheme::Int4, 32}, {5, 96}},
                                         Case{{QuantScheme::Int4, 64, false}, {9, 192}},
                                         Case{{QuantScheme::Int4, 128, true}, {33, 256}},
                                         Case{{QuantScheme::Int4, 128, false}, {4, 512}},
                                         Case{{QuantScheme::Q8_0}, {3, 96}},
                                         Case{{QuantScheme::Q8_0}, {256, 1024}},
                                         Case{{QuantScheme::Q4_0}, {5, 64}},
                                         Case{{QuantScheme::Q4_0}, {128, 2048}}),
                       ::testing::Values(DType::F32, DType::BF16, DType::F16)));

TEST(CudaQuantizeEdges, AllZeroAndConstantBlocks) {
  TS_REQUIRE_GPU();
  // NF4: an all-zero block (1 / 0 = inf, 0 * inf = NaN: code 0) and equal absmax everywhere (a
  // zero nested scale); int8 and int4: all-zero rows and groups (scale 0, codes zero).
  std::vector<float> v(4 * 256, 0.5f);
  for (int i = 0; i < 64; ++i) v[128 + i] = 0.0f;
  const Tensor x = Tensor::from_vector(v, {4, 256}, DType::F32);
  for (const QuantSpec& spec : {QuantSpec{QuantScheme::NF4}, QuantSpec{QuantScheme::Int4, 32, false}}) {
    const PackedTensor want = quant::quantize(x, spec), got = quant::quantize(x.to(gpu), spec);
    expect_same_parts(got, want);
    expect_bitwise_equal(quant::dequantize(got, DType::F32), quant::dequantize(want, DType::F32));
  }
  // Negative zeros too: q4_0's block maximum stays +0 as the CPU loop finds it, int4 scales are +0.
  std::vector<float> z(2 * 64, 0.0f);
  for (int i = 0; i < 64; i += 3) z[i] = -0.0f;
  const Tensor zeros = Tensor::from_vector(z, {2, 64}, DType::F32);
  for (const QuantSpec& spec : {QuantSpec{QuantScheme::Int8}, QuantSpec{QuantScheme::Int4, 64, true},
                                QuantSpec{QuantScheme::Q8_0}, QuantSpec{QuantScheme::Q4_0}}) {
    const PackedTensor got = quant::quantize(zeros.to(gpu), spec);
    expect_same_parts(got, quant::quantize(zeros, spec));
    for (float v : host_f32(quant::dequantize(got, DType::F32))) EXPECT_EQ(v, 0.0f);
  }
  // q4_0 ties: equal magnitudes of both signs, the first one sets the scale's sign.
  std::vector<float> t = host_f32(random_tensor({1, 64}, DType::F32, Device::cpu(), fresh_seed()));
  t[7] = 5.0f, t[9] = -5.0f, t[40] = -6.0f, t[63] = 6.0f;
  const Tensor ties = Tensor::from_vector(t, {1, 64}, DType::F32);
  expect_same_parts(quant::quantize(ties.to(gpu), {QuantScheme::Q4_0}), quant::quantize(ties, {QuantScheme::Q4_0}));
}

class CudaGemmPacked : public ::testing::TestWithParam<std::tuple<QuantScheme, bool, int64_t>> {};

// Forward (trans_b) and input gradient shapes, bf16 activations, a decode-sized and a prefill-sized
// batch, alpha, beta and a bias.
TEST_P(CudaGemmPacked, MatchesCpu) {
  TS_REQUIRE_GPU();
  const auto [scheme, trans_b, tokens] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(scheme) << " trans_b " << trans_b << " tokens " << tokens
                                    << " seed " << seed);
  const int64_t out = 96, in = 256;
  const PackedTensor w = quant::quantize(random_tensor({out, in}, DType::BF16, Device::cpu(), seed, 0.05f), {scheme});
  const Tensor x = random_tensor({tokens, trans_b ? in : out}, DType::BF16, Device::cpu(), seed + 1);
  const Tensor bias = random_tensor({trans_b ? out : in}, DType::F32, Device::cpu(), seed + 2);
  const Tensor c = random_tensor({tokens, trans_b ? out : in}, DType::F32, Device::cpu(), seed + 3);
  const Tensor gpu_c = c.to(gpu);
  ops::gemm_packed(c, x, w, trans_b, 0.5f, 0.75f, bias);
  ops::gemm_packed(gpu_c, x.to(gpu), w.to(gpu), trans_b, 0.5f, 0.75f, bias.to(gpu));
  EXPECT_LT(relative_error(gpu_c, c), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(Schemes, CudaGemmPacked,
                         ::testing::Combine(::testing::Values(QuantScheme::NF4, QuantScheme::Int8, QuantScheme::Int4,
                                                              QuantScheme::Q8_0, QuantScheme::Q4_0),
                                            ::testing::Bool(), ::testing::Values(int64_t(1), int64_t(77))));

class CudaFakeQuantMask : public ::testing::TestWithParam<std::tuple<QuantSpec, DType>> {};

TEST_P(CudaFakeQuantMask, MasksAsTheCpu) {
  TS_REQUIRE_GPU();
  const auto [spec, dtype] = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(spec.scheme) << " " << dtype_name(dtype) << " seed " << seed);
  const Tensor w = random_tensor({37, 256}, dtype, Device::cpu(), seed, 0.05f);
  const Tensor grad = random_tensor({37, 256}, DType::F32, Device::cpu(), seed + 1);
  const Tensor gpu_grad = grad.to(gpu);
  ops::fake_quantize_mask(grad, w, spec);
  ops::fake_quantize_mask(gpu_grad, w.to(gpu), spec);
  expect_bitwise_equal(gpu_grad, grad);
  // And the fake-quantized weights themselves.
  const Tensor fq = Tensor::empty(w.shape(), dtype), gpu_fq = Tensor::empty(w.shape(), dtype, gpu);
  ops::fake_quantize(fq, w, spec);
  ops::fake_quantize(gpu_fq, w.to(gpu), spec);
  expect_bitwise_equal(gpu_fq, fq);
}

INSTANTIATE_TEST_SUITE_P(Schemes, CudaFakeQuantMask,
                         ::testing::Combine(::testing::Values(QuantSpec{QuantScheme::Int4, 32},
                                                              QuantSpec{QuantScheme::Int4, 64, false},
                                                              QuantSpec{QuantScheme::Int4, 128},
                                                              QuantSpec{QuantScheme::Q4_0}),
                                            ::testing::Values(DType::F32, DType::BF16)));

TEST(CudaFakeQuantActivations, Int8RowsMatchTheCpu) {
  TS_REQUIRE_GPU();
  const uint64_t seed = fresh_seed();
  for (const auto& [dtype, shape] : {std::pair{DType::BF16, Shape{77, 4096}}, std::pair{DType::F32, Shape{3, 5, 33}}}) {
    SCOPED_TRACE(::testing::Message() << dtype_name(dtype) << shape_str(shape) << " seed " << seed);
    const Tensor x = random_tensor(shape, dtype, Device::cpu(), seed);
    const Tensor cpu_out = Tensor::empty(shape, dtype), gpu_out = Tensor::empty(shape, dtype, gpu);
    ops::fake_quantize_rows_int8(cpu_out, x);
    ops::fake_quantize_rows_int8(gpu_out, x.to(gpu));
    expect_bitwise_equal(gpu_out, cpu_out);
  }
}
