// CUDA kernels (the fast ones): the backend functions of kernels/backend_ops.inc.
#pragma once

#include "core/tensor.h"
#include "kernels/attention_shape.h"
#include "kernels/gemm_shape.h"
#include "kernels/lora_shape.h"
#include "kernels/ops.h"

namespace tessera::cuda {
#include "kernels/backend_ops.inc"
}  // namespace tessera::cuda
