// The process-wide count of SMs that gemms leave free (ops::set_gemm_free_sms).
#include <atomic>

#include "core/error.h"
#include "kernels/ops.h"

namespace tessera::ops {

namespace {
std::atomic<int>& stored() {
  static std::atomic<int> value{0};
  return value;
}
}  // namespace

int gemm_free_sms() { return stored().load(std::memory_order_relaxed); }

void set_gemm_free_sms(int n) {
  TS_CHECK(n >= 0, "set_gemm_free_sms: {} SMs is not a count", n);
  stored().store(n, std::memory_order_relaxed);
}

}  // namespace tessera::ops
