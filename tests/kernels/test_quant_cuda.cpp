// CUDA quantize and dequantize against the CPU reference, bit for bit, on fresh random inputs:
// every scheme, input and output dtype, partial blocks and odd counts, several nested NF4 scale
// blocks, and misaligned views (the one-element path of the dequantize kernels).
#include <gtest/gtest.h>

#include <cstring>

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
  for (DType out : {DType::F32, DType::BF16, DType::F16}) {
    SCOPED_TRACE(dtype_name(out));
    expect_bitwise_equal(quant::dequantize(got, out), quant::dequantize(want, out));
    // One element in: no aligned packs, the one-element path.
    const Tensor cpu_out = Tensor::empty({want.numel() + 1}, out), gpu_out = Tensor::empty({want.numel() + 1}, out, gpu);
    ops::dequantize(cpu_out.flat_slice(1, want.numel()), want);
    ops::dequantize(gpu_out.flat_slice(1, want.numel()), got);
    expect_bitwise_equal(gpu_out.flat_slice(1, want.numel()), cpu_out.flat_slice(1, want.numel()));
  }
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
                                         Case{{QuantScheme::Int4, 128, false}, {4, 512}}),
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
  const Tensor zeros = Tensor::from_vector(std::vector<float>(2 * 64, 0.0f), {2, 64}, DType::F32);
  for (const QuantSpec& spec : {QuantSpec{QuantScheme::Int8}, QuantSpec{QuantScheme::Int4, 64, true}}) {
    const PackedTensor got = quant::quantize(zeros.to(gpu), spec);
    expect_same_parts(got, quant::quantize(zeros, spec));
    EXPECT_EQ(host_f32(quant::dequantize(got, DType::F32)), std::vector<float>(128, 0.0f));
  }
}
