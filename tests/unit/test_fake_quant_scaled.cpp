// QAT with learned scales, its ops on the CPU: RTN's scales in, RTN's packed copy out (so learning
// starts where fixed-scale QAT is); the scale and zero-point gradients against central
// differences of the straight-through surrogate (each element's rounding residual held, as
// STE has it), written out here in double; the mask; and, on 4-bit grids, gradient steps on the
// scales lowering the quantization error below RTN's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>

#include "core/error.h"
#include "error_text.h"
#include "kernels/ops.h"
#include "quant/packed.h"
#include "random_tensors.h"

using namespace tessera;
using namespace tessera::testing_util;

namespace {

bool has_zero(const QuantSpec& spec) { return spec.scheme == QuantScheme::Int4 && !spec.symmetric; }

struct Scales {
  Tensor scale, zero;
};

Scales rtn_scales(const Tensor& w, const QuantSpec& spec) {
  const Shape shape = ops::quant_scale_shape(spec, w.shape());
  Scales s{Tensor::empty(shape, DType::F32), has_zero(spec) ? Tensor::empty(shape, DType::F32) : Tensor()};
  ops::quant_group_scales(s.scale, s.zero, w, spec);
  return s;
}

std::vector<float> fake(const Tensor& w, const Scales& s, const QuantSpec& spec) {
  const Tensor out = Tensor::empty(w.shape(), DType::F32);
  ops::fake_quantize_scaled(out, w, s.scale, s.zero, spec);
  return out.to_vector<float>();
}

Tensor zeros_like(const Tensor& t) {
  Tensor z = Tensor::empty(t.shape(), DType::F32);
  ops::fill(z, 0.0f);
  return z;
}

// The scale a group stores.
double stored(const QuantSpec& spec, float s) {
  return spec.scheme == QuantScheme::Int8 ? s : f16_bits_to_f32(f32_to_f16_bits(s));
}

}  // namespace

class FakeQuantizeScaled : public ::testing::TestWithParam<QuantSpec> {};

TEST_P(FakeQuantizeScaled, RtnScalesGiveRtnsPackedCopy) {
  const QuantSpec spec = GetParam();
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(spec.scheme) << " seed " << seed);
  for (DType dtype : {DType::F32, DType::BF16}) {
    const Tensor w = random_tensor({6, 256}, dtype, Device::cpu(), seed, 0.05f);
    const Scales s = rtn_scales(w, spec);
    const PackedTensor want = quant::quantize(w, spec);
    const PackedTensor got = PackedTensor::empty(want.spec, w.shape());
    ops::quantize_scaled(got, w, s.scale, s.zero);
    for (size_t i = 0; i < want.parts.size(); ++i)
      EXPECT_EQ(std::memcmp(got.parts[i].data(), want.parts[i].data(), want.parts[i].nbytes()), 0) << i;
    const Tensor fq = Tensor::empty(w.shape(), dtype), rtn = Tensor::empty(w.shape(), dtype);
    ops::fake_quantize_scaled(fq, w, s.scale, s.zero, spec);
    ops::fake_quantize(rtn, w, spec);
    EXPECT_EQ(std::memcmp(fq.data(), rtn.data(), fq.nbytes()), 0);
  }
}

