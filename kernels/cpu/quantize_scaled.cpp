// CPU reference for QAT with learned scales (kernels/quant_math.h, "learned scales"): RTN's
// group scales where learning starts, quantization with given scales and zero points, and the
// straight-through gradients of the scales and zero points.
#include <algorithm>
#include <cmath>
#include <optional>

#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"
#include "kernels/quant_math.h"

namespace tessera::cpu {

namespace qm = quant_math;

namespace {

constexpr int64_t kParallelAbove = 1 << 14;

// One group's scale as stored, and the reciprocal its codes use.
struct Scaled {
  float stored, inverse, zero;
};

Scaled scaled(const QuantSpec& spec, float s, float z) {
  const float stored = spec.scheme == QuantScheme::Int8 ? s : round_to(DType::F16, s);
  const float inverse = qm::inverse_or_zero(spec.scheme == QuantScheme::Int4 ? stored : s);
  return {stored, inverse, qm::learned_zero(spec.scheme, spec.symmetric, z)};
}

}  // namespace

void quant_group_scales(const Tensor& scale, const Tensor& zero, const Tensor& w, const QuantSpec& spec) {
  F32In in(w);
  const float* x = in.data();
  F32Out s(scale, false);
  std::optional<F32Out> z;
  if (zero.defined()) z.emplace(zero, false);
  const int64_t group = spec.group_size, groups = w.numel() / group;
#pragma omp parallel for if (w.numel() > kParallelAbove)
  for (int64_t g = 0; g < groups; ++g) {
    const float* v = x + g * group;
    const auto [low, high] = std::minmax_element(v, v + group);
    const float amax = std::max(std::fabs(*low), std::fabs(*high));
    switch (spec.scheme) {
      case QuantScheme::Int8: s.data()[g] = qm::int8_scale(amax); break;
      case QuantScheme::Q8_0: s.data()[g] = qm::q8_0_scale(amax); break;
      case QuantScheme::Q4_0: {
        float m = 0.0f, best = 0.0f;  // the first element of largest magnitude
        for (int64_t i = 0; i < group; ++i)
          if (best < std::fabs(v[i])) {
            best = std::fabs(v[i]);
            m = v[i];
          }
        s.data()[g] = qm::q4_0_scale(m);
        break;
      }
      case QuantScheme::Int4: {
        const float stored = round_to(DType::F16, qm::int4_scale(*low, *high, spec.symmetric));
        s.data()[g] = stored;
        if (z) z->data()[g] = float(qm::int4_zero(*low, qm::inverse_or_zero(stored)));
        break;
      }
      case QuantScheme::NF4: break;  // refused by ops::quant_group_scales
    }
  }
  s.commit();
  if (z) z->commit();
}

void quantize_scaled(const PackedTensor& out, const Tensor& x, const Tensor& scale, const Tensor& zero) {
  F32In in(x), sv(scale), zv(zero.defined() ? zero : scale);
  const QuantSpec& spec = out.spec;
  const int64_t group = spec.group_size, groups = out.numel() / group;
  const bool asymmetric = zero.defined();
#pragma omp parallel for if (out.numel() > kParallelAbove)
  for (int64_t g = 0; g < groups; ++g) {
    const float* v = in.data() + g * group;
    const Scaled p = scaled(spec, sv.data()[g], asymmetric ? zv.data()[g] : 0.0f);
    auto code = [&](int64_t i) { return qm::learned_code(spec.scheme, v[i], p.inverse, p.zero); };
    switch (spec.scheme) {
      case QuantScheme::Int8: {
        int8_t* codes = out.parts[0].data_as<int8_t>() + g * group;
        for (int64_t i = 0; i < group; ++i) codes[i] = int8_t(code(i));
        out.parts[1].data_as<float>()[g] = p.stored;
        break;
      }
      case QuantScheme::Int4: {
        uint8_t* codes = out.parts[0].data_as<uint8_t>() + g * group / 2;
        for (int64_t i = 0; i < group; i += 2) codes[i / 2] = uint8_t(code(i) << 4 | code(i + 1));
        out.parts[1].data_as<uint16_t>()[g] = f32_to_f16_bits(p.stored);
        if (!spec.symmetric) out.parts[2].data_as<uint8_t>()[g] = uint8_t(p.zero);
        break;
      }
      case QuantScheme::Q8_0: {
        uint8_t* record = out.parts[0].data_as<uint8_t>() + g * qm::kQ8_0Bytes;
        *reinterpret_cast<uint16_t*>(record) = f32_to_f16_bits(p.stored);
        for (int64_t j = 0; j < qm::kGgmlBlock; ++j) record[2 + j] = uint8_t(int8_t(code(j)));
        break;
      }
      case QuantScheme::Q4_0: {
        uint8_t* record = out.parts[0].data_as<uint8_t>() + g * qm::kQ4_0Bytes;
        *reinterpret_cast<uint16_t*>(record) = f32_to_f16_bits(p.stored);
        for (int64_t j = 0; j < qm::kGgmlBlock / 2; ++j)
          record[2 + j] = uint8_t(code(j) | code(j + qm::kGgmlBlock / 2) << 4);
        break;
      }
      case QuantScheme::NF4: break;  // refused by ops::quantize_scaled
    }
  }
}

void quantize_scaled_backward(const Tensor& g, const Tensor& grad_scale, const Tensor& grad_zero, const Tensor& w,
                              const Tensor& scale, const Tensor& zero, const QuantSpec& spec) {
  F32In in(w), sv(scale), zv(zero.defined() ? zero : scale);
  float* dy = g.data_as<float>();
  float* ds = grad_scale.data_as<float>();
  float* dz = grad_zero.defined() ? grad_zero.data_as<float>() : nullptr;
  const int64_t group = spec.group_size, groups = w.numel() / group;
  const bool asymmetric = zero.defined();
#pragma omp parallel for if (w.numel() > kParallelAbove)
  for (int64_t k = 0; k < groups; ++k) {
    const float* v = in.data() + k * group;
    float* gk = dy + k * group;
    const Scaled p = scaled(spec, sv.data()[k], asymmetric ? zv.data()[k] : 0.0f);
    float sum_s = 0.0f, sum_z = 0.0f;
    for (int64_t i = 0; i < group; ++i) {
      const qm::LearnedGrad d = qm::learned_grad(spec.scheme, v[i], p.inverse, p.zero, p.stored);
      sum_s += gk[i] * d.dscale;
      sum_z += gk[i] * d.dzero;
      if (!d.inside) gk[i] = 0.0f;
    }
    ds[k] += sum_s;
    if (dz) dz[k] += sum_z;
  }
}

}  // namespace tessera::cpu
