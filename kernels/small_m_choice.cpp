// The process-wide small-M gemm kernel choice (kernels/gemm_shape.h SmallMChoice): the
// environment's at first use, then whatever set_small_m_choice stores.
#include <atomic>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "kernels/ops.h"

namespace tessera::ops {

namespace {

constexpr SmallMKernel kKernels[] = {SmallMKernel::Auto, SmallMKernel::CuBlas, SmallMKernel::Gemv, SmallMKernel::Mma};

SmallMChoice from_environment() {
  SmallMChoice choice;
  if (const char* v = std::getenv("TESSERA_SMALL_M")) {
    bool known = false;
    for (SmallMKernel k : kKernels)
      if (std::string(v) == small_m_kernel_name(k)) choice.kernel = k, known = true;
    TS_CHECK(known, "TESSERA_SMALL_M: '{}' is not one of auto, cublas, gemv, mma", v);
  }
  if (const char* v = std::getenv("TESSERA_SKINNY_SPLIT")) {
    const std::string s = v;
    TS_CHECK(s == "0" || s == "1" || s == "2" || s == "4" || s == "8",
             "TESSERA_SKINNY_SPLIT: '{}' is not one of 0, 1, 2, 4, 8", s);
    choice.split = std::stoi(s);
  }
  return choice;
}

// kernel in the low byte, split above it.
int encode(SmallMChoice c) { return static_cast<int>(c.kernel) | (c.split << 8); }
SmallMChoice decode(int v) { return {static_cast<SmallMKernel>(v & 0xff), v >> 8}; }

std::atomic<int>& stored() {
  static std::atomic<int> value{encode(from_environment())};
  return value;
}

}  // namespace

SmallMChoice small_m_choice() { return decode(stored().load(std::memory_order_relaxed)); }

void set_small_m_choice(SmallMChoice choice) {
  TS_CHECK(choice.split == 0 || choice.split == 1 || choice.split == 2 || choice.split == 4 || choice.split == 8,
           "set_small_m_choice: split {} is not one of 0, 1, 2, 4, 8", choice.split);
  stored().store(encode(choice), std::memory_order_relaxed);
}

const char* small_m_kernel_name(SmallMKernel kernel) {
  switch (kernel) {
    case SmallMKernel::Auto: return "auto";
    case SmallMKernel::CuBlas: return "cublas";
    case SmallMKernel::Gemv: return "gemv";
    case SmallMKernel::Mma: return "mma";
  }
  return "?";
}

}  // namespace tessera::ops