TEST_P(FakeQuantizeScaled, GradientsAreTheStraightThroughSurrogatesCentralDifferences) {
  const QuantSpec spec = resolve_quant_spec(GetParam(), {4, 128});
  const uint64_t seed = fresh_seed();
  SCOPED_TRACE(::testing::Message() << quant_scheme_name(spec.scheme) << " seed " << seed);
  const Tensor w = random_tensor({4, 128}, DType::F32, Device::cpu(), seed, 0.05f);
  Scales s = rtn_scales(w, spec);
  // Scales 0.8x RTN's (and zeros moved by one) push codes out of the grid, so both branches count.
  std::vector<float> sv = s.scale.to_vector<float>(), zv;
  for (float& v : sv) v *= 0.8f;
  s.scale = Tensor::from_vector(sv, s.scale.shape(), DType::F32);
  if (s.zero.defined()) {
    zv = s.zero.to_vector<float>();
    for (size_t k = 0; k < zv.size(); ++k) zv[k] += k % 2 ? 1.0f : -1.0f;
    s.zero = Tensor::from_vector(zv, s.zero.shape(), DType::F32);
  }
  const std::vector<float> x = w.to_vector<float>();
  const std::vector<float> c = host_f32(random_tensor(w.shape(), DType::F32, Device::cpu(), seed + 1));
  const Tensor g = Tensor::from_vector(c, w.shape(), DType::F32);
  const Tensor ds = zeros_like(s.scale), dz = s.zero.defined() ? zeros_like(s.zero) : Tensor();
  ops::fake_quantize_scaled_backward(g, ds, dz, w, s.scale, s.zero, spec);

  // The surrogate of group k, from the forward's values at (s0, z0): a code q inside the grid gives
  // w'(s) = s (q - z0) + x (1 - s / S0) (its rounding residual held: round passes the gradient
  // straight through), a clamped one w'(s, z) = (q - z) (s - s0 + st0) (f16(s) passes it too);
  // S0 is the scale the codes divide by (int4: the stored f16 scale st0, else s0).
  const std::vector<float> fq = fake(w, s, spec);
  const int64_t group = spec.group_size;
  const std::vector<float> mask = g.to_vector<float>(), grad_s = ds.to_vector<float>();
  int inside = 0, outside = 0;
  for (int64_t k = 0; k < static_cast<int64_t>(sv.size()); ++k) {
    const double s0 = sv[k], st0 = stored(spec, sv[k]);
    const double S0 = spec.scheme == QuantScheme::Int4 ? st0 : s0;
    const double z0 = spec.scheme == QuantScheme::Int4 ? (spec.symmetric ? 8 : std::clamp(std::nearbyint(double(zv[k])), 0.0, 15.0))
                      : spec.scheme == QuantScheme::Q4_0 ? 8 : 0;
    auto loss = [&](double sk, double zk) {
      double sum = 0;
      for (int64_t i = k * group; i < (k + 1) * group; ++i) {
        const double q = std::nearbyint(fq[i] / st0 + z0);  // the code the forward chose
        const bool in = mask[i] != 0.0f;                    // (c is never exactly 0)
        sum += c[i] * (in ? sk * (q - z0) + x[i] * (1 - sk / S0) : (q - zk) * (sk - s0 + st0));
      }
      return sum;
    };
    for (int64_t i = k * group; i < (k + 1) * group; ++i) (mask[i] != 0.0f ? inside : outside)++;
    const double h = 1e-3 * std::fabs(s0) + 1e-12;
    const double fd_s = (loss(s0 + h, z0) - loss(s0 - h, z0)) / (2 * h);
    EXPECT_NEAR(grad_s[k], fd_s, 1e-4 * (1 + std::fabs(fd_s))) << "group " << k;
    if (dz.defined()) {
      const double fd_z = (loss(s0, z0 + 1e-2) - loss(s0, z0 - 1e-2)) / 2e-2;
      EXPECT_NEAR(dz.to_vector<float>()[k], fd_z, 1e-4 * (1 + std::fabs(fd_z))) << "group " << k;
    }
  }
  EXPECT_GT(inside, 0);
  EXPECT_GT(outside, 0);  // the 0.8x scales clamp some codes: the mask zeroed their gradient
}

INSTANTIATE_TEST_SUITE_P(Schemes, FakeQuantizeScaled,
                         ::testing::Values(QuantSpec{QuantScheme::Int8}, QuantSpec{QuantScheme::Int4, 32},
                                           QuantSpec{QuantScheme::Int4, 64, false}, QuantSpec{QuantScheme::Q8_0},
                                           QuantSpec{QuantScheme::Q4_0}),
                         [](const auto& info) {
                           return std::string(quant_scheme_name(info.param.scheme)) +
                                  (info.param.symmetric ? "" : "_asymmetric");
                         });

