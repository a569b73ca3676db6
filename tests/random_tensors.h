// Helpers shared by the tests: fresh random inputs and error measures.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <vector>

#include "core/tensor.h"
#include "kernels/ops.h"

namespace tessera {
// Test names and failure messages show dtypes by name.
inline void PrintTo(DType dtype, std::ostream* os) { *os << dtype_name(dtype); }
}  // namespace tessera

namespace tessera::testing_util {

// A new seed per call (printed by the tests on failure), so every run sees fresh inputs.
inline uint64_t fresh_seed() {
  static std::mt19937_64 gen(std::random_device{}());
  return gen();
}

// Normal(0, std) values (never all zeros) on `device`.
inline Tensor random_tensor(Shape shape, DType dtype, Device device, uint64_t seed, float std = 1.0f) {
  Tensor t = Tensor::empty(std::move(shape), dtype, device);
  ops::fill_normal(t, seed, 0, 0.0f, std);
  return t;
}

// n ids in [0, vocab) as int32 or int64 (host); with ignore_every > 0, every that-many-th is -100.
// A tensor of NaNs: an output buffer whose every element a kernel must write.
inline Tensor nans(Shape shape, DType dtype, Device device) {
  Tensor t = Tensor::empty(std::move(shape), dtype, device);
  ops::fill(t, std::numeric_limits<float>::quiet_NaN());
  return t;
}

inline Tensor random_ids(int64_t n, int64_t vocab, DType dtype, uint64_t seed, int ignore_every = 0) {
  std::mt19937_64 gen(seed);
  std::vector<int64_t> ids(n);
  for (int64_t i = 0; i < n; ++i) ids[i] = ignore_every > 0 && i % ignore_every == 1 ? -100 : int64_t(gen() % vocab);
  if (dtype == DType::I64) return Tensor::from_vector(ids, {n}, dtype);
  return Tensor::from_vector(std::vector<int32_t>(ids.begin(), ids.end()), {n}, dtype);
}

// inv_freq[i] = base^(-2i/D) (host f32 [D/2]), as HF's default rope init.
inline Tensor inverse_frequencies(int64_t head_dim, double base) {
  std::vector<float> freq(head_dim / 2);
  for (size_t i = 0; i < freq.size(); ++i) freq[i] = float(1.0 / std::pow(base, 2.0 * i / head_dim));
  return Tensor::from_vector(freq, {head_dim / 2}, DType::F32);
}

// Each token's rows of the parts side by side, as one gemm against their weights stacked gives
// them: [T, sum of H_i, D] from host parts [T, H_i, D] of one dtype.
inline Tensor stacked_rows(std::initializer_list<Tensor> parts) {
  const Tensor& first = *parts.begin();
  const int64_t T = first.size(0), d = first.size(2);
  int64_t heads = 0;
  for (const Tensor& p : parts) heads += p.size(1);
  Tensor all = Tensor::empty({T, heads, d}, first.dtype());
  char* to = static_cast<char*>(all.data());
  for (int64_t t = 0; t < T; ++t)
    for (const Tensor& p : parts) {
      const size_t row = p.nbytes() / T;
      std::memcpy(to, static_cast<const char*>(p.data()) + t * row, row);
      to += row;
    }
  return all;
}

// The CPU's copy of a device tensor (the same rounded values); undefined stays undefined.
inline Tensor on_cpu(const Tensor& t) { return t.defined() ? t.to(Device::cpu()) : Tensor(); }

inline std::vector<float> host_f32(const Tensor& t) {
  return ops::cast(t.to(Device::cpu()), DType::F32).to_vector<float>();
}

// The relative error a CUDA op may show against its CPU reference when both round their
// intermediates alike in the activation dtype: a few units in its last place.
inline double rounding_tolerance(DType dtype) {
  return dtype == DType::F32 ? 1e-5 : dtype == DType::BF16 ? 1e-2 : 2e-3;
}

// ||got - want|| / ||want||.
inline double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double diff = 0, norm = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}

inline double squared_norm(const Tensor& t) {
  double sum = 0;
  for (float v : host_f32(t)) sum += double(v) * v;
  return sum;
}

inline double relative_error(const Tensor& got, const Tensor& want) {
  return relative_error(host_f32(got), host_f32(want));
}

// Equal element by element, NaN where the other is NaN; or within the dtype's rounding.
inline void expect_close(const Tensor& got, const Tensor& want, DType dtype, bool exact, const char* what) {
  const auto g = host_f32(got), w = host_f32(want);
  ASSERT_EQ(g.size(), w.size());
  std::vector<float> gv, wv;
  size_t nan_mismatch = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i]) || std::isnan(g[i])) {
      nan_mismatch += std::isnan(w[i]) != std::isnan(g[i]);
      continue;
    }
    gv.push_back(g[i]);
    wv.push_back(w[i]);
  }
  EXPECT_EQ(nan_mismatch, 0u) << what << ": written where the other is not";
  ASSERT_FALSE(wv.empty()) << what;
  if (exact) EXPECT_EQ(gv, wv) << what;
  else EXPECT_LT(relative_error(gv, wv), rounding_tolerance(dtype)) << what;
}

// Skips the current test, with the reason, where no GPU is present.
#define TS_REQUIRE_GPU()                                                              \
  do {                                                                                \
    if (::tessera::cuda_device_count() == 0) GTEST_SKIP() << ::tessera::cuda_unavailable_reason(); \
  } while (0)

}  // namespace tessera::testing_util
