// CPU AdamW and the squared-norm reduction. AdamW is the reference for the CUDA kernel and also the
// optimizer of offloaded training, so it is one fused pass (moments, master weights and the
// working copy) over chunks spread across threads, each chunk compiled for AVX-512, AVX2 and
// baseline x86-64 and picked at run time (GCC function multi-versioning).
#include <algorithm>
#include <cmath>

#include "kernels/adamw_each_span.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

namespace {

struct AdamWScalars {
  float lr, beta1, beta2, eps, decay, grad_scale, bc1, bc2;
  bool zero_grad;
};

// One chunk; low_bits (bf16, may be null) receives the updated weights.
#if defined(__x86_64__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
void adamw_chunk(float* __restrict p, float* __restrict g, float* __restrict m, float* __restrict v,
                 uint16_t* __restrict low_bits, int64_t n, AdamWScalars s) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] * s.grad_scale;
    const float mi = s.beta1 * m[i] + (1.0f - s.beta1) * gi;
    const float vi = s.beta2 * v[i] + (1.0f - s.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * s.decay - s.lr * (mi / s.bc1) / (std::sqrt(vi / s.bc2) + s.eps);
  }
  if (low_bits)
    for (int64_t i = 0; i < n; ++i) low_bits[i] = f32_to_bf16_bits(p[i]);
  if (s.zero_grad) std::fill(g, g + n, 0.0f);
}

constexpr int64_t kChunk = 1 << 16;  // elements per task: a few hundred KB of state, cache-friendly

}  // namespace

void adamw(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s,
           const Tensor& low) {
  const AdamWScalars k{s.lr, s.beta1, s.beta2, s.eps, 1.0f - s.lr * s.weight_decay, s.grad_scale,
                       1.0f - std::pow(s.beta1, static_cast<float>(s.step)),
                       1.0f - std::pow(s.beta2, static_cast<float>(s.step)), s.zero_grad};
  const int64_t n = param.numel();
  const bool fused_low = low.defined() && low.dtype() == DType::BF16;
  float* p = param.data_as<float>();
#pragma omp parallel for schedule(static)
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = std::min(kChunk, n - start);
    adamw_chunk(p + start, grad.data_as<float>() + start, m.data_as<float>() + start, v.data_as<float>() + start,
                fused_low ? low.data_as<uint16_t>() + start : nullptr, len, k);
  }
  if (low.defined() && !fused_low) store_f32(low.data(), p, low.dtype(), n);
}

void adamw_spans(const Tensor& param, const Tensor& grad, const Tensor& m, const Tensor& v, const ops::AdamWStep& s,
                 const Tensor& low, const std::vector<ops::AdamWSpan>& spans) {
  adamw_each_span(param, grad, m, v, s, low, spans, adamw, fill);
}

void sum_squares(const Tensor& out, const Tensor& x) {
  F32In in(x);
  const float* p = in.data();
  double total = 0;
  const int64_t n = x.numel();
#pragma omp parallel for reduction(+ : total) if (n > (1 << 16))
  for (int64_t i = 0; i < n; ++i) total += double(p[i]) * p[i];
  out.data_as<float>()[0] += static_cast<float>(total);
}

}  // namespace tessera::cpu
