// CPU reference kernels (fp32 math, readable): the backend functions of kernels/backend_ops.inc.
#pragma once

#include "core/tensor.h"
#include "kernels/attention_shape.h"
#include "kernels/gemm_shape.h"
#include "kernels/lora_shape.h"
#include "kernels/ops.h"

namespace tessera::cpu {
#include "kernels/backend_ops.inc"
}  // namespace tessera::cpu