// On 4-bit grids the absmax scale RTN takes is not the best one for a normal group (clipping the
// largest values buys finer steps for the rest): small signed steps along the straight-through
// gradient of the squared error sum (w' - x)^2 find better scales. (On 8-bit grids that gradient
// keeps pointing below RTN's scale while the error there is flat: not a property to test.)
TEST(FakeQuantizeScaled, GradientStepsOnFourBitScalesLowerTheErrorBelowRtns) {
  const uint64_t seed = fresh_seed();
  for (const QuantSpec& spec : {QuantSpec{QuantScheme::Int4, 32}, QuantSpec{QuantScheme::Int4, 64, false},
                                QuantSpec{QuantScheme::Q4_0}}) {
    SCOPED_TRACE(::testing::Message() << quant_scheme_name(spec.scheme) << " seed " << seed);
    const Tensor w = random_tensor({64, 256}, DType::F32, Device::cpu(), seed, 0.05f);
    const std::vector<float> x = w.to_vector<float>();
    Scales s = rtn_scales(w, spec);
    auto error = [&] {
      const std::vector<float> fq = fake(w, s, spec);
      double e = 0;
      for (size_t i = 0; i < x.size(); ++i) e += (fq[i] - x[i]) * (fq[i] - x[i]);
      return e;
    };
    const double rtn = error();
    for (int step = 0; step < 60; ++step) {
      const std::vector<float> fq = fake(w, s, spec);
      std::vector<float> dy(x.size());
      for (size_t i = 0; i < x.size(); ++i) dy[i] = 2 * (fq[i] - x[i]);
      const Tensor g = Tensor::from_vector(dy, w.shape(), DType::F32);
      const Tensor ds = zeros_like(s.scale), dz = s.zero.defined() ? zeros_like(s.zero) : Tensor();
      ops::fake_quantize_scaled_backward(g, ds, dz, w, s.scale, s.zero, spec);
      std::vector<float> sv = s.scale.to_vector<float>();
      const std::vector<float> gs = ds.to_vector<float>();
      for (size_t k = 0; k < sv.size(); ++k) sv[k] -= 0.001f * std::fabs(sv[k]) * float((gs[k] > 0) - (gs[k] < 0));
      s.scale = Tensor::from_vector(sv, s.scale.shape(), DType::F32);
    }
    const double learned = error();
    std::cout << "[ learned scales ] " << quant_scheme_name(spec.scheme) << (spec.symmetric ? "" : " asymmetric")
              << ": squared error " << learned << " vs RTN " << rtn << "\n";
    EXPECT_LT(learned, (spec.scheme == QuantScheme::Q4_0 ? 0.995 : 0.985) * rtn);
  }
}

TEST(FakeQuantizeScaled, BadArgumentsAreOneErrorEach) {
  const Tensor w = random_tensor({4, 64}, DType::F32, Device::cpu(), 1);
  const Tensor scale = zeros_like(Tensor::empty({4, 2}, DType::F32));
  EXPECT_EQ(error_of([&] { ops::quant_group_scales(scale, Tensor(), w, {QuantScheme::NF4}); }),
            "quant_group_scales: nf4 has no learnable scales");
  EXPECT_EQ(error_of([&] { ops::quant_group_scales(zeros_like(Tensor::empty({4, 3}, DType::F32)), Tensor(), w,
                                                   {QuantScheme::Int4, 32}); }),
            "quant_group_scales: scale f32[4, 3] cpu should be [4, 2]");
  EXPECT_EQ(error_of([&] { ops::quant_group_scales(scale, Tensor(), w, {QuantScheme::Int4, 32, false}); }),
            "quant_group_scales: asymmetric int4 needs a zero point per group");
  EXPECT_EQ(error_of([&] { ops::quant_group_scales(scale, scale, w, {QuantScheme::Int4, 32}); }),
            "quant_group_scales: only asymmetric int4 has zero points");
}
