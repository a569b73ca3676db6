// The RMSNorm a fused projection applies to its input before the product (ops::project_many,
// ops::project_swiglu: a decode layer's input and post-attention norms), worked into the same
// launch on the GPU where the small-M gemv runs it.
#pragma once

#include "core/tensor.h"

namespace tessera {

// x -> ops::rmsnorm_forward(x, weight, eps), its rstd not kept. weight [K] of x's dtype or f32;
// undefined: x goes in as it is.
struct InputNorm {
  Tensor weight;
  float eps = 0.0f;
  bool defined() const { return weight.defined(); }
};

}  // namespace tessera
