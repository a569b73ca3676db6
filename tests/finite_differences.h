// Gradients by central differences, for checking the backward passes of the CPU references.
#pragma once

#include <functional>
#include <vector>

#include "random_tensors.h"

namespace tessera::testing_util {

// sum(out * r) in double: the scalar loss whose gradient with respect to out is r.
inline double weighted_sum(const Tensor& out, const std::vector<float>& r) {
  const auto v = host_f32(out);
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += double(v[i]) * r[i];
  return s;
}

// d loss / d t by central differences, perturbing each element of the f32 tensor t in place.
inline std::vector<float> central_differences(const Tensor& t, const std::function<double()>& loss, float h = 1e-3f) {
  float* p = t.data_as<float>();
  std::vector<float> grad(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) {
    const float keep = p[i];
    p[i] = keep + h;
    const double up = loss();
    p[i] = keep - h;
    const double down = loss();
    p[i] = keep;
    grad[i] = static_cast<float>((up - down) / (double(keep + h) - double(keep - h)));
  }
  return grad;
}

}  // namespace tessera::testing_util
