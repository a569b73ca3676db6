// CUDA kernels of QAT with learned scales against the CPU reference on fresh random inputs: RTN's
// group scales and zero points and the packed copy from given scales bit for bit (weights and
// scales in f32, bf16, f16; scales moved off RTN's so that codes clamp), the straight-through
// mask bit for bit and the scale / zero gradients to float rounding (a warp sums in another order).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "kernels/ops.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

const Device gpu = Device::cuda(0);

struct Case {
  QuantSpec spec;
  Shape shape;
};

bool has_zero(const QuantSpec& spec) { return spec.scheme == QuantScheme::Int4 && !spec.symmetric; }

void expect_bitwise_equal(const Tensor& got, const Tensor& want, const char* what) {
  const Tensor host = got.to(Device::cpu());
  ASSERT_EQ(host.nbytes(), want.nbytes()) << what;
  EXPECT_EQ(std::memcmp(host.data(), want.data(), want.nbytes()), 0) << what;
}

// Scales (and zeros) off RTN's: each group's scale times a factor in [0.7, 1.3), zeros moved by -1..1.
Tensor jittered(const Tensor& t, uint64_t seed, bool zero, DType dtype) {
  std::vector<float> v = host_f32(t);
  const std::vector<float> r = host_f32(random_tensor(t.shape(), DType::F32, Device::cpu(), seed));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = zero ? v[i] + float(int(r[i] * 2) % 2) : v[i] * (1.0f + 0.3f * std::tanh(r[i]));
  return ops::cast(Tensor::from_vector(v, t.shape(), DType::F32), dtype);
}

}  // namespace

class CudaQuantizeScaled : public ::testing::TestWithParam<std::tuple<Case, DType>> {};

TEST_P(CudaQuantizeScaled, ScalesCodesMaskAndGradientsMatchTheCpu) {
  TS_REQUIRE_GPU();
  const auto [c, dtype] = GetParam();
  const QuantSpec spec = resolve_quant_spec(c.spec, c.shape);
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(spec.scheme) << shape_str(c.shape) << " " << dtype_name(dtype)
                                    << " seed " << seed);
  const Tensor w = random_tensor(c.shape, dtype, Device::cpu(), seed, 0.05f), w_gpu = w.to(gpu);
  const Shape shape = ops::quant_scale_shape(spec, c.shape);
  for (DType sdtype : {DType::F32, DType::BF16}) {
    SCOPED_TRACE(dtype_name(sdtype));
    // RTN's scales.
    const Tensor scale = Tensor::empty(shape, sdtype), zero = has_zero(spec) ? Tensor::empty(shape, sdtype) : Tensor();
    const Tensor scale_gpu = Tensor::empty(shape, sdtype, gpu);
    const Tensor zero_gpu = has_zero(spec) ? Tensor::empty(shape, sdtype, gpu) : Tensor();
    ops::quant_group_scales(scale, zero, w, spec);
    ops::quant_group_scales(scale_gpu, zero_gpu, w_gpu, spec);
    expect_bitwise_equal(scale_gpu, scale, "scale");
    if (zero.defined()) expect_bitwise_equal(zero_gpu, zero, "zero");

    // The packed copy from scales off RTN's.
    const Tensor s = jittered(scale, seed + 1, false, sdtype), z = zero.defined() ? jittered(zero, seed + 2, true, sdtype) : Tensor();
    const Tensor s_gpu = s.to(gpu), z_gpu = z.defined() ? z.to(gpu) : Tensor();
    const PackedTensor want = PackedTensor::empty(spec, c.shape), got = PackedTensor::empty(spec, c.shape, gpu);
    ops::quantize_scaled(want, w, s, z);
    ops::quantize_scaled(got, w_gpu, s_gpu, z_gpu);
    const PackedTensor host = got.to(Device::cpu());
    for (size_t i = 0; i < want.parts.size(); ++i)
      EXPECT_EQ(std::memcmp(host.parts[i].data(), want.parts[i].data(), want.parts[i].nbytes()), 0)
          << packed_part_specs(spec, c.shape)[i].name;

    // The backward: mask bit for bit, gradients to rounding, accumulated onto what was there.
    const Tensor g = random_tensor(c.shape, DType::F32, Device::cpu(), seed + 3), g_gpu = g.to(gpu);
    const Tensor ds = random_tensor(shape, DType::F32, Device::cpu(), seed + 4), ds_gpu = ds.to(gpu);
    const Tensor dz = zero.defined() ? random_tensor(shape, DType::F32, Device::cpu(), seed + 5) : Tensor();
    const Tensor dz_gpu = dz.defined() ? dz.to(gpu) : Tensor();
    ops::fake_quantize_scaled_backward(g, ds, dz, w, s, z, spec);
    ops::fake_quantize_scaled_backward(g_gpu, ds_gpu, dz_gpu, w_gpu, s_gpu, z_gpu, spec);
    expect_bitwise_equal(g_gpu, g, "masked gradient");
    int clamped = 0;
    for (float v : host_f32(g)) clamped += v == 0.0f;
    EXPECT_GT(clamped, 0) << "no code was clamped: the test does not reach the outside branch";
    EXPECT_LT(relative_error(ds_gpu, ds), 1e-5);
    if (dz.defined()) EXPECT_LT(relative_error(dz_gpu, dz), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Schemes, CudaQuantizeScaled,
    ::testing::Combine(::testing::Values(Case{{QuantScheme::Int8}, {7, 333}}, Case{{QuantScheme::Int8}, {64, 4096}},
                                         Case{{QuantScheme::Int4, 32}, {5, 96}},
                                         Case{{QuantScheme::Int4, 64, false}, {9, 192}},
                                         Case{{QuantScheme::Int4, 128, false}, {33, 512}},
                                         Case{{QuantScheme::Q8_0}, {3, 96}}, Case{{QuantScheme::Q8_0}, {256, 1024}},
                                         Case{{QuantScheme::Q4_0}, {5, 64}}, Case{{QuantScheme::Q4_0}, {128, 2048}}),
                       ::testing::Values(DType::F32, DType::BF16, DType::F16)));
