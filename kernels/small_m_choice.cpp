// The process-wide small-M gemm kernel choice (kernels/gemm_shape.h SmallMChoice): the
// environment's at first use, then whatever set_small_m_choice stores.
#include <atomic>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "kernels/ops.h"

namespace tessera::ops {

namespace {

constexpr SmallMKernel kKernels[] = {SmallMKernel::Auto, SmallMKernel::CuBlas, SmallMKernel::Gemv};

SmallMKernel from_environment() {
  const char* v = std::getenv("TESSERA_SMALL_M");
  if (!v) return SmallMKernel::Auto;
  for (SmallMKernel k : kKernels)
    if (std::string(v) == small_m_kernel_name(k)) return k;
  throw Error(std::string("TESSERA_SMALL_M: '") + v + "' is not one of auto, cublas, gemv");
}

std::atomic<SmallMKernel>& stored() {
  static std::atomic<SmallMKernel> value{from_environment()};
  return value;
}

}  // namespace

SmallMChoice small_m_choice() { return {stored().load(std::memory_order_relaxed)}; }

void set_small_m_choice(SmallMChoice choice) { stored().store(choice.kernel, std::memory_order_relaxed); }

const char* small_m_kernel_name(SmallMKernel kernel) {
  switch (kernel) {
    case SmallMKernel::Auto: return "auto";
    case SmallMKernel::CuBlas: return "cublas";
    case SmallMKernel::Gemv: return "gemv";
  }
  return "?";
}

}  // namespace tessera::ops
