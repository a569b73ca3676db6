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

int64_t rows_from_environment() {
  const char* v = std::getenv("TESSERA_GEMV_ROWS");
  if (!v) return 4;
  for (const char* rows : {"4", "8", "16"})
    if (std::string(v) == rows) return std::stoi(v);
  throw Error(std::string("TESSERA_GEMV_ROWS: '") + v + "' is not one of 4, 8, 16");
}

std::atomic<SmallMKernel>& stored() {
  static std::atomic<SmallMKernel> value{from_environment()};
  return value;
}

std::atomic<int64_t>& stored_rows() {
  static std::atomic<int64_t> value{rows_from_environment()};
  return value;
}

}  // namespace

SmallMChoice small_m_choice() {
  return {stored().load(std::memory_order_relaxed), stored_rows().load(std::memory_order_relaxed)};
}

void set_small_m_choice(SmallMChoice choice) {
  TS_CHECK(choice.gemv_rows == 4 || choice.gemv_rows == 8 || choice.gemv_rows == 16,
           "set_small_m_choice: gemv_rows {} is not one of 4, 8, 16", choice.gemv_rows);
  stored().store(choice.kernel, std::memory_order_relaxed);
  stored_rows().store(choice.gemv_rows, std::memory_order_relaxed);
}

const char* small_m_kernel_name(SmallMKernel kernel) {
  switch (kernel) {
    case SmallMKernel::Auto: return "auto";
    case SmallMKernel::CuBlas: return "cublas";
    case SmallMKernel::Gemv: return "gemv";
  }
  return "?";
}

}  // namespace tessera::ops
