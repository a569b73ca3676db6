// CPU reference for fill, random fills, casts, add and scale.
#include "core/rng.h"
#include "kernels/cpu/cpu_ops.h"
#include "kernels/cpu/f32_view.h"

namespace tessera::cpu {

namespace {
constexpr int64_t kParallelAbove = 1 << 16;
}

void fill(const Tensor& t, float value) {
  F32Out out(t, false);
  float* p = out.data();
  const int64_t n = t.numel();
#pragma omp parallel for if (n > kParallelAbove)
  for (int64_t i = 0; i < n; ++i) p[i] = value;
  out.commit();
}

void fill_uniform(const Tensor& t, uint64_t seed, uint64_t offset, float low, float high) {
  F32Out out(t, false);
  float* p = out.data();
  const int64_t n = t.numel();
#pragma omp parallel for if (n > kParallelAbove)
  for (int64_t i = 0; i < n; ++i) p[i] = low + (high - low) * rng::uniform(seed, offset + i);
  out.commit();
}

void fill_normal(const Tensor& t, uint64_t seed, uint64_t offset, float mean, float std) {
  F32Out out(t, false);
  float* p = out.data();
  const int64_t n = t.numel();
#pragma omp parallel for if (n > kParallelAbove)
  for (int64_t i = 0; i < n; ++i) p[i] = mean + std * rng::normal(seed, offset + i);
  out.commit();
}

void copy(const Tensor& dst, const Tensor& src) {
  F32In in(src);
  store_f32(dst.data(), in.data(), dst.dtype(), dst.numel());
}

void add(const Tensor& out, const Tensor& a, const Tensor& b, float alpha, float beta) {
  F32In x(a), y(b);
  F32Out z(out, false);
  const float *px = x.data(), *py = y.data();
  float* pz = z.data();
  const int64_t n = out.numel();
#pragma omp parallel for if (n > kParallelAbove)
  for (int64_t i = 0; i < n; ++i) pz[i] = alpha * px[i] + beta * py[i];
  z.commit();
}

void scale(const Tensor& out, const Tensor& in, float alpha) {
  F32In x(in);
  F32Out z(out, false);
  const float* px = x.data();
  float* pz = z.data();
  const int64_t n = out.numel();
#pragma omp parallel for if (n > kParallelAbove)
  for (int64_t i = 0; i < n; ++i) pz[i] = alpha * px[i];
  z.commit();
}

}  // namespace tessera::cpu
