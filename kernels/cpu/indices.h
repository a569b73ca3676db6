// Token ids and labels come as int32 or int64: the references read them as int64.
#pragma once

#include <vector>

#include "core/error.h"
#include "core/tensor.h"

namespace tessera::cpu {

inline std::vector<int64_t> load_indices(const Tensor& t) {
  const int64_t n = t.numel();
  if (t.dtype() == DType::I64) return std::vector<int64_t>(t.data_as<int64_t>(), t.data_as<int64_t>() + n);
  TS_CHECK(t.dtype() == DType::I32, "expected int32 or int64 indices, got {}", t.str());
  return std::vector<int64_t>(t.data_as<int32_t>(), t.data_as<int32_t>() + n);
}

}  // namespace tessera::cpu
